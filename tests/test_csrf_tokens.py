"""The CSRF machinery (starling._csrf): signed cookies, masked tokens and the form token finder,
whole, byte by byte, with Hypothesis, with hostile input, and for cost."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling._csrf import (
    COOKIE_LENGTH,
    MAX_TOKEN_FIELD,
    TOKEN_LENGTH,
    FormTokenFinder,
    cookie_value,
    derive_key,
    mask,
    new_secret,
    read_cookie,
    token_matches,
)

KEY = derive_key(b"a test secret of some length")
SECRET = bytes(range(32))
BINDING = b"session-key"
COOKIE = cookie_value(KEY, SECRET, BINDING)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_cookie_round_trip() -> None:
    assert len(COOKIE) == COOKIE_LENGTH
    assert read_cookie(KEY, COOKIE, BINDING) == SECRET
    assert new_secret() != new_secret()


def test_a_cookie_signed_for_another_session_or_key_fails() -> None:
    assert read_cookie(KEY, COOKIE, b"another-session") is None
    assert read_cookie(KEY, COOKIE, b"") is None
    assert read_cookie(derive_key(b"another secret entirely"), COOKIE, BINDING) is None
    # the key is derived: the app secret itself never signs a CSRF cookie
    assert read_cookie(b"a test secret of some length", COOKIE, BINDING) is None


def test_tokens_are_masked_and_match_their_secret() -> None:
    tokens = {mask(SECRET) for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(token) == TOKEN_LENGTH
        assert token_matches(token, SECRET, COOKIE)
        assert not token_matches(token, new_secret(), COOKIE)
    # the cookie value itself, as a script reading the cookie sends it
    assert token_matches(COOKIE, SECRET, COOKIE)
    other = cookie_value(KEY, new_secret(), BINDING)
    assert not token_matches(other, SECRET, COOKIE)


@pytest.mark.parametrize("position", range(COOKIE_LENGTH))
def test_every_byte_of_the_cookie_is_checked(position: int) -> None:
    """Any change at any position, to any character (ASCII or not), makes the cookie invalid."""
    for character in B64URL + ".=+/ \x00é":
        if character == COOKIE[position]:
            continue
        tampered = COOKIE[:position] + character + COOKIE[position + 1 :]
        assert read_cookie(KEY, tampered, BINDING) is None, (position, character)
        assert not token_matches(tampered, SECRET, COOKIE)


@pytest.mark.parametrize("position", range(TOKEN_LENGTH))
def test_every_byte_of_a_token_is_checked(position: int) -> None:
    token = mask(SECRET)
    for character in B64URL + ".=+/ \x00é":
        if character == token[position]:
            continue
        tampered = token[:position] + character + token[position + 1 :]
        assert not token_matches(tampered, SECRET, COOKIE), (position, character)


def test_every_prefix_and_extension_is_refused() -> None:
    token = mask(SECRET)
    for end in range(COOKIE_LENGTH):
        assert read_cookie(KEY, COOKIE[:end], BINDING) is None
    for end in range(TOKEN_LENGTH):
        assert not token_matches(token[:end], SECRET, COOKIE)
    for trailer in ["A", "=", ".", " ", "\x00"]:
        assert read_cookie(KEY, COOKIE + trailer, BINDING) is None
        assert not token_matches(token + trailer, SECRET, COOKIE)


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_arbitrary_values_never_raise_or_validate(value: str) -> None:
    assert read_cookie(KEY, value, BINDING) is None
    assert not token_matches(value, SECRET, COOKIE)


@settings(max_examples=200)
@given(st.text(B64URL, min_size=TOKEN_LENGTH, max_size=TOKEN_LENGTH))
def test_well_formed_random_tokens_do_not_match(value: str) -> None:
    assert not token_matches(value, SECRET, COOKIE)


def _cost(check: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        check()
        best = min(best, time.perf_counter() - started)
    return max(best, 1e-6)


def test_huge_values_cost_no_more_than_valid_ones() -> None:
    huge = "A" * 1_000_000
    valid = _cost(
        lambda: (read_cookie(KEY, COOKIE, BINDING), token_matches(COOKIE, SECRET, COOKIE))
    )
    hostile = _cost(lambda: (read_cookie(KEY, huge, BINDING), token_matches(huge, SECRET, COOKIE)))
    assert hostile < 20 * valid


# -- finding the token in a form body -------------------------------------------------------

TOKEN = mask(SECRET)
BOUNDARY = "formboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"


def multipart(*parts: tuple[str, bytes], filename: str | None = None) -> bytes:
    body = b""
    for name, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None and name == "upload":
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def find(content_type: str, chunks: list[bytes], field: str = "csrftoken") -> str | None:
    finder = FormTokenFinder(content_type, field)
    for chunk in chunks:
        found = finder.feed(chunk)
        if found is not None:
            return found
    return finder.close()


FORMS = [
    (URLENCODED, f"a=1&csrftoken={TOKEN}&b=2".encode(), TOKEN),
    (URLENCODED, f"csrftoken={TOKEN}".encode(), TOKEN),
    (URLENCODED, b"a=1&b=2", None),
    (URLENCODED, b"csrftoken=a%2Bb+c", "a+b c"),
    (URLENCODED + "; charset=utf-8", f"csrftoken={TOKEN}".encode(), TOKEN),
    (MULTIPART, multipart(("a", b"1"), ("csrftoken", TOKEN.encode()), ("b", b"x" * 5000)), TOKEN),
    (MULTIPART, multipart(("a", b"1")), None),
    (MULTIPART, multipart(("csrftoken", b"x" * (MAX_TOKEN_FIELD + 1))), None),
    (MULTIPART, multipart(("csrftoken", b"x" * (MAX_TOKEN_FIELD + 1)), ("csrftoken", b"ok")), "ok"),
    (MULTIPART.replace("form-data", "FORM-DATA"), multipart(("csrftoken", b"t")), "t"),
]


@pytest.mark.parametrize(("content_type", "body", "expected"), FORMS)
def test_form_bodies_whole_and_byte_by_byte(
    content_type: str, body: bytes, expected: str | None
) -> None:
    assert find(content_type, [body]) == expected
    assert find(content_type, [body[i : i + 1] for i in range(len(body))]) == expected
    # with trailing data (another field, or a multipart epilogue), the answer is the same
    trailer = b"&x=y" if content_type.startswith(URLENCODED) else b"epilogue"
    assert find(content_type, [body + trailer]) == expected


@settings(max_examples=200)
@given(st.data())
def test_any_chunking_finds_the_same_token(data: st.DataObject) -> None:
    content_type, body, expected = data.draw(st.sampled_from(FORMS))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    chunks = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert find(content_type, chunks) == expected


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", f"csrftoken={TOKEN}".encode()),
        ("application/json", b'{"csrftoken": "x"}'),
        ("multipart/form-data", multipart(("csrftoken", b"t"))),  # no boundary
        ("multipart/form-data; boundary=" + "b" * 300, b"--b"),
        ("multipart/form-data; boundary=é", b"--b"),
        (MULTIPART, b"--formboundary\r\nbroken\r\n\r\n"),  # a header line without ":"
        (MULTIPART, multipart(("upload", b"t"), filename="csrftoken")),
        (
            MULTIPART,
            multipart(("csrftoken", b"t"), filename=None).replace(b"form-data", b"attachment"),
        ),
        (MULTIPART, b"--formboundary\r\nContent-Type: text/plain\r\n\r\nx\r\n--formboundary--"),
        (URLENCODED, b"csrftoken=" + b"x" * (1024 * 1024 + 1)),  # past the parser's field limit
    ],
)
def test_bodies_without_a_usable_token(content_type: str, body: bytes) -> None:
    assert find(content_type, [body]) is None
    assert find(content_type, [body[i : i + 4099] for i in range(0, len(body), 4099)]) is None


def test_a_file_named_like_the_field_is_not_a_token() -> None:
    body = multipart(("upload", b"t"), filename="x").replace(b'name="upload"', b'name="csrftoken"')
    assert find(MULTIPART, [body]) is None


def test_a_broken_finder_stays_broken() -> None:
    finder = FormTokenFinder(MULTIPART, "csrftoken")
    assert finder.feed(b"--formboundary\r\nbroken\r\n\r\n") is None
    assert finder.broken
    assert finder.feed(multipart(("csrftoken", b"t"))) is None
    assert finder.close() is None


def _chunked(body: bytes) -> list[bytes]:
    return [body[i : i + 4096] for i in range(0, len(body), 4096)]


def _finding(content_type: str, chunks: list[bytes]) -> Callable[[], object]:
    return lambda: find(content_type, chunks)


def test_finding_cost_is_linear() -> None:
    size = 100_000
    tail = f"&csrftoken={TOKEN}".encode()
    benign = _chunked((b"field=value&" * size)[:size] + tail)
    benign_cost = _cost(lambda: find(URLENCODED, benign))
    for filler in [b"&", b"=", b"%"]:
        hostile = _chunked(filler * size + tail)
        assert _cost(_finding(URLENCODED, hostile)) < 10 * benign_cost
    near_misses = b"\r\n--formboundar" * (size // 16)
    token_part = ("csrftoken", TOKEN.encode())
    part = _chunked(multipart(("a", near_misses), token_part))
    plain = _chunked(multipart(("a", b"x" * len(near_misses)), token_part))
    assert _cost(lambda: find(MULTIPART, part)) < 10 * _cost(lambda: find(MULTIPART, plain))
