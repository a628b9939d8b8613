"""The error form parsers raise when a body breaks a limit or the multipart grammar."""

from __future__ import annotations


class MultiPartException(Exception):
    """Starlette raises this for urlencoded bodies too; ``Request.form`` turns it into a 400.

    ``starling.formparsers`` re-exports this class, so one ``except`` catches both parsers.
    """

    def __init__(self, message: str) -> None:
        self.message = message


class FileTooLarge(MultiPartException):
    """An uploaded file over ``max_file_size``: ``Request.form`` answers 413, not 400.

    Starlette has no per-file limit; its own limits (files, fields, part size) stay a 400 as
    in Starlette, while this one is a payload too large (RFC 9110 15.5.14).
    """

    status_code = 413
