"""ServerSentEvent: the wire format, byte by byte, and hostile field values.

Every encoded event is read back with a parser written from the WHATWG "interpreting an event
stream" steps (below), so a value either round-trips exactly or is refused: it can never add a
field or an event.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from starling.sse import ServerSentEvent, _encode_item

Parsed = dict[str, Any]


def parse_stream(stream: bytes) -> tuple[list[Parsed], list[str]]:
    """The events a browser dispatches for ``stream``, and the comments it skips."""
    text = stream.decode("utf-8")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    lines.pop()  # the text after the last line break is an incomplete line: never processed
    events: list[Parsed] = []
    comments: list[str] = []
    data: list[str] = []
    event_type = ""
    last_id: str | None = None
    retry: int | None = None
    for line in lines:
        if line == "":
            if data:
                events.append(
                    {"data": "\n".join(data), "event": event_type or "message", "id": last_id}
                )
            data, event_type = [], ""
            continue
        if line.startswith(":"):
            comments.append(line[1:])
            continue
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    if retry is not None:
        events.append({"retry": retry})
    return events, comments


def test_the_reference_parser() -> None:
    """The few steps a valid encoder never takes: a field without a colon, a NUL id, a bad
    retry, a CRLF stream with a BOM."""
    stream = "\ufeffdata\r\nid: a\0b\r\nretry: 1x\r\n\r\n".encode()
    assert parse_stream(stream) == ([{"data": "", "event": "message", "id": None}], [])


def test_data_only() -> None:
    assert ServerSentEvent("hello").encode() == b"data: hello\n\n"


def test_every_field_in_a_fixed_order() -> None:
    event = ServerSentEvent("x", event="update", id="7", retry=1500, comment="note")
    assert event.encode() == b": note\nevent: update\nid: 7\nretry: 1500\ndata: x\n\n"


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        ("a\nb", b"data: a\ndata: b\n"),
        ("a\r\nb", b"data: a\ndata: b\n"),
        ("a\rb", b"data: a\ndata: b\n"),
        ("a\n\nb", b"data: a\ndata: \ndata: b\n"),
        ("a\r\n\rb\n", b"data: a\ndata: \ndata: b\ndata: \n"),
        ("", b"data: \n"),
        ("\n", b"data: \ndata: \n"),
        (" leading space", b"data:  leading space\n"),
        ("colon: inside", b"data: colon: inside\n"),
    ],
)
def test_line_breaks_in_data_become_data_lines(data: str, lines: bytes) -> None:
    encoded = ServerSentEvent(data).encode()
    assert encoded == lines + b"\n"
    events, _ = parse_stream(encoded)
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert events == [{"data": normalised, "event": "message", "id": None}]


def test_an_empty_event_encodes_to_nothing() -> None:
    assert ServerSentEvent().encode() == b""
    assert _encode_item({}) == b""


def test_a_comment_alone_dispatches_nothing() -> None:
    encoded = ServerSentEvent(comment="keep-alive").encode()
    assert encoded == b": keep-alive\n\n"
    assert parse_stream(encoded) == ([], [" keep-alive"])


def test_numbers_as_data_and_id() -> None:
    assert ServerSentEvent(3, id=4).encode() == b"id: 4\ndata: 3\n\n"
    assert ServerSentEvent(2.5).encode() == b"data: 2.5\n\n"


def test_an_empty_id_resets_the_last_event_id() -> None:
    assert ServerSentEvent("x", id="").encode() == b"id: \ndata: x\n\n"


def test_utf8_and_unicode_line_separators_are_data() -> None:
    # U+2028 and U+0085 are not line breaks in an event stream: they stay inside the data line.
    event = ServerSentEvent("é\u2028\u0085\0")
    assert event.encode() == "data: é\u2028\u0085\0\n\n".encode()


@pytest.mark.parametrize("field", ["event", "id", "comment"])
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nb", "\n", "x\r"])
def test_line_breaks_in_single_line_fields_are_refused(field: str, value: str) -> None:
    fields: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=f"{field} must not contain a line break"):
        ServerSentEvent("x", **fields)


def test_nul_in_id_is_refused() -> None:
    with pytest.raises(ValueError, match="id must not contain NUL"):
        ServerSentEvent("x", id="a\0b")


@pytest.mark.parametrize("retry", [-1, 1.5, "10", True])
def test_retry_must_be_a_whole_number(retry: Any) -> None:
    with pytest.raises(ValueError, match="retry must be a whole number"):
        ServerSentEvent("x", retry=retry)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data": b"bytes"}, "data must be a str, not bytes"),
        ({"data": {"a": 1}}, "data must be a str, not dict: serialise"),
        ({"data": True}, "data must be a str, not bool"),
        ({"event": 1}, "event must be a str, not int"),
        ({"id": 1.5}, "id must be a str, not float"),
        ({"id": True}, "id must be a str, not bool"),
        ({"comment": b"x"}, "comment must be a str, not bytes"),
    ],
)
def test_wrong_types_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        ServerSentEvent(**fields)


def test_lone_surrogates_fail_when_built() -> None:
    with pytest.raises(UnicodeEncodeError):
        ServerSentEvent("\ud800")


def test_events_are_immutable_values() -> None:
    event = ServerSentEvent("x", event="e", id="1")
    with pytest.raises(AttributeError, match="immutable"):
        event.data = "y"
    assert (event.data, event.event, event.id, event.retry, event.comment) == (
        "x",
        "e",
        "1",
        None,
        None,
    )
    assert event == ServerSentEvent("x", event="e", id=1)
    assert event != ServerSentEvent("x")
    assert event != "x"
    assert len({event, ServerSentEvent("x", event="e", id="1")}) == 1
    assert repr(event) == "ServerSentEvent(data='x', event='e', id='1')"
    assert repr(ServerSentEvent()) == "ServerSentEvent()"


def test_items_the_stream_accepts() -> None:
    assert _encode_item("hi") == b"data: hi\n\n"
    assert _encode_item({"data": "hi", "event": "e"}) == b"event: e\ndata: hi\n\n"
    assert _encode_item(ServerSentEvent("hi")) == b"data: hi\n\n"
    with pytest.raises(ValueError, match=r"Unknown server-sent event field\(s\) \['name'\]"):
        _encode_item({"data": "x", "name": "y"})
    with pytest.raises(TypeError, match="yields ServerSentEvent, str or dict items, not bytes"):
        _encode_item(b"raw")
    with pytest.raises(ValueError, match="line break"):
        _encode_item({"event": "a\nevent: forged"})


# Hostile values: any text at all, line breaks and NUL included.
hostile_text = st.text(alphabet=st.sampled_from("ab:\r\n\0 \ufeffé"), max_size=12) | st.text(
    max_size=12
)


@given(
    data=hostile_text | st.none(),
    event=hostile_text | st.none(),
    event_id=hostile_text | st.none(),
    comment=hostile_text | st.none(),
)
def test_a_value_round_trips_or_is_refused(
    data: str | None, event: str | None, event_id: str | None, comment: str | None
) -> None:
    try:
        encoded = ServerSentEvent(data, event=event, id=event_id, comment=comment).encode()
    except ValueError:
        assert any(
            value is not None and ("\r" in value or "\n" in value)
            for value in (event, event_id, comment)
        ) or (event_id is not None and "\0" in event_id)
        return
    # Whatever follows, this event is exactly one event (or none, without data).
    events, comments = parse_stream(encoded + ServerSentEvent("after").encode())
    expected: list[Parsed] = []
    if data is not None:
        normalised = data.replace("\r\n", "\n").replace("\r", "\n")
        expected.append({"data": normalised, "event": event or "message", "id": event_id})
    last_id = event_id if event_id is not None else None
    expected.append({"data": "after", "event": "message", "id": last_id})
    assert events == expected
    assert comments == ([] if comment is None else [" " + comment])


@given(st.lists(st.text(max_size=20), max_size=5))
def test_a_stream_of_events_reads_back_in_order(items: list[str]) -> None:
    stream = b"".join(_encode_item(item) for item in items)
    events, _ = parse_stream(stream)
    expected = [item.replace("\r\n", "\n").replace("\r", "\n") for item in items]
    assert [event["data"] for event in events] == expected


def test_retry_reads_back() -> None:
    events, _ = parse_stream(ServerSentEvent(retry=0).encode())
    assert events == [{"retry": 0}]
