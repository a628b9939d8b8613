"""Exceptions an endpoint raises to produce an HTTP error or close a WebSocket."""

from __future__ import annotations

import http
from collections.abc import Mapping


class StarletteDeprecationWarning(UserWarning):
    """Warns of an API that a future release removes; the message names the replacement."""


class HTTPException(Exception):
    def __init__(
        self, status_code: int, detail: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        if detail is None:
            detail = _status_phrase(status_code)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class WebSocketException(Exception):
    def __init__(self, code: int, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


def _status_phrase(status_code: int) -> str:
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:  # a non-standard code has no phrase
        return ""
