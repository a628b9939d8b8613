"""starling._percent: exactly the stdlib's percent-decoding, at C speed on every shape."""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from starling._percent import unquote_plus_latin1, unquote_text

# Pieces that stress the UTF-8 decoding of escapes next to raw characters: lead bytes,
# continuation bytes, surrogate and overlong encodings, broken escapes.
RAW_PIECES = [
    b"%", b"+", b"a", b"0", b"F", b"f", b"g", b"%2", b"%%", b"%2B", b"%20",
    b"%C3", b"%A9", b"%E2", b"%82", b"%AC", b"%F0", b"%90", b"%ED", b"%A0", b"%80", b"%FF",
    b"%c3%a9", b"%C0%AF", b"\xc3", b"\xa9", b"\x80", b"\xff", b"\xe2\x82\xac",
]  # fmt: skip
TEXT_PIECES = [
    "%", "+", "a", "0", "F", "%2", "%C3", "%A9", "%E2", "%82", "%AC", "%F0", "%90", "%ED",
    "%A0", "%80", "%FF", "é", "€", "\U0001f600", "\x80", "ÿ", "\ud800", "\udcff",
]  # fmt: skip


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(RAW_PIECES)).map(b"".join))
@example(b"%C3\xa9")  # an escaped lead byte, then a raw byte: two characters
@example(b"\xc3%A9")
def test_raw_fields_decode_as_unquote_plus(raw: bytes) -> None:
    assert unquote_plus_latin1(raw) == unquote_plus(raw.decode("latin-1"))


@given(st.binary())
def test_any_bytes_decode_as_unquote_plus(raw: bytes) -> None:
    assert unquote_plus_latin1(raw) == unquote_plus(raw.decode("latin-1"))


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(TEXT_PIECES)).map("".join))
@example("%E2%82€")  # an incomplete escaped sequence ended by a literal character
@example("\ud800%41")  # a lone surrogate: the stdlib's own result
def test_text_decodes_as_unquote(text: str) -> None:
    assert unquote_text(text) == unquote(text)


@given(st.text())
def test_any_text_decodes_as_unquote(text: str) -> None:
    assert unquote_text(text) == unquote(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a+b%20c", "a b c"),
        (b"%2B", "+"),
        (b"caf%C3%A9", "café"),
        (b"%zz%", "%zz%"),
        (b"%C3", "\ufffd"),
        (b"\xe9%41", "éA"),
        (b"", ""),
    ],
)
def test_examples(raw: bytes, expected: str) -> None:
    assert unquote_plus_latin1(raw) == expected
