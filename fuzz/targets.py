"""One fuzz target per sans-IO parser of client bytes: bytes in, and only documented errors out.

Each target reads the fuzzer's bytes as the input of one parser and checks what must hold for
every input, beyond "does not crash":

- only the parser's documented exceptions escape (anything else is a finding: the fuzzer
  stops and saves the input);
- where a reference exists, the result equals it (the stdlib, or the same parser fed whole
  rather than in chunks).

The targets are plain functions, so tests/test_fuzz_targets.py runs them on the seed corpus
(fuzz/corpus/<target>/) under pytest: every input the fuzzer ever found is a regression test.
"""

from __future__ import annotations

import contextlib
import http.cookies
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, unquote_plus

from starling._accept_encoding import (
    MAX_ACCEPT_ENCODING_ITEMS,
    choose_coding,
    parse_accept_encoding,
)
from starling._cookies import parse_cookie_header, unquote_cookie_value
from starling._formerrors import MultiPartException
from starling._forwarded import (
    KNOWN_PARAMETERS,
    MAX_HOPS,
    parse_forwarded,
    parse_node,
    parse_x_forwarded_for_entry,
    split_list,
)
from starling._headers import header_name, header_value
from starling._multipart import MultipartParser, parse_options_header
from starling._percent import unquote_plus_latin1, unquote_text
from starling._ranges import MalformedRangeHeader, RangeNotSatisfiable, parse_range_header
from starling._urlencoded import UrlencodedParser, parse_urlencoded
from starling._urlparse import parse_host, parse_query, scope_path, scope_query
from starling.datastructures import URL
from starling.middleware.gzip import _accepts_gzip
from starling.requests import MalformedJSONBody, UndecodableJSONBody, _loads
from starling.sse import ServerSentEvent
from starling.staticfiles import _etag_matches


def _split(data: bytes) -> tuple[int, bytes]:
    """The first byte as a small number (a chunk size, a limit), and the rest as the input."""
    if not data:
        return 1, b""
    return data[0] % 16 + 1, data[1:]


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)] or [b""]


def urlencoded(data: bytes) -> None:
    """Form bodies: Starlette's reading (parse_qsl), whole or in chunks; MultiPartException."""
    chunk_size, body = _split(data)
    try:
        whole: list[tuple[str, str]] | str = parse_urlencoded(body, 8, 64)
    except MultiPartException as error:
        whole = error.message
    parser = UrlencodedParser(8, 64)
    try:
        fields = []
        for chunk in _chunks(body, chunk_size):
            fields += parser.feed(chunk)
        chunked: list[tuple[str, str]] | str = fields + parser.close()
    except MultiPartException as error:
        chunked = error.message
    assert chunked == whole, (chunked, whole)
    if not isinstance(whole, str):
        assert whole == parse_qsl(body.decode("latin-1"), keep_blank_values=True)


def percent(data: bytes) -> None:
    """Percent-decoding: the stdlib's result, for bytes as sent and for text."""
    assert unquote_plus_latin1(data) == unquote_plus(data.decode("latin-1"))
    text = data.decode("utf-8", "surrogateescape")
    assert unquote_text(text) == unquote(text)


def query(data: bytes) -> None:
    """Query strings: never an error; parse_qsl's pairs (within MAX_QUERY_PARAMS)."""
    text = scope_query(data)
    assert "#" not in text
    assert parse_query(text) == parse_qsl(text, keep_blank_values=True)


def url(data: bytes) -> None:
    """request.url from a hostile scope: the Host header never moves the path or authority."""
    host, _, rest = data.partition(b"\n")
    path, _, query_string = rest.partition(b"?")
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("testserver", 80),
        "path": path.decode("latin-1"),
        "query_string": query_string,
        "headers": [(b"host", host)],
    }
    built = URL(scope=scope)
    parsed = parse_host(host.decode("latin-1"))
    assert built.hostname in (None, "testserver") or parsed is not None
    assert built.path == scope_path(path.decode("latin-1"), True)


def host(data: bytes) -> None:
    """Host headers: a (host, port) whose port fits 16 bits, or None; never an error."""
    parsed = parse_host(data.decode("latin-1"))
    if parsed is not None:
        name, port = parsed
        assert name and (port is None or 0 <= port <= 65535)


def cookies(data: bytes) -> None:
    """Cookie headers: never an error; quoted values unquoted as the stdlib does."""
    text = data.decode("latin-1")
    parsed = parse_cookie_header(text)
    assert all(isinstance(value, str) for value in parsed.values())
    assert unquote_cookie_value(text) == http.cookies._unquote(text)


def multipart(data: bytes) -> None:
    """Multipart bodies: events or a MultiPartException, the same whatever the chunking."""
    chunk_size, body = _split(data)
    outcomes = []
    for size in (len(body) or 1, chunk_size):
        parser = MultipartParser(b"b")
        events: list[object] = []
        event: object
        error = None
        try:
            for chunk in _chunks(body, size):
                for event in parser.feed(chunk):
                    if isinstance(event, MultiPartException):
                        raise event
                    events.append(event)
            parser.close()
        except MultiPartException as exception:
            error = exception.message
        # data pieces depend on the chunking; their concatenation per part does not
        joined: list[object] = []
        for event in events:
            if isinstance(event, bytes) and joined and isinstance(joined[-1], bytes):
                joined[-1] += event
            else:
                joined.append(event)
        outcomes.append((joined, error))
    assert outcomes[0] == outcomes[1], outcomes


def options_header(data: bytes) -> None:
    """Content-Type and Content-Disposition parameters; MultiPartException when too many."""
    try:
        content_type, options = parse_options_header(data.decode("latin-1"))
    except MultiPartException:
        return
    assert content_type == content_type.lower()


def ranges(data: bytes) -> None:
    """Range headers: sorted, disjoint byte ranges within the file, or the two documented errors."""
    size, header = _split(data)
    file_size = size * 10
    try:
        result = parse_range_header(header.decode("latin-1"), file_size)
    except (MalformedRangeHeader, RangeNotSatisfiable):
        return
    # [] means more than MAX_RANGES elements: the whole file is served
    for (start, end), following in zip(result, [*result[1:], None], strict=False):
        assert 0 <= start < end <= file_size
        assert following is None or end < following[0]


def json_body(data: bytes) -> None:
    """JSON bodies: a value, or one of the two 400 errors (never a 500)."""
    with contextlib.suppress(MalformedJSONBody, UndecodableJSONBody):
        _loads(data)


def headers(data: bytes) -> None:
    """Header names and values an application sets: bytes back, or ValueError."""
    text = data.decode("latin-1")
    for check in (header_name, header_value):
        try:
            encoded = check(text)
        except ValueError:
            continue
        assert b"\r" not in encoded and b"\n" not in encoded


def conditional(data: bytes) -> None:
    """If-None-Match and Accept-Encoding: a yes or a no, never an error."""
    text = data.decode("latin-1")
    assert _etag_matches(text, '"abc"') in (True, False)
    assert _accepts_gzip({"headers": [(b"accept-encoding", data)]}) in (True, False)


def accept_encoding(data: bytes) -> None:
    """Accept-Encoding (CompressionMiddleware): weights of at most MAX_ACCEPT_ENCODING_ITEMS
    lower-case codings, the same whether the members come in one header or several; the coding
    chosen is one offered and never one the client refused."""
    _, header = _split(data)
    weights = parse_accept_encoding([header])
    assert len(weights) <= MAX_ACCEPT_ENCODING_ITEMS
    for coding, weight in weights.items():
        assert coding == coding.lower() and 0 <= weight <= 1000
    first, comma, rest = header.partition(b",")
    if comma:
        assert parse_accept_encoding([first, rest]) == weights
    offered = ("zstd", "br", "gzip")
    chosen = choose_coding(weights, offered)
    assert chosen is None or (chosen in offered and weights.get(chosen, weights.get("*", 0)) > 0)


def _node(node: tuple[str, int | None] | None) -> None:
    assert node is None or node[1] is None or 0 <= node[1] <= 65535


def forwarded(data: bytes) -> None:
    """Forwarded and X-Forwarded-For (ProxyHeadersMiddleware): elements of known parameters
    only, at most MAX_HOPS of them, nodes with ports that fit; never an error."""
    text = data.decode("latin-1")
    parsed = parse_forwarded(text)
    if parsed is not None:
        elements, complete = parsed
        assert len(elements) <= MAX_HOPS and (complete or len(elements) == MAX_HOPS)
        for element in elements:
            assert set(element) <= KNOWN_PARAMETERS
            for name in ("for", "by"):
                if name in element:
                    _node(parse_node(element[name]))
    entries, _ = split_list(text)
    assert len(entries) <= MAX_HOPS + 1
    for entry in entries:
        assert entry and entry == entry.strip(" \t")
        _node(parse_x_forwarded_for_entry(entry))


def _read_event(stream: bytes) -> dict[str, str]:
    """One event with data read back as an EventSource reads it (WHATWG HTML, "Interpreting an
    event stream"): fields by name, data lines joined with LF."""
    fields: dict[str, str] = {}
    data: list[str] = []
    lines = stream.decode("utf-8").split("\n")
    assert lines[-2:] == ["", ""], "an event ends with a blank line"
    for line in lines[:-2]:
        assert "\r" not in line, "a CR would start a new line for the client"
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            assert name not in fields, f"{name} twice"
            fields[name] = value
    fields["data"] = "\n".join(data)
    return fields


def sse_event(data: bytes) -> None:
    """Server-sent events: an event either refuses its fields (ValueError) or reads back, as a
    browser reads it, as exactly the fields it was given (data line breaks as LF)."""
    selector, rest = _split(data)
    text = rest.decode("utf-8", "replace")
    parts = text.split("\x00", 2) if selector % 2 else [text]
    given = dict(zip(("data", "event", "id"), parts, strict=False))
    try:
        event = ServerSentEvent(given.get("data"), event=given.get("event"), id=given.get("id"))
    except ValueError:
        return
    expected = dict(given)  # data is always given: the first part
    expected["data"] = expected["data"].replace("\r\n", "\n").replace("\r", "\n")
    read = _read_event(event.encode())
    assert read == expected, (read, expected)


TARGETS: dict[str, Callable[[bytes], None]] = {
    target.__name__: target
    for target in (
        urlencoded,
        percent,
        query,
        url,
        host,
        cookies,
        multipart,
        options_header,
        ranges,
        json_body,
        headers,
        conditional,
        accept_encoding,
        forwarded,
        sse_event,
    )
}
