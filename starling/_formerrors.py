"""The error form parsers raise when a body breaks a limit or the multipart grammar."""

from __future__ import annotations


class MultiPartException(Exception):
    """Starlette raises this for urlencoded bodies too; ``Request.form`` turns it into a 400.

    ``starling.formparsers`` re-exports this class, so one ``except`` catches both parsers.
    """

    def __init__(self, message: str) -> None:
        self.message = message
