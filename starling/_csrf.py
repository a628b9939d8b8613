"""Sans-IO machinery of the CSRF middleware: signed cookie values, masked tokens, and a bounded
search for the token field in a form body. No I/O, no ``await``; nothing here raises on input.

The cookie holds a random 32-byte secret and an HMAC-SHA256 of it together with a *binding*,
the value that ties it to one session (see starling.middleware.csrf). A token is that secret
XOR-masked with fresh random bytes (``mask || mask ^ secret``), so that the token in each page
differs and a compression side channel (BREACH) cannot recover it, yet every token proves
knowledge of the one secret. Every value is checked for its exact length and alphabet before
any decoding: the work is constant, whatever a client sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from starling._formerrors import MultiPartException
from starling._multipart import Event, MultipartParser, parse_options_header
from starling._urlencoded import UrlencodedParser

SECRET_BYTES = 32
# Lengths in base64url without padding: 32 bytes -> 43 characters, 64 bytes -> 86.
_SECRET_TEXT = 43
COOKIE_LENGTH = 2 * _SECRET_TEXT + 1  # secret "." signature
TOKEN_LENGTH = 86
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# The longest form field that can be a token (a cookie value, sent as is, is shorter).
MAX_TOKEN_FIELD = 128


def derive_key(secret: bytes) -> bytes:
    """A key for CSRF signatures only, so the app secret's other uses never sign the same."""
    return hmac.new(secret, b"starling.middleware.csrf", hashlib.sha256).digest()


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str, length: int) -> bytes | None:
    if len(text) != length or _B64URL.fullmatch(text) is None:
        return None
    raw = base64.urlsafe_b64decode(text + "=" * (-length % 4))
    # APPSEC: the last character carries spare bits that decoding ignores; only the one
    # canonical spelling is accepted, so no two strings stand for the same value.
    return raw if _encode(raw) == text else None


def _signature(key: bytes, secret: bytes, binding: bytes) -> bytes:
    # The lengths are fixed or last, so no two (secret, binding) pairs give the same message.
    return hmac.new(key, b"cookie\x00" + secret + b"\x00" + binding, hashlib.sha256).digest()


def cookie_value(key: bytes, secret: bytes, binding: bytes) -> str:
    return f"{_encode(secret)}.{_encode(_signature(key, secret, binding))}"


def read_cookie(key: bytes, value: str, binding: bytes) -> bytes | None:
    """The secret in a cookie value signed for ``binding``, or None (malformed, forged, or
    signed for another session)."""
    if len(value) != COOKIE_LENGTH or value[_SECRET_TEXT] != ".":
        return None
    secret = _decode(value[:_SECRET_TEXT], _SECRET_TEXT)
    signature = _decode(value[_SECRET_TEXT + 1 :], _SECRET_TEXT)
    if secret is None or signature is None:
        return None
    if not hmac.compare_digest(signature, _signature(key, secret, binding)):
        return None
    return secret


def mask(secret: bytes) -> str:
    """A fresh token for ``secret``."""
    pad = os.urandom(SECRET_BYTES)
    return _encode(pad + _xor(pad, secret))


def _xor(left: bytes, right: bytes) -> bytes:
    # PERF: one big-integer XOR instead of a generator over 32 bytes (~5x faster).
    return (int.from_bytes(left) ^ int.from_bytes(right)).to_bytes(len(left))


def token_matches(token: str, secret: bytes, cookie: str) -> bool:
    """Whether a submitted token proves knowledge of ``secret``: a masked token, or the cookie
    value itself (what a script reading the cookie sends back in a header)."""
    if len(token) == COOKIE_LENGTH:
        return hmac.compare_digest(token.encode("ascii", "replace"), cookie.encode("ascii"))
    raw = _decode(token, TOKEN_LENGTH)
    if raw is None:
        return False
    pad, masked = raw[:SECRET_BYTES], raw[SECRET_BYTES:]
    return hmac.compare_digest(_xor(pad, masked), secret)


class FormTokenFinder:
    """Feed a form body's chunks; learn the value of one field as soon as it has been read.

    ``feed`` and ``close`` return the field's value once found (later calls are not needed),
    else None. Only urlencoded and multipart bodies are searched; a body that cannot be parsed
    simply has no token. A multipart field longer than MAX_TOKEN_FIELD, or a file, is no token.
    """

    def __init__(self, content_type: str, field_name: str) -> None:
        media_type, options = parse_options_header(content_type)
        self._field_name = field_name
        self._urlencoded: UrlencodedParser | None = None
        self._multipart: MultipartParser | None = None
        self._in_field = False
        self._value = bytearray()
        self.broken = False
        try:
            if media_type == "application/x-www-form-urlencoded":
                # Other fields may be large; only the bytes held back for one field count.
                self._urlencoded = UrlencodedParser(max_fields=float("inf"))
            elif media_type == "multipart/form-data":
                self._multipart = MultipartParser(options.get("boundary", "").encode("latin-1"))
            else:
                self.broken = True
        except (MultiPartException, UnicodeEncodeError):
            self.broken = True

    def feed(self, data: bytes) -> str | None:
        if self.broken:
            return None
        try:
            if self._urlencoded is not None:
                return self._match(self._urlencoded.feed(data))
            assert self._multipart is not None  # not broken: one of the two parsers is set
            return self._multipart_events(self._multipart.feed(data))
        except MultiPartException:
            self.broken = True
            return None

    def close(self) -> str | None:
        if self.broken or self._urlencoded is None:
            return None  # a multipart field is found when its part ends, in feed()
        # Cannot raise: the field size is checked as bytes arrive, and fields are not counted.
        return self._match(self._urlencoded.close())

    def _match(self, fields: list[tuple[str, str]]) -> str | None:
        for name, value in fields:
            if name == self._field_name:
                return value
        return None

    def _multipart_events(self, events: list[Event]) -> str | None:
        for event in events:
            if isinstance(event, list):
                self._in_field = self._is_token_part(event)
                self._value.clear()
            elif isinstance(event, bytes):
                if self._in_field:
                    self._value += event
                    if len(self._value) > MAX_TOKEN_FIELD:
                        self._in_field = False
            elif event is None:
                if self._in_field:
                    return self._value.decode("latin-1")
            else:
                self.broken = True
                return None
        return None

    def _is_token_part(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"content-disposition":
                disposition, options = parse_options_header(value.decode("latin-1"))
                return (
                    disposition == "form-data"
                    and options.get("name") == self._field_name
                    and "filename" not in options
                )
        return False
