"""starling.formparsers: FormParser, MultiPartParser and forms read through Request.form()."""

from __future__ import annotations

import codecs
import os
import warnings
from collections.abc import AsyncGenerator, Iterator
from tempfile import SpooledTemporaryFile
from typing import Any, cast

import anyio
import pytest

import starling.formparsers as formparsers
from starling._formerrors import MultiPartException as PrivateMultiPartException
from starling.applications import Starling
from starling.datastructures import FormData, Headers, UploadFile
from starling.exceptions import StarletteDeprecationWarning
from starling.formparsers import (
    FormMessage,
    FormParser,
    MultiPartException,
    MultiPartParser,
    MultipartPart,
)
from starling.requests import ClientDisconnect, Request
from starling.responses import JSONResponse
from starling.routing import Route
from tests.types import TestClientFactory

BOUNDARY = "B0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"


def part(name: str, value: bytes, filename: str | None = None, *headers: str) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    lines = [f"Content-Disposition: {disposition}", *headers]
    head = "".join(f"{line}\r\n" for line in lines).encode("utf-8")
    return f"--{BOUNDARY}\r\n".encode() + head + b"\r\n" + value + b"\r\n"


def raw_part(headers: bytes, value: bytes) -> bytes:
    return f"--{BOUNDARY}\r\n".encode() + headers + b"\r\n\r\n" + value + b"\r\n"


END = f"--{BOUNDARY}--\r\n".encode()


class Chunks:
    """The body chunks then ``b""``, as ``Request.stream()`` yields them; not a generator, so a
    parser that stops early leaves nothing for the garbage collector to finalise."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = [*chunks, b""]

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.chunks:
            raise StopAsyncIteration
        return self.chunks.pop(0)


def stream_of(chunks: list[bytes]) -> AsyncGenerator[bytes, None]:
    return cast("AsyncGenerator[bytes, None]", Chunks(chunks))


def multipart_parser(
    body: bytes, content_type: str = MULTIPART, chunk: int = 0, **limits: Any
) -> MultiPartParser:
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    return MultiPartParser(Headers({"content-type": content_type}), stream_of(chunks), **limits)


async def dump(form: FormData) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            items.append((name, (value.filename, value.content_type, value.size, data)))
        else:
            items.append((name, value))
    return items


async def parse(
    body: bytes, content_type: str = MULTIPART, chunk: int = 0, **limits: Any
) -> list[Any]:
    form = await multipart_parser(body, content_type, chunk, **limits).parse()
    try:
        return await dump(form)
    finally:
        await form.close()


async def error(body: bytes, content_type: str = MULTIPART, **limits: Any) -> str:
    with pytest.raises(MultiPartException) as info:
        await multipart_parser(body, content_type, **limits).parse()
    return info.value.message


def test_form_message_lookup_by_value_is_deprecated() -> None:
    with pytest.warns(
        StarletteDeprecationWarning, match="^`FormMessage` is deprecated and will"
    ) as info:
        member = FormMessage(1)
    assert member is FormMessage.FIELD_START
    # Attributed to the caller, as Starlette does (not to starlette.formparsers).
    assert [record.filename for record in info] == [__file__]
    assert FormMessage.__deprecated__ == str(info[0].message)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FormMessage.END.value == 5
        assert FormMessage["END"] is FormMessage.END


def test_public_names() -> None:
    assert MultiPartException is PrivateMultiPartException
    assert [message.value for message in FormMessage] == [1, 2, 3, 4, 5]
    assert FormMessage.FIELD_START.name == "FIELD_START"
    assert MultipartPart() == MultipartPart(None, "", bytearray(), None, [])
    assert MultipartPart().data is not MultipartPart().data
    assert MultiPartParser.spool_max_size == MultiPartParser.max_part_size == 1024 * 1024
    assert MultiPartParser.max_file_size is None
    assert sorted(formparsers.__all__) == [
        "FormMessage",
        "FormParser",
        "MultiPartException",
        "MultiPartParser",
        "MultipartPart",
    ]


# --- what comes out (each expectation recorded by running Starlette 1.10) --------------------


@pytest.mark.anyio
async def test_fields_and_files() -> None:
    body = (
        part("a", b"hello")
        + part("f", b"filedata", "x.txt", "Content-Type: text/plain", "X-Other: 1")
        + part("a", b"")
        + part("empty", b"", "")
        + END
    )
    form = await multipart_parser(body).parse()
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert upload.headers.raw == [
        (b"content-disposition", b'form-data; name="f"; filename="x.txt"'),
        (b"content-type", b"text/plain"),
        (b"x-other", b"1"),
    ]
    assert await dump(form) == [
        ("a", "hello"),
        ("f", ("x.txt", "text/plain", 8, b"filedata")),
        ("a", ""),
        ("empty", ("", None, 0, b"")),
    ]
    await form.close()
    assert upload.file.closed


@pytest.mark.anyio
@pytest.mark.parametrize("chunk", [1, 3, 64])
async def test_chunking_does_not_matter(chunk: int) -> None:
    body = part("a", b"x\r\n--B0undar") + part("f", b"\r\n" * 40, "f") + END
    form = await multipart_parser(body, chunk=chunk).parse()
    assert await dump(form) == [("a", "x\r\n--B0undar"), ("f", ("f", None, 80, b"\r\n" * 40))]
    await form.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        (b'form-data; name="f"; filename="a.txt"', ("f", "a.txt")),
        (b"form-data; name=f; filename=a b", ("f", "a b")),
        (b'form-data;name="f";filename="x"', ("f", "x")),
        (b'form-data; name="a\\"b"; filename="c:\\\\dir\\\\f.txt"', ('a"b', "f.txt")),
        (b'form-data; name="a;b"; filename="semi;colon.txt"', ("a;b", "semi;colon.txt")),
        (b'form-data; name="f"; filename="C:\\x\\y.txt"', ("f", "y.txt")),
        (b'form-data; name="f"; filename="fb"; filename*=UTF-8\'\'%E2%82%AC', ("f", "fb")),
        (b'form-data; name="caf\xc3\xa9"; filename="\xc3\xa9.txt"', ("café", "é.txt")),
        (b'form-data; name="n"; filename="f\xe9"', ("n", "fé")),  # not UTF-8: latin-1
        (b'; name="f"; filename="x"', ("f", "x")),
    ],
)
async def test_filenames(disposition: bytes, expected: tuple[str, str]) -> None:
    body = raw_part(b"Content-Disposition: " + disposition, b"1") + END
    ((name, (filename, *_)),) = await parse(body)
    assert (name, filename) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        # RFC 7578 forbids filename*: as in Starlette it is ignored, so this part is a field
        (b"form-data; name=\"f\"; filename*=UTF-8''%E2%82%AC.txt", ("f", "x")),
        (b'form-data; name=""', ("", "x")),
        (b"form-data; name", ("", "x")),
        (b'attachment; name="a"', ("a", "x")),
        (b'form-data; name="a"; name="b"', ("b", "x")),
    ],
)
async def test_fields(disposition: bytes, expected: tuple[str, str]) -> None:
    assert await parse(raw_part(b"Content-Disposition: " + disposition, b"x") + END) == [expected]


@pytest.mark.anyio
async def test_repeated_content_disposition_the_last_counts() -> None:
    headers = (
        b'Content-Disposition: form-data; name="a"\r\ncontent-disposition: form-data; name="b"'
    )
    assert await parse(raw_part(headers, b"x") + END) == [("b", "x")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Type: text/plain",
        b"Content-Disposition: form-data",
        b'Content-Disposition: form-data; filename="a"',
        b'Content-Disposition: name="a"',
        b"Content-Disposition: form-data; name*=UTF-8''x",
    ],
)
async def test_part_without_a_name(headers: bytes) -> None:
    message = 'The Content-Disposition header field "name" must be provided.'
    assert await error(raw_part(headers, b"x") + END) == message
    assert await error(f"--{BOUNDARY}\r\n\r\nx\r\n".encode() + END) == message


def charset_body(value: bytes) -> bytes:
    return (
        part("a", value)
        + raw_part(
            b'Content-Disposition: form-data; name="n\xc3\xa9"; filename="f\xe9\xc3\xa9"', b""
        )
        + END
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("charset", "value", "field", "name", "filename"),
    [
        ("", b"\xc3\xa9", "é", "né", "féÃ©"),
        ("", b"\xe9\x80", "é\x80", "né", "féÃ©"),
        ("; charset=utf-8", b"\xc3\xa9", "é", "né", "féÃ©"),
        ("; charset=UTF8", b"\xc3\xa9", "é", "né", "féÃ©"),
        ("; charset=latin-1", b"\xc3\xa9", "Ã©", "nÃ©", "féÃ©"),
        ('; charset="latin-1"', b"\xc3\xa9", "Ã©", "nÃ©", "féÃ©"),
        ("; charset=ascii", b"\xc3\xa9", "Ã©", "nÃ©", "féÃ©"),
        ("; charset=cp1252", b"\xe9\x80", "é€", "nÃ©", "féÃ©"),
        ("; charset=bogus", b"\xc3\xa9", "Ã©", "nÃ©", "féÃ©"),
        ("; charset=utf-16", b"\xe9\x00", "é", "nÃ©", "\ue966꧃"),
        ("; charset=utf-16", b"\xc3\xa9", "꧃", "nÃ©", "\ue966꧃"),
    ],
)
async def test_charset(charset: str, value: bytes, field: str, name: str, filename: str) -> None:
    items = await parse(charset_body(value), MULTIPART + charset)
    assert items[0] == ("a", field)
    assert items[1][0] == name
    assert items[1][1][0] == filename


@pytest.mark.anyio
async def test_charset_field_and_part_content_type_are_not_charsets() -> None:
    body = part("_charset_", b"latin-1") + part(
        "a", b"\xc3\xa9", None, "Content-Type: x; charset=latin-1"
    )
    assert await parse(body + END) == [("_charset_", "latin-1"), ("a", "é")]


@pytest.mark.anyio
@pytest.mark.parametrize(("charset", "searches"), [("starling-unknown", 1), ("koi8_r", 0)])
async def test_the_charset_is_resolved_once_per_request(charset: str, searches: int) -> None:
    # A failed codec lookup is not cached by Python: retried per value it would search the
    # registry for every name and value. Starlette resolves it once.
    seen: list[str] = []

    def search(name: str) -> None:
        seen.append(name)

    body = part("a", b"\xe9") + part("f", b"x", "\xe9") + part("\xe9", b"y") + END
    codecs.lookup("koi8_r")  # cached from here on, as a known codec is after its first use
    codecs.register(search)
    try:
        items = await parse(body, f"{MULTIPART}; charset={charset}")
    finally:
        codecs.unregister(search)
    assert len(seen) == searches
    assert [name for name, _ in items] == (["a", "f", "Ã©"] if searches else ["a", "f", "ц╘"])


@pytest.mark.anyio
async def test_an_ascii_name_under_a_non_ascii_charset_is_decoded_with_it() -> None:
    items = await parse(part("ab", b"") + END, MULTIPART + "; charset=utf-16")
    assert items == [("扡", "")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    [
        MULTIPART,
        f"multipart/form-data;boundary={BOUNDARY}",
        f'multipart/form-data; boundary="{BOUNDARY}"',
        f"Multipart/Form-Data; BOUNDARY={BOUNDARY}",
        f"multipart/form-data; boundary={BOUNDARY} ; charset=utf-8",
        f"multipart/form-data; boundary=x; boundary={BOUNDARY}",
    ],
)
async def test_content_type_parameters(content_type: str) -> None:
    assert await parse(part("a", b"x") + END, content_type) == [("a", "x")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; charset=utf-8", ""]
)
async def test_missing_boundary(content_type: str) -> None:
    assert await error(END, content_type) == "Missing boundary in multipart."


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Refused by Starlette too: its text, the reason in a note.
        (b"garbage", "Invalid multipart data."),
        (raw_part(b"A: 1\r\n" * 9, b""), "Invalid multipart data."),
        # Accepted by Starlette: the text says why.
        (part("a", b"x"), "Invalid multipart data: the body ended before the final boundary."),
    ],
)
async def test_malformed_body(body: bytes, message: str) -> None:
    assert await error(body) == message


@pytest.mark.anyio
async def test_malformed_body_reason_is_a_note() -> None:
    with pytest.raises(MultiPartException) as info:
        await multipart_parser(b"garbage").parse()
    assert info.value.__notes__ == ["Reason: the body does not start with the boundary."]


@pytest.mark.anyio
@pytest.mark.parametrize("chunk", [0, 1, 7])
async def test_a_part_fails_its_own_check_before_later_malformed_data(chunk: int) -> None:
    # Starlette's order whatever the chunking: the nameless part is refused first.
    body = raw_part(b"X-Other: 1", b"x") + raw_part(b"no colon", b"") + END
    with pytest.raises(MultiPartException) as info:
        await multipart_parser(body, chunk=chunk).parse()
    assert info.value.message == 'The Content-Disposition header field "name" must be provided.'


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("length", "message"),
    [
        (71, "Invalid multipart data: the boundary is longer than 70 bytes."),  # RFC 2046
        (257, "Invalid multipart data."),  # python-multipart's limit: Starlette's text
    ],
)
async def test_long_boundary(length: int, message: str) -> None:
    content_type = "multipart/form-data; boundary=" + "b" * length
    assert await error(END, content_type) == message


@pytest.mark.anyio
async def test_empty_body_is_an_empty_form() -> None:
    assert await parse(b"") == []
    assert await parse(END) == []


# --- limits: one matrix over both parsers ----------------------------------------------------


def urlencoded_body(fields: int, size: int) -> bytes:
    # The urlencoded limit counts the name too: the same total size as a multipart part's data.
    names = [b"f%d" % index for index in range(fields)]
    return b"&".join(name + b"=" + b"x" * max(0, size - len(name)) for name in names)


def multipart_body(fields: int, size: int) -> bytes:
    return b"".join(part(f"f{index}", b"x" * size) for index in range(fields)) + END


async def read_form(kind: str, fields: int, size: int, **limits: Any) -> FormData:
    if kind == "FormParser":
        body = urlencoded_body(fields, size)
        parser = FormParser(Headers({"content-type": URLENCODED}), stream_of([body]), **limits)
        return await parser.parse()
    if kind == "urlencoded":
        body, content_type = urlencoded_body(fields, size), URLENCODED
    else:
        body, content_type = multipart_body(fields, size), MULTIPART
    messages = [{"type": "http.request", "body": body}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode())],
    }
    request: Request[Any] = Request(scope, receive)
    return await request.form(**limits)


SIZE_MESSAGE = {
    "FormParser": "Field exceeded maximum size of {}KB.",
    "urlencoded": "Field exceeded maximum size of {}KB.",
    "multipart": "Part exceeded maximum size of {}KB.",
}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["FormParser", "urlencoded", "multipart"])
@pytest.mark.parametrize(
    ("fields", "size", "limits", "message"),
    [
        (3, 1, {"max_fields": 3}, None),
        (4, 1, {"max_fields": 3}, "Too many fields. Maximum number of fields is 3."),
        (2, 1, {"max_fields": 1.5}, "Too many fields. Maximum number of fields is 1.5."),
        (1001, 0, {}, "Too many fields. Maximum number of fields is 1000."),
        (1000, 0, {}, None),
        (1, 2048, {"max_part_size": 2048}, None),
        (1, 2049, {"max_part_size": 2048}, "size 2"),
        (1, 11, {"max_part_size": 10}, "size 0"),
        (1, 1024 * 1024 + 1, {}, "size 1024"),
        (1, 1024 * 1024, {}, None),
    ],
)
async def test_limits(
    kind: str, fields: int, size: int, limits: dict[str, Any], message: str | None
) -> None:
    if message is None:
        form = await read_form(kind, fields, size, **limits)
        assert len(form.multi_items()) == fields
        return
    if message.startswith("size"):
        message = SIZE_MESSAGE[kind].format(message.split()[1])
    with pytest.raises(MultiPartException) as info:
        await read_form(kind, fields, size, **limits)
    assert info.value.message == message


@pytest.mark.anyio
async def test_files_and_fields_are_counted_apart() -> None:
    body = b"".join(part(f"f{i}", b"x", "f") for i in range(3)) + part("a", b"1") + END
    form = await multipart_parser(body, max_fields=1, max_files=3).parse()
    assert len(form) == 4
    await form.close()
    assert await error(body, max_files=2) == "Too many files. Maximum number of files is 2."
    assert await error(body, max_files=2.5) == "Too many files. Maximum number of files is 2.5."
    assert await error(body, max_fields=0) == "Too many fields. Maximum number of fields is 0."


@pytest.mark.anyio
async def test_part_size_is_for_fields_not_files() -> None:
    items = await parse(part("f", b"x" * 100, "f") + END, max_part_size=10)
    assert items == [("f", ("f", None, 100, b"x" * 100))]


@pytest.fixture
def max_file_size(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(MultiPartParser, "max_file_size", 2048)
    yield


@pytest.mark.anyio
@pytest.mark.usefixtures("max_file_size")
async def test_max_file_size() -> None:
    assert len(await parse(part("f", b"x" * 2048, "f") + END)) == 1
    message = await error(part("f", b"x" * 2049, "f") + END)
    assert message == "File exceeded maximum size of 2048 bytes (max_file_size)."


# --- files: spooling, batching, closing -------------------------------------------------------


@pytest.fixture
def small_spool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(MultiPartParser, "spool_max_size", 100)
    monkeypatch.setattr(formparsers, "WRITE_BATCH_SIZE", 50)
    yield


@pytest.mark.anyio
@pytest.mark.usefixtures("small_spool")
@pytest.mark.parametrize("chunk", [7, 1000])
async def test_files_past_the_spool_threshold_go_to_disk_in_order(chunk: int) -> None:
    big = bytes(range(256)) * 2
    body = part("big", big, "big") + part("small", b"s" * 100, "s") + part("a", b"1") + END
    form = await multipart_parser(body, chunk=chunk).parse()
    big_file = form["big"]
    small_file = form["small"]
    assert isinstance(big_file, UploadFile) and isinstance(small_file, UploadFile)
    assert big_file.file._rolled  # type: ignore[attr-defined]
    assert not small_file.file._rolled  # type: ignore[attr-defined]
    assert await dump(form) == [
        ("big", ("big", None, 512, big)),
        ("small", ("s", None, 100, b"s" * 100)),
        ("a", "1"),
    ]
    # the UploadFile methods on a file on disk go through a thread (blockbuster is watching)
    await big_file.seek(512)
    await big_file.write(b"more")
    await big_file.seek(510)
    assert await big_file.read() == b"\xfe\xffmore"
    await form.close()
    assert big_file.file.closed


@pytest.mark.anyio
@pytest.mark.usefixtures("small_spool")
async def test_short_writes_and_many_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    real_writev = os.writev

    def short_writev(descriptor: int, buffers: list[bytes]) -> int:
        return real_writev(descriptor, [buffers[0][:1]])  # one byte, whatever was asked

    monkeypatch.setattr(os, "writev", short_writev)
    monkeypatch.setattr(formparsers, "_IOV_MAX", 2)
    big = bytes(range(256)) * 2
    items = await parse(part("big", big, "big") + END, chunk=3)
    assert items == [("big", ("big", None, 512, big))]


@pytest.mark.anyio
@pytest.mark.usefixtures("small_spool")
async def test_disk_errors_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(descriptor: int, buffers: list[bytes]) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "writev", full_disk)
    before = open_descriptors()
    parser = multipart_parser(part("big", b"x" * 500, "big") + END, chunk=10)
    with pytest.raises(OSError, match="No space left"):
        await parser.parse()
    assert all(file.closed for file in parser._files_to_close_on_error)
    assert open_descriptors() == before


@pytest.mark.anyio
async def test_default_spool_threshold() -> None:
    body = part("big", b"x" * (1024 * 1024 + 1), "big") + part("edge", b"y" * 1024 * 1024, "e")
    form = await multipart_parser(body + END, chunk=65536).parse()
    rolled = [value.file._rolled for value in form.values()]  # type: ignore[union-attr]
    assert rolled == [True, False]
    await form.close()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.anyio
@pytest.mark.usefixtures("small_spool")
@pytest.mark.parametrize(
    "tail",
    [
        part("x", b"1") * 3 + END,  # too many fields
        b"--" + BOUNDARY.encode() + b"\r\nbad header\r\n\r\n",  # malformed
        part("x", b"1"),  # no final boundary
    ],
)
async def test_errors_close_every_file(tail: bytes) -> None:
    before = open_descriptors()
    body = part("big", b"x" * 500, "big") + part("small", b"s", "s") + tail
    parser = multipart_parser(body, chunk=50, max_fields=2)
    with pytest.raises(MultiPartException):
        await parser.parse()
    files = parser._files_to_close_on_error
    assert len(files) == 2
    assert all(file.closed for file in files)
    assert open_descriptors() == before


@pytest.mark.anyio
async def test_errors_close_files_kept_in_memory() -> None:
    parser = multipart_parser(part("small", b"s", "s") + part("x", b"1") * 2 + END, max_fields=1)
    with pytest.raises(MultiPartException):
        await parser.parse()
    assert [file.closed for file in parser._files_to_close_on_error] == [True]


@pytest.mark.anyio
@pytest.mark.usefixtures("small_spool")
async def test_client_disconnect_closes_files() -> None:
    before = open_descriptors()
    body = part("big", b"x" * 500, "big")
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", MULTIPART.encode())],
    }
    request: Request[Any] = Request(scope, receive)
    with pytest.raises(ClientDisconnect):
        await request.form()
    assert open_descriptors() == before


@pytest.mark.anyio
@pytest.mark.usefixtures("small_spool")
async def test_cancellation_still_closes_files() -> None:
    before = open_descriptors()
    started = anyio.Event()

    async def stream() -> AsyncGenerator[bytes, None]:
        yield part("big", b"x" * 500, "big")
        started.set()
        await anyio.sleep_forever()
        yield b""  # pragma: no cover (never resumed)

    parser = MultiPartParser(Headers({"content-type": MULTIPART}), stream())
    async with anyio.create_task_group() as group:
        group.start_soon(parser.parse)
        await started.wait()
        group.cancel_scope.cancel()
    assert all(file.closed for file in parser._files_to_close_on_error)
    assert open_descriptors() == before


# --- the python-multipart callback interface --------------------------------------------------


@pytest.mark.anyio
async def test_multipart_callbacks_driven_by_hand() -> None:
    parser = multipart_parser(END)
    for name, value, data in [
        (b"Content-Disposition", b'form-data; name="a"', b"xhelloy"),
        (b"CONTENT-DISPOSITION", b'form-data; name="f"; filename="f.txt"', b"xfiley"),
    ]:
        parser.on_part_begin()
        parser.on_header_field(b"x" + name, 1, len(name) + 1)
        parser.on_header_value(value, 0, len(value))
        parser.on_header_end()
        parser.on_headers_finished()
        parser.on_part_data(data, 1, len(data) - 1)
        parser.on_part_end()
    parser.on_end()
    assert parser._current_part.item_headers == [(b"content-disposition", value)]
    form = await parser.parse()
    assert await dump(form) == [("a", "hello"), ("f", ("f.txt", None, 4, b"file"))]
    await form.close()


def test_multipart_callbacks_apply_the_limits() -> None:
    parser = multipart_parser(END, max_part_size=3)
    parser.on_part_begin()
    parser.on_header_field(b"content-disposition", 0, 19)
    parser.on_header_value(b'form-data; name="a"', 0, 19)
    parser.on_header_end()
    parser.on_headers_finished()
    with pytest.raises(MultiPartException) as info:
        parser.on_part_data(b"abcd", 0, 4)
    assert info.value.message == "Part exceeded maximum size of 0KB."


@pytest.mark.anyio
async def test_form_parser() -> None:
    parser = FormParser(Headers({"content-type": URLENCODED}), stream_of([b"a=1&b=%20", b"&a=2"]))
    form = await parser.parse()
    assert form.multi_items() == [("a", "1"), ("b", " "), ("a", "2")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "limits", "count"),
    [
        (b"a=1&&b=2&", {}, 2),  # empty fields are no fields
        (b"a", {}, 1),
        (b"", {}, 0),
        # counted as each field ends, the one over the limit included; parsing stops there
        # even within one chunk
        (b"&".join(b"f%d=" % i for i in range(100_000)), {"max_fields": 10}, 11),
        (b"a=1&b=" + b"x" * 5000, {"max_part_size": 1024}, 1),
    ],
)
async def test_form_parser_counts_fields(body: bytes, limits: Any, count: int) -> None:
    # Starlette's private counter, which its own tests read.
    parser = FormParser(Headers({"content-type": URLENCODED}), stream_of([body]), **limits)
    try:
        await parser.parse()
    except MultiPartException:
        assert limits
    assert parser._current_fields == count


def test_form_parser_callbacks() -> None:
    parser = FormParser(Headers({}), stream_of([]), max_fields=2, max_part_size=6)
    for name, value in [(b"xa+b", b"%41"), (b"xc", b"")]:
        parser.on_field_start()
        parser.on_field_name(name, 1, len(name))
        parser.on_field_data(value, 0, len(value))
        parser.on_field_end()
    assert parser._items == [("a b", "A"), ("c", "")]
    with pytest.raises(MultiPartException) as info:
        parser.on_field_start()
    assert info.value.message == "Too many fields. Maximum number of fields is 2."
    parser = FormParser(Headers({}), stream_of([]), max_part_size=4)
    parser.on_field_start()
    parser.on_field_name(b"abc", 0, 3)
    with pytest.raises(MultiPartException) as info:
        parser.on_field_data(b"de", 0, 2)
    assert info.value.message == "Field exceeded maximum size of 0KB."


# --- through an application -------------------------------------------------------------------


async def echo(request: Request[Any]) -> JSONResponse:
    async with request.form() as form:
        items = await dump(form)
        assert await request.form() is form
    return JSONResponse(
        [
            [name, value if isinstance(value, str) else [*value[:3], value[3].decode()]]
            for name, value in items
        ]
    )


def test_upload_through_an_application(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(Starling(routes=[Route("/", echo, methods=["POST"])]))
    response = client.post(
        "/",
        data={"a": "1"},
        files={"f": ("f.txt", b"content", "text/plain"), "g": ("g.bin", b"x" * 70_000)},
    )
    assert response.status_code == 200
    assert response.json() == [
        ["a", "1"],
        ["f", ["f.txt", "text/plain", 7, "content"]],
        ["g", ["g.bin", "application/octet-stream", 70_000, "x" * 70_000]],
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (part("a", b"1") * 3 + END, "Too many fields. Maximum number of fields is 2."),
        (part("f", b"1", "f") * 3 + END, "Too many files. Maximum number of files is 2."),
        (part("a", b"x" * 11) + END, "Part exceeded maximum size of 0KB."),
        (b"junk", "Invalid multipart data."),
    ],
)
def test_form_errors_are_400(
    test_client_factory: TestClientFactory, body: bytes, detail: str
) -> None:
    async def endpoint(request: Request[Any]) -> JSONResponse:
        await request.form(max_fields=2, max_files=2, max_part_size=10)
        raise AssertionError("unreachable")  # pragma: no cover (the form is refused)

    client = test_client_factory(Starling(routes=[Route("/", endpoint, methods=["POST"])]))
    response = client.post("/", content=body, headers={"content-type": MULTIPART})
    assert response.status_code == 400
    assert response.text == detail


def test_upload_over_the_body_limit_is_413(test_client_factory: TestClientFactory) -> None:
    app = Starling(routes=[Route("/", echo, methods=["POST"])], max_body_size=1000)
    client = test_client_factory(app)
    response = client.post("/", files={"f": ("f", b"x" * 2000)})
    assert response.status_code == 413
    assert response.text == "Content Too Large"
    response = client.post("/", files={"f": ("f", b"x" * 500)})
    assert response.status_code == 200


def test_streamed_upload_over_the_body_limit_is_413(
    test_client_factory: TestClientFactory,
) -> None:
    # No Content-Length (chunked): the limit is found while the parser reads.
    app = Starling(routes=[Route("/", echo, methods=["POST"])], max_body_size=1000)
    client = test_client_factory(app)
    body = part("f", b"x" * 2000, "f") + END

    def chunks() -> Iterator[bytes]:
        yield from (body[i : i + 100] for i in range(0, len(body), 100))

    response = client.post("/", content=chunks(), headers={"content-type": MULTIPART})
    assert response.status_code == 413
    assert response.text == "Content Too Large"


def body_request(body: bytes) -> Request[Any]:
    messages = [{"type": "http.request", "body": body}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", MULTIPART.encode())],
    }
    return Request(scope, receive)


@pytest.mark.anyio
async def test_form_and_body_interplay() -> None:
    body = part("a", b"x") + END
    request = body_request(body)
    assert (await request.form()).multi_items() == [("a", "x")]
    with pytest.raises(RuntimeError, match="Stream consumed"):
        await request.body()
    request = body_request(body)
    assert await request.body() == body
    form = await request.form()
    assert form.multi_items() == [("a", "x")]
    assert await request.form() is form


def test_upload_spools_are_spooled_temporary_files() -> None:
    # The lean spool holds what the stdlib's does, and rolls over to disk the same way.
    from starling.formparsers import _new_spool

    stdlib = SpooledTemporaryFile(max_size=4)  # noqa: SIM115 (closed in finally, with the other)
    spool = _new_spool(max_size=4)
    try:
        assert isinstance(spool, SpooledTemporaryFile)
        assert sorted(vars(spool)) == sorted(vars(stdlib))
        for file in (stdlib, spool):
            file.write(b"abc")
            assert not file._rolled  # type: ignore[attr-defined]
            file.write(b"de")
            assert file._rolled  # type: ignore[attr-defined]
            file.seek(0)
        assert spool.read() == stdlib.read() == b"abcde"
        assert spool.mode == stdlib.mode == "rb+"
    finally:
        stdlib.close()
        spool.close()


class _Watched(SpooledTemporaryFile[bytes]):
    pass


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("patched", "expected"),
    [
        # a Python whose SpooledTemporaryFile the lean spool does not match: the stdlib class,
        # written and rewound through its own methods
        ("_new_spool", SpooledTemporaryFile),
        # tests (Starlette's own among them) swap the class on the module to watch the files
        ("SpooledTemporaryFile", _Watched),
    ],
)
async def test_the_spool_class_in_use(
    monkeypatch: pytest.MonkeyPatch, patched: str, expected: type[Any]
) -> None:
    monkeypatch.setattr(f"starling.formparsers.{patched}", expected)
    form = await multipart_parser(part("f", b"filedata", "x.txt") + END).parse()
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert type(cast(Any, upload.file)) is expected
    assert await dump(form) == [("f", ("x.txt", None, 8, b"filedata"))]
    await form.close()


def test_the_callbacks_part_exists_before_the_first_part_begins() -> None:
    # As in Starlette, a new parser holds an empty part for the callbacks.
    parser = multipart_parser(END)
    assert parser._current_part == MultipartPart()
    parser.on_part_data(b"xy", 0, 2)
    assert parser._current_part.data == b"xy"
