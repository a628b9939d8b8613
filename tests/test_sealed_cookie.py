"""starling._sealed_cookie: the encrypted session cookie's format, against hostile input.

Whatever a client sends, ``unseal`` returns a dict it sealed or None: never an exception, at a
cost bounded by the (bounded) length of the value.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from starling._sealed_cookie import MAX_SEALED_LENGTH, decode_key, seal, unseal

KEY = AESGCM(bytes(range(32)))
OTHER = AESGCM(bytes(range(1, 33)))
FAR = 2**40  # an expiry far in the future

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
sessions = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def opened(value: str, ciphers: list[Any] | None = None) -> dict[str, Any] | None:
    return unseal([KEY] if ciphers is None else ciphers, InvalidTag, value, time.time())


@settings(max_examples=40)
@given(sessions)
def test_round_trip(data: dict[str, Any]) -> None:
    assert opened(seal(KEY, data, FAR)) == data


@given(st.text(max_size=300))
def test_any_text_opens_nothing(value: str) -> None:
    assert opened(value) is None


@given(st.binary(max_size=300))
def test_any_bytes_in_the_format_open_nothing(raw: bytes) -> None:
    value = base64.urlsafe_b64encode(b"\x01" + raw).decode().rstrip("=")
    assert opened(value) is None


def test_every_byte_flipped_opens_nothing() -> None:
    value = seal(KEY, {"role": "user"}, FAR)
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for index in range(len(raw)):
        for bit in (1, 0x80):
            forged = bytearray(raw)
            forged[index] ^= bit
            text = base64.urlsafe_b64encode(bytes(forged)).decode().rstrip("=")
            assert opened(text) is None, index


def test_any_key_of_the_list_opens_and_the_first_seals() -> None:
    old = seal(OTHER, {"a": 1}, FAR)
    assert opened(old) is None
    assert opened(old, [KEY, OTHER]) == {"a": 1}
    assert opened(seal(KEY, {"a": 1}, FAR), [KEY, OTHER]) == {"a": 1}


def test_a_sealed_value_is_fresh_each_time() -> None:
    assert seal(KEY, {"a": 1}, FAR) != seal(KEY, {"a": 1}, FAR)  # a new nonce each time


def test_padding_and_other_alphabets_are_refused() -> None:
    value = seal(KEY, {"a": 1}, FAR)
    assert opened(value + "=") is None
    assert opened(value[:10] + "+" + value[11:]) is None  # standard base64's alphabet
    assert opened(value[:10] + "/" + value[11:]) is None
    assert opened(" " + value) is None


def test_length_is_bounded_before_decoding() -> None:
    assert opened("A" * (MAX_SEALED_LENGTH + 1)) is None


def test_cost_is_linear_in_the_length() -> None:
    """A degenerate value costs about what a benign one of the same length costs."""
    benign = seal(KEY, {"v": "x" * 2800}, FAR)
    size = len(benign)
    degenerate = [
        "A" * size,  # decodes, wrong version
        "AQ" + "A" * (size - 2),  # right version, tag fails
        "!" * size,  # refused by the alphabet
        benign[:-1] + ("A" if benign[-1] != "A" else "B"),  # a tampered tag
    ]

    def cost(value: str, ciphers: list[Any]) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(50):
                unseal(ciphers, InvalidTag, value, 0.0)
            best = min(best, time.perf_counter() - start)
        return best

    reference = cost(benign, [KEY])
    for value in degenerate:
        assert cost(value, [KEY, OTHER]) < 10 * reference + 0.01


def test_keys_decode_from_either_base64_alphabet() -> None:
    raw = bytes(range(200, 232))
    assert decode_key(raw) == raw
    assert decode_key(base64.urlsafe_b64encode(raw).decode()) == raw
    assert decode_key(base64.b64encode(raw).decode()) == raw
    assert decode_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert decode_key("  " + base64.b64encode(raw).decode() + "\n") == raw
