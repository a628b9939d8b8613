"""AES-256-GCM sealing of a session into a cookie value, sans-IO.

A sealed value is ``base64url(version || nonce || ciphertext+tag)``, unpadded:

- ``version`` is one byte (1), so the format can change without guessing;
- ``nonce`` is 12 random bytes per sealing (a random 96-bit nonce: NIST SP 800-38D allows 2**32
  sealings per key, far beyond what one key sees between rotations);
- the plaintext is JSON ``[expires_at, data]``: an expiry (Unix seconds) inside the
  authenticated data, so a copied cookie stops working after ``max_age`` even if a client
  keeps it longer than told;
- the associated data binds the value to its purpose (``_AAD``), so a value sealed by the same
  key for something else never opens as a session.

APPSEC: anything that is not exactly this (wrong alphabet, padding, length, version, a tag
that does not verify under any key, expired, not a JSON pair) opens as None: an empty session,
never an error. The length is checked before any decoding, so the cost is bounded.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_VERSION = b"\x01"
_AAD = b"starling.sessions.EncryptedCookieStore"
# A sealed value never needs more than a browser keeps in one cookie.
MAX_SEALED_LENGTH = 4096
_is_base64url = re.compile(r"[A-Za-z0-9_-]+").fullmatch


def decode_key(key: Any) -> bytes:
    """32 raw bytes, or their base64 (URL-safe or standard, padding optional) as str."""
    raw: bytes | None = None
    if isinstance(key, bytes):
        raw = key
    elif isinstance(key, str):
        text = key.strip()
        try:
            raw = base64.b64decode(
                text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
            )
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != KEY_BYTES:
        raise ValueError(
            "EncryptedCookieStore keys are 32 random bytes (AES-256), as bytes or base64 text; "
            "make one with `python -c 'from starling.sessions import EncryptedCookieStore; "
            "print(EncryptedCookieStore.generate_key())'`"
        )
    return raw


def seal(cipher: Any, data: dict[str, Any], expires_at: int) -> str:
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps([expires_at, data], separators=(",", ":")).encode()
    sealed = _VERSION + nonce + cipher.encrypt(nonce, plaintext, _AAD)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def unseal(
    ciphers: list[Any], invalid_tag: type[Exception], value: str, now: float
) -> dict[str, Any] | None:
    """The session sealed in ``value`` by any of ``ciphers``, or None."""
    if len(value) > MAX_SEALED_LENGTH or not _is_base64url(value):
        return None
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):  # a length no base64 text can have
        return None
    if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES or sealed[:1] != _VERSION:
        return None
    nonce = sealed[1 : 1 + NONCE_BYTES]
    ciphertext = sealed[1 + NONCE_BYTES :]
    for cipher in ciphers:
        try:
            plaintext = cipher.decrypt(nonce, ciphertext, _AAD)
        except invalid_tag:
            continue
        return _opened(plaintext, now)
    return None


def _opened(plaintext: bytes, now: float) -> dict[str, Any] | None:
    try:
        value = json.loads(plaintext)
    except ValueError:  # sealed with our key, but not by us: read as empty
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], dict)
    ):
        return None
    if value[0] <= now:
        return None  # expired: a replayed old cookie
    data: dict[str, Any] = value[1]
    return data
