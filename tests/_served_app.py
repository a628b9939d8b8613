"""The app the real-server tests and the soak serve with uvicorn (tests/_uvicorn_process.py).

Every endpoint is also called in process (tests/test_soak.py), so the code here is covered.
Nothing here catches ClientDisconnect or WebSocketDisconnect: a client leaving must end the
request quietly on its own. The only traceback the server may log is EXPECTED_FAILURE's.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from starling.applications import Starling
from starling.datastructures import UploadFile
from starling.requests import Request
from starling.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starling.routing import Route, WebSocketRoute
from starling.websockets import WebSocket

EXPECTED_FAILURE = "served app: this handler raises on purpose"
FILE_SIZE = 4 * 1024 * 1024
STREAM_CHUNK = b"x" * 4096
MAX_STREAM_CHUNKS = 4096


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def json_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"items": list(range(20)), "name": request.query_params.get("name")})


async def upload(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(await request.body())))


async def form(request: Request) -> JSONResponse:
    async with request.form() as data:
        sizes = {
            key: value.size if isinstance(value, UploadFile) else len(value)
            for key, value in data.multi_items()
        }
    return JSONResponse(sizes)


async def half_read(request: Request) -> PlainTextResponse:
    # Reads the start of the upload only; the form (and its file) closes on the way out.
    async with request.form() as data:
        upload = data["file"]
        assert isinstance(upload, UploadFile)
        return PlainTextResponse(str(len(await upload.read(4096))))


async def stream(request: Request) -> StreamingResponse:
    count = min(int(request.query_params.get("chunks", "16")), MAX_STREAM_CHUNKS)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield STREAM_CHUNK
            await anyio.sleep(0)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def file(request: Request) -> FileResponse:
    path: Path = request.app.state.file_path
    return FileResponse(path)


async def url(request: Request) -> JSONResponse:
    # Everything a hostile Host header reaches: the URL, its parts, and a link built from it.
    return JSONResponse(
        {
            "url": str(request.url),
            "host": request.url.hostname,
            "link": str(request.url_for("health")),
        }
    )


async def fail(request: Request) -> PlainTextResponse:
    raise RuntimeError(EXPECTED_FAILURE)


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


def _make_download() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="starling-served-"))
    path = directory / "download.bin"
    path.write_bytes(bytes(range(256)) * (FILE_SIZE // 256))
    return path


def _remove_download(path: Path) -> None:
    path.unlink()
    path.parent.rmdir()


@asynccontextmanager
async def lifespan(app: Starling) -> AsyncIterator[dict[str, Any]]:
    # File work in a thread: the event loop must not block (blockbuster checks it in tests).
    path = await anyio.to_thread.run_sync(_make_download)
    app.state.file_path = path
    try:
        yield {}
    finally:
        await anyio.to_thread.run_sync(_remove_download, path)


app = Starling(
    routes=[
        Route("/health", health),
        Route("/json", json_endpoint),
        Route("/upload", upload, methods=["POST"]),
        Route("/form", form, methods=["POST"]),
        Route("/half-read", half_read, methods=["POST"]),
        Route("/stream", stream),
        Route("/file", file),
        Route("/url", url),
        Route("/fail", fail),
        WebSocketRoute("/ws", echo),
    ],
    lifespan=lifespan,
)
