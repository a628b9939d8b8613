"""Per-call form limits: ``request.form(max_files=, max_fields=, max_part_size=, max_file_size=,
spool_max_size=)``, one matrix over urlencoded and multipart bodies, through a real app."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starling._formerrors import FileTooLarge
from starling.applications import Starling
from starling.datastructures import UploadFile
from starling.exceptions import HTTPException
from starling.formparsers import MultiPartParser
from starling.requests import Request
from starling.responses import JSONResponse
from starling.routing import Route
from starling.types import Message
from tests.types import TestClientFactory

KiB = 1024


async def read_form(request: Request) -> JSONResponse:
    limits = json.loads(request.query_params.get("limits", "{}"))
    async with request.form(**limits) as form:
        items: list[Any] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                rolled = value.file._rolled  # type: ignore[attr-defined]
                items.append([name, {"size": value.size, "on_disk": rolled}])
            else:
                items.append([name, len(value)])
        return JSONResponse(items)


app = Starling(routes=[Route("/", read_form, methods=["POST"])])

# What a client sends: (name, size in bytes, whether it is a file). A urlencoded body cannot
# carry files: there, a file is a field of the same size, which the field limits must bound.
Part = tuple[str, int, bool]


def multipart_body(parts: list[Part]) -> bytes:
    body = b""
    for name, size, is_file in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{name}.txt"' if is_file else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += b"x" * size + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


BOUNDARY = "limits-boundary"


def post(client: Any, kind: str, parts: list[Part], **limits: Any) -> Any:
    params = {"limits": json.dumps(limits)}
    if kind == "urlencoded":
        # a urlencoded field's size counts its name too (Starlette's rule)
        data = {name: "x" * max(0, size - len(name)) for name, size, _ in parts}
        return client.post("/", params=params, data=data)
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return client.post(
        "/", params=params, content=multipart_body(parts), headers={"content-type": content_type}
    )


FIELD_TOO_LARGE = {
    "urlencoded": "Field exceeded maximum size of {}KB.",
    "multipart": "Part exceeded maximum size of {}KB.",
}

# (limits, parts, urlencoded outcome, multipart outcome): an outcome is 200 or
# (status, detail). Starlette's limits answer 400 with Starlette's messages; max_file_size,
# beyond Starlette, answers 413 naming the limit.
MATRIX: list[tuple[dict[str, Any], list[Part], Any, Any]] = [
    ({"max_fields": 2}, [("a", 1, False), ("b", 1, False)], 200, 200),
    (
        {"max_fields": 2},
        [("a", 1, False), ("b", 1, False), ("c", 1, False)],
        (400, "Too many fields. Maximum number of fields is 2."),
        (400, "Too many fields. Maximum number of fields is 2."),
    ),
    ({"max_part_size": 2 * KiB}, [("a", 2 * KiB, False)], 200, 200),
    (
        {"max_part_size": 2 * KiB},
        [("a", 2 * KiB + 1, False)],
        (400, FIELD_TOO_LARGE["urlencoded"].format(2)),
        (400, FIELD_TOO_LARGE["multipart"].format(2)),
    ),
    # Files count apart from fields; a file sent urlencoded is a field and counts as one.
    (
        {"max_files": 1, "max_fields": 1},
        [("f", 1, True), ("g", 1, True)],
        (400, "Too many fields. Maximum number of fields is 1."),
        (400, "Too many files. Maximum number of files is 1."),
    ),
    ({"max_files": 2, "max_fields": 2}, [("f", 1, True), ("g", 1, True)], 200, 200),
    # A file's size: max_file_size in multipart; the same data as a field meets max_part_size.
    ({"max_file_size": 4 * KiB, "max_part_size": 4 * KiB}, [("f", 4 * KiB, True)], 200, 200),
    (
        {"max_file_size": 4 * KiB, "max_part_size": 4 * KiB},
        [("f", 4 * KiB + 1, True)],
        (400, FIELD_TOO_LARGE["urlencoded"].format(4)),
        (413, "File exceeded maximum size of 4096 bytes (max_file_size)."),
    ),
    (
        {"max_file_size": 0},
        [("f", 1, True)],
        200,  # urlencoded: a 1-byte field, well under max_part_size
        (413, "File exceeded maximum size of 0 bytes (max_file_size)."),
    ),
    ({"max_file_size": 0}, [("f", 0, True)], 200, 200),
    # Files are not fields: max_part_size does not bound them (Starlette's rule).
    (
        {"max_part_size": 1 * KiB},
        [("f", 2 * KiB, True)],
        (400, FIELD_TOO_LARGE["urlencoded"].format(1)),
        200,
    ),
]


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
@pytest.mark.parametrize(("limits", "parts", "urlencoded", "multipart"), MATRIX)
def test_limit_matrix(
    test_client_factory: TestClientFactory,
    kind: str,
    limits: dict[str, Any],
    parts: list[Part],
    urlencoded: Any,
    multipart: Any,
) -> None:
    expected = urlencoded if kind == "urlencoded" else multipart
    with test_client_factory(app) as client:
        response = post(client, kind, parts, **limits)
    if expected == 200:
        assert response.status_code == 200, response.text
        assert [item[0] for item in response.json()] == [name for name, _, _ in parts]
    else:
        assert (response.status_code, response.text) == expected


@pytest.mark.parametrize(
    ("limits", "size", "on_disk"),
    [
        ({}, 100 * KiB, False),  # the default threshold: 1 MiB
        ({"spool_max_size": 10 * KiB}, 10 * KiB, False),
        ({"spool_max_size": 10 * KiB}, 10 * KiB + 1, True),
        ({"spool_max_size": 0}, 1, True),
    ],
)
def test_spool_max_size_per_call(
    test_client_factory: TestClientFactory, limits: dict[str, int], size: int, on_disk: bool
) -> None:
    with test_client_factory(app) as client:
        response = post(client, "multipart", [("f", size, True)], **limits)
    assert response.json() == [["f", {"size": size, "on_disk": on_disk}]]


def test_per_call_limits_do_not_change_the_class_defaults(
    test_client_factory: TestClientFactory,
) -> None:
    with test_client_factory(app) as client:
        post(client, "multipart", [("f", 1, True)], max_file_size=5, spool_max_size=7)
        response = post(client, "multipart", [("f", 2 * KiB, True)])
    assert response.json() == [["f", {"size": 2 * KiB, "on_disk": False}]]
    assert (MultiPartParser.max_file_size, MultiPartParser.spool_max_size) == (None, 1024 * 1024)


@pytest.mark.parametrize("name", ["max_file_size", "spool_max_size"])
@pytest.mark.parametrize("value", [-1, 1.5, "10", True])
def test_a_bad_limit_fails_at_the_call(name: str, value: Any) -> None:
    request = Request({"type": "http", "headers": []})
    with pytest.raises(ValueError, match=rf"request.form\({name}=...\) takes a number of bytes"):
        request.form(**{name: value})


@pytest.mark.anyio
async def test_a_file_over_the_limit_stops_the_read() -> None:
    """APPSEC: the parser stops at the first chunk past max_file_size: a huge upload is
    neither held nor written to disk, and the rest of the body is never asked for."""
    boundary = b"b"
    head = b'--b\r\nContent-Disposition: form-data; name="f"; filename="f"\r\n\r\n'
    chunk = b"x" * (64 * KiB)
    received = 0

    async def receive() -> Message:
        nonlocal received
        received += 1
        if received == 1:
            return {"type": "http.request", "body": head, "more_body": True}
        assert received < 10_000, "read on past the limit"
        return {"type": "http.request", "body": chunk, "more_body": True}

    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(b"content-type", b"multipart/form-data; boundary=" + boundary)],
        "app": app,
    }
    request: Request = Request(scope, receive)
    with pytest.raises(HTTPException) as info:
        await request.form(max_file_size=100 * KiB)
    assert info.value.status_code == 413
    assert received == 3  # the headers, one chunk under the limit, the chunk over it


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=4),
    limit=st.integers(0, 300),
    spool=st.integers(0, 300),
    chunk=st.integers(1, 97),
)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_form_is_read_iff_every_file_is_within_the_limit(
    backend: str, sizes: list[int], limit: int, spool: int, chunk: int
) -> None:
    parts = [(f"f{index}", size, True) for index, size in enumerate(sizes)]
    body = multipart_body(parts)
    chunks = [body[start : start + chunk] for start in range(0, len(body), chunk)]

    async def read() -> list[tuple[int, bool]]:
        async def receive() -> Message:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

        content_type = f"multipart/form-data; boundary={BOUNDARY}".encode()
        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type)]}
        async with Request(scope, receive).form(max_file_size=limit, spool_max_size=spool) as form:
            uploads = [upload for _, upload in form.multi_items()]
            assert all(isinstance(upload, UploadFile) for upload in uploads)
            return [(upload.size, upload.file._rolled) for upload in uploads]  # type: ignore

    if max(sizes) > limit:
        with pytest.raises(FileTooLarge):
            anyio.run(read, backend=backend)
    else:
        assert anyio.run(read, backend=backend) == [(size, size > spool) for size in sizes]
