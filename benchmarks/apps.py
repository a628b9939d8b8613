"""The benchmarked apps: the same app in starling and Starlette, and a bare ASGI app (the limit).

starling and Starlette get the very same code, imported from either package by name, so both
do the same work. Routes: ``GET /`` text, ``GET /json``, ``GET /users/{id:int}``,
``POST /upload`` (multipart: one file and one field), then ``n_routes`` parameterised routes,
then ``GET /deep``. uvicorn serves the module-level ``starling_app``, ``starlette_app`` and
``bare_app`` (built with ``DEEP_ROUTES`` routes before ``/deep``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEEP_ROUTES = 1000
HELLO = "Hello, world!"
JSON_PAYLOAD = {"message": "Hello, world!", "ok": True, "items": [1, 2, 3]}


def filler_path(index: int) -> str:
    """The ``index``-th parameterised route registered before ``/deep``."""
    return f"/section{index}/{{item_id:int}}"


def make_framework_app(package: str, n_routes: int = DEEP_ROUTES) -> ASGIApp:
    """The benchmark app written against ``package`` ("starling" or "starlette")."""
    applications = importlib.import_module(f"{package}.applications")
    responses = importlib.import_module(f"{package}.responses")
    routing = importlib.import_module(f"{package}.routing")
    plain, json_response, route = responses.PlainTextResponse, responses.JSONResponse, routing.Route

    async def hello(request: Any) -> Any:
        return plain(HELLO)

    async def json_endpoint(request: Any) -> Any:
        return json_response(JSON_PAYLOAD)

    async def user(request: Any) -> Any:
        return json_response({"id": request.path_params["id"]})

    async def upload(request: Any) -> Any:
        async with request.form() as form:
            file = form["file"]
            data = await file.read()
            return json_response({"field": form["field"], "size": len(data)})

    async def filler(request: Any) -> Any:  # pragma: no cover (never requested)
        return plain("filler")

    async def deep(request: Any) -> Any:
        return plain("deep")

    routes = [
        route("/", hello),
        route("/json", json_endpoint),
        route("/users/{id:int}", user),
        route("/upload", upload, methods=["POST"]),
    ]
    routes += [route(filler_path(index), filler) for index in range(n_routes)]
    routes.append(route("/deep", deep))
    return applications.Starlette(routes=routes)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# The bare ASGI app: what a hand-written app does for the same answers, with nothing general.

_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON_HEADERS = [(b"content-type", b"application/json")]


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _dumps(content: Any) -> bytes:
    return _ENCODER.encode(content).encode()


async def _send(
    send: Send, headers: list[tuple[bytes, bytes]], body: bytes, status: int = 200
) -> None:
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": status, "headers": [length, *headers]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _multipart(scope: Scope, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    # python-multipart: the parser Starlette uses
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type = dict(scope["headers"])[b"content-type"]
    _, params = parse_options_header(content_type)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    state: dict[str, Any] = {"headers": [], "data": []}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] = data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["headers"].append((state["field"].lower(), data[start:end]))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])

    def on_part_end() -> None:
        disposition = dict(state["headers"])[b"content-disposition"]
        _, options = parse_options_header(disposition)
        name = options[b"name"].decode()
        data = b"".join(state["data"])
        if b"filename" in options:
            files[name] = data
        else:
            fields[name] = data.decode()
        state["headers"], state["data"] = [], []

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    parser.write(body)
    parser.finalize()
    return fields, files


def make_bare_app(n_routes: int = DEEP_ROUTES) -> ASGIApp:
    """A hand-written ASGI app answering the same requests with the same bytes."""
    prefixes = {filler_path(index).split("/")[1] for index in range(n_routes)}
    not_found = b"Not Found"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = scope["method"]
        if path == "/" and method == "GET":
            await _send(send, _TEXT_HEADERS, HELLO.encode())
        elif path == "/json" and method == "GET":
            await _send(send, _JSON_HEADERS, _dumps(JSON_PAYLOAD))
        elif path.startswith("/users/") and path[7:].isdigit() and method == "GET":
            await _send(send, _JSON_HEADERS, _dumps({"id": int(path[7:])}))
        elif path == "/upload" and method == "POST":
            fields, files = _multipart(scope, await _read_body(receive))
            payload = {"field": fields["field"], "size": len(files["file"])}
            await _send(send, _JSON_HEADERS, _dumps(payload))
        elif path == "/deep" and method == "GET":
            await _send(send, _TEXT_HEADERS, b"deep")
        elif path.split("/")[1] in prefixes:  # pragma: no cover (never requested)
            await _send(send, _TEXT_HEADERS, b"filler")
        else:
            await _send(send, _TEXT_HEADERS, not_found, status=404)

    return app


def __getattr__(name: str) -> ASGIApp:
    # Built on first use: uvicorn imports "benchmarks.apps:starling_app" and the like.
    if name == "starling_app":
        return make_framework_app("starling")
    if name == "starlette_app":
        return make_framework_app("starlette")
    if name == "bare_app":
        return make_bare_app()
    raise AttributeError(name)
