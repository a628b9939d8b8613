"""starling._urlencoded: the sans-IO application/x-www-form-urlencoded parser."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from starling._formerrors import MultiPartException
from starling._urlencoded import MAX_FIELDS, MAX_PART_SIZE, UrlencodedParser, parse_urlencoded

# (body, what Starlette 1.10's request.form() gives), recorded by running the reference.
STARLETTE_CASES = [
    (b"", []),
    (b"a", [("a", "")]),
    (b"a=", [("a", "")]),
    (b"=b", [("", "b")]),
    (b"=", [("", "")]),
    (b"+", [(" ", "")]),
    (b"%zz", [("%zz", "")]),
    (b"a=%zz", [("a", "%zz")]),
    (b"a=1&a=2", [("a", "1"), ("a", "2")]),
    (b"a=1;b=2", [("a", "1;b=2")]),
    (b"a=b+c%20d", [("a", "b c d")]),
    (b"&&", []),
    (b"&a&", [("a", "")]),
    (b"a=%ff", [("a", "\ufffd")]),
    (b"\xff=\xfe", [("ÿ", "þ")]),
    (b"a=%E2%82%AC", [("a", "€")]),
    (b"%", [("%", "")]),
    (b"a%=b", [("a%", "b")]),
    (b"a=b=c", [("a", "b=c")]),
    (b"a==b", [("a", "=b")]),
    (b"  a = b ", [("  a ", " b ")]),
    (b"a=1&&b=2", [("a", "1"), ("b", "2")]),
    (b"a=%2", [("a", "%2")]),
    (b"a=%2g", [("a", "%2g")]),
    (b"%41=%42", [("A", "B")]),
    (b"a\nb=c", [("a\nb", "c")]),
    (b"a=b&", [("a", "b")]),
    (b"&=", [("", "")]),
    (b"a=\xe2\x82\xac", [("a", "â\x82¬")]),
    (b"a+b=c+d", [("a b", "c d")]),
    (b"a=%00", [("a", "\x00")]),
    (b"a=%2B", [("a", "+")]),
]

TOO_MANY = "Too many fields. Maximum number of fields is {}."
TOO_BIG = "Field exceeded maximum size of {}KB."


def feed_all(
    chunks: list[bytes], max_fields: int | float = MAX_FIELDS, max_part_size: int = MAX_PART_SIZE
) -> list[tuple[str, str]] | str:
    """The fields, or the error message: the outcome to compare between chunkings."""
    parser = UrlencodedParser(max_fields, max_part_size)
    fields: list[tuple[str, str]] = []
    try:
        for chunk in chunks:
            fields += parser.feed(chunk)
        return fields + parser.close()
    except MultiPartException as exc:
        return exc.message


def bytewise(body: bytes) -> list[bytes]:
    return [body[index : index + 1] for index in range(len(body))]


@pytest.mark.parametrize(("body", "expected"), STARLETTE_CASES)
def test_matches_starlette(body: bytes, expected: list[tuple[str, str]]) -> None:
    assert parse_urlencoded(body) == expected
    assert feed_all(bytewise(body)) == expected
    # trailing data: a further field after the body does not change what came before
    assert feed_all([body, b"&z=1"]) == [*expected, ("z", "1")]


@given(st.binary(max_size=200))
def test_equals_parse_qsl(body: bytes) -> None:
    assert parse_urlencoded(body) == parse_qsl(body.decode("latin-1"), keep_blank_values=True)


form_bytes = st.lists(
    st.sampled_from(
        [b"a", b"b", b"=", b"&", b"%", b"+", b"2", b"F", b"%C3", b"%A9", b"\xff", b";"]
    ),
    max_size=40,
).map(b"".join)


@given(form_bytes, st.data())
def test_any_chunking_gives_the_same_outcome(body: bytes, data: st.DataObject) -> None:
    max_fields = data.draw(st.sampled_from([0, 1, 2, 3, MAX_FIELDS]))
    max_part_size = data.draw(st.sampled_from([0, 1, 3, 5, MAX_PART_SIZE]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=5)))
    chunks = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    whole = feed_all([body], max_fields, max_part_size)
    assert feed_all(chunks, max_fields, max_part_size) == whole
    assert feed_all(bytewise(body), max_fields, max_part_size) == whole


@given(form_bytes)
def test_unlimited_outcome_equals_parse_qsl_with_chunks(body: bytes) -> None:
    expected = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
    assert feed_all(bytewise(body)) == expected


# (body, max_fields, max_part_size, outcome) as Starlette 1.10 reports them.
LIMIT_CASES: list[tuple[bytes, int, int, list[tuple[str, str]] | str]] = [
    (b"a=1&b=2&c=3", 2, MAX_PART_SIZE, TOO_MANY.format(2)),
    (b"a=1&b=2", 2, MAX_PART_SIZE, [("a", "1"), ("b", "2")]),
    (b"a=1&b=2&", 2, MAX_PART_SIZE, [("a", "1"), ("b", "2")]),
    (b"a=1&b=2&&&", 2, MAX_PART_SIZE, [("a", "1"), ("b", "2")]),
    (b"a=1&b=2&=", 2, MAX_PART_SIZE, TOO_MANY.format(2)),
    (b"", 0, MAX_PART_SIZE, []),
    (b"a", 0, MAX_PART_SIZE, TOO_MANY.format(0)),
    # the size is the raw name plus the raw value; the "=" does not count
    (b"a=123", MAX_FIELDS, 3, TOO_BIG.format(0)),
    (b"ab=c", MAX_FIELDS, 3, [("ab", "c")]),
    (b"ab=cd", MAX_FIELDS, 4, [("ab", "cd")]),
    (b"a=++", MAX_FIELDS, 3, [("a", "  ")]),
    (b"a=%41", MAX_FIELDS, 3, TOO_BIG.format(0)),
    (b"abc", MAX_FIELDS, 3, [("abc", "")]),
    (b"abcd", MAX_FIELDS, 3, TOO_BIG.format(0)),
    (b"=abcd", MAX_FIELDS, 3, TOO_BIG.format(0)),
    (b"a=b=c", MAX_FIELDS, 4, [("a", "b=c")]),  # a later "=" is value data
    (b"a=b==", MAX_FIELDS, 3, TOO_BIG.format(0)),
    # a size error in a field comes before the count error of that same field
    (b"a&bbbbb", 1, 3, TOO_BIG.format(0)),
    (b"a&bbbbb", 1, 10, TOO_MANY.format(1)),
    (b"a&b&cccccc", 1, 3, TOO_MANY.format(1)),
    (b"a=" + b"x" * 2000, MAX_FIELDS, 1500, TOO_BIG.format(1)),
    (b"a=" + b"x" * 3000, MAX_FIELDS, 2048, TOO_BIG.format(2)),
    (b"a=" + b"x" * 3000, MAX_FIELDS, 2047, TOO_BIG.format(1)),
]


@pytest.mark.parametrize(("body", "max_fields", "max_part_size", "outcome"), LIMIT_CASES)
def test_limits(
    body: bytes, max_fields: int, max_part_size: int, outcome: list[tuple[str, str]] | str
) -> None:
    assert feed_all([body], max_fields, max_part_size) == outcome
    assert feed_all(bytewise(body), max_fields, max_part_size) == outcome


def test_oversized_field_fails_at_the_first_byte_over_the_limit() -> None:
    # The buffer never holds more than the limit: the error comes with the byte that breaks it.
    parser = UrlencodedParser(max_part_size=4)
    for byte in bytewise(b"ab=cd"):
        parser.feed(byte)
    with pytest.raises(MultiPartException) as info:
        parser.feed(b"e")
    assert info.value.message == TOO_BIG.format(0)


def test_fields_come_out_as_soon_as_they_end() -> None:
    parser = UrlencodedParser()
    assert parser.feed(b"a=1&b") == [("a", "1")]
    assert parser.feed(b"=2&") == [("b", "2")]
    assert parser.feed(b"") == []
    assert parser.close() == []


def test_infinite_field_count_is_allowed() -> None:
    assert parse_urlencoded(b"a&b&c", max_fields=float("inf")) == [("a", ""), ("b", ""), ("c", "")]
