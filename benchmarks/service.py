"""A realistic service: the middleware stack production apps carry, ~60 routes in two mounts.

Written once against the Starlette API and built from either package by name ("starling" or
"starlette"), so both do the same work; ``make_bare_service`` is a hand-written ASGI app doing
exactly the same work (the limit): the same host check, CORS answers, signed session cookie
(itsdangerous, as SessionMiddleware), bearer authentication, gzip at the same level and the
same JSON bytes. ``benchmarks.realistic`` checks the three answer alike before timing them.

Middleware, outermost first: TrustedHost (a few hosts and a wildcard), CORS (one origin,
credentials, all methods and headers), Session (signed cookie), Authentication (bearer token),
GZip (minimum_size=500), and the app's own pure-ASGI middleware adding ``x-process-time``.
"""

from __future__ import annotations

import importlib
import json
import time
from base64 import b64decode, b64encode
from typing import Any

from benchmarks.apps import ASGIApp, Message, Receive, Scope, Send

ALLOWED_HOSTS = ["api.example.com", "127.0.0.1", "localhost", "*.example.org"]
ORIGIN = "https://app.example.com"
SECRET = "benchmark-session-secret"
TOKEN = "bench-token-0123456789"
USER = "alice"
FILLER_ROUTES = 28  # per mount: with the named routes, about 60 in all
GZIP_MINIMUM = 500
GZIP_LEVEL = 9  # GZipMiddleware's default compresslevel


def item(item_id: int) -> dict[str, Any]:
    return {"id": item_id, "name": f"item {item_id}", "price": item_id % 997 / 10, "tags": ["a"]}


def page(offset: int, limit: int) -> dict[str, Any]:
    """The ``list`` answer: about 2 KB of JSON."""
    items = [item(offset + index) for index in range(limit)]
    return {"items": items, "offset": offset, "limit": limit, "total": 1_000_000}


def make_service(package: str) -> ASGIApp:
    """The service written against ``package`` ("starling" or "starlette")."""

    def load(name: str) -> Any:
        return importlib.import_module(f"{package}.{name}")

    applications, routing, responses = load("applications"), load("routing"), load("responses")
    authentication, middleware = load("authentication"), load("middleware")
    auth_mw, cors = load("middleware.authentication"), load("middleware.cors")
    gzip, sessions = load("middleware.gzip"), load("middleware.sessions")
    trustedhost = load("middleware.trustedhost")
    Route, Mount = routing.Route, routing.Mount
    JSONResponse, PlainTextResponse = responses.JSONResponse, responses.PlainTextResponse
    requires = authentication.requires

    class BearerBackend(authentication.AuthenticationBackend):  # type: ignore[misc,name-defined]
        async def authenticate(self, conn: Any) -> Any:
            header = conn.headers.get("authorization")
            if header is None:
                return None
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or token != TOKEN:
                raise authentication.AuthenticationError("Invalid token")
            return authentication.AuthCredentials(["authenticated"]), authentication.SimpleUser(
                USER
            )

    class ProcessTime:
        """The app's own middleware: pure ASGI, wrapping ``send``."""

        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()

            async def send_with_time(message: Message) -> None:
                if message["type"] == "http.response.start":
                    elapsed = f"{time.perf_counter() - start:.6f}".encode()
                    message["headers"] = [*message["headers"], (b"x-process-time", elapsed)]
                await send(message)

            await self.app(scope, receive, send_with_time)

    @requires("authenticated")
    async def list_items(request: Any) -> Any:
        offset = int(request.query_params.get("offset", "0"))
        limit = min(int(request.query_params.get("limit", "20")), 50)
        request.session["views"] = request.session.get("views", 0) + 1
        response = JSONResponse(page(offset, limit))
        response.set_cookie("last_seen", str(offset), max_age=3600)
        return response

    @requires("authenticated")
    async def get_item(request: Any) -> Any:
        return JSONResponse(item(request.path_params["item_id"]))

    @requires("authenticated")
    async def create_item(request: Any) -> Any:
        body = await request.json()
        return JSONResponse({"id": 1_000_001, "name": body["name"], "owner": USER}, 201)

    @requires("authenticated")
    async def filler(request: Any) -> Any:  # pragma: no cover (never requested)
        return PlainTextResponse("filler")

    async def health(request: Any) -> Any:
        return PlainTextResponse("ok")

    items = [
        Route("/", list_items),
        Route("/", create_item, methods=["POST"]),
        Route("/{item_id:int}", get_item),
        *[Route(f"/section{n}/{{item_id:int}}", filler) for n in range(FILLER_ROUTES)],
    ]
    users = [Route(f"/group{n}/{{user_id:int}}", filler) for n in range(FILLER_ROUTES)]
    Middleware = middleware.Middleware
    return applications.Starlette(  # type: ignore[no-any-return]
        routes=[
            Route("/health", health),
            Mount("/api/items", routes=items),
            Mount("/api/users", routes=users),
        ],
        middleware=[
            Middleware(trustedhost.TrustedHostMiddleware, allowed_hosts=ALLOWED_HOSTS),
            Middleware(
                cors.CORSMiddleware,
                allow_origins=[ORIGIN],
                allow_credentials=True,
                allow_methods=["*"],
                allow_headers=["*"],
            ),
            Middleware(sessions.SessionMiddleware, secret_key=SECRET),
            Middleware(auth_mw.AuthenticationMiddleware, backend=BearerBackend()),
            Middleware(gzip.GZipMiddleware, minimum_size=GZIP_MINIMUM),
            Middleware(ProcessTime),
        ],
    )


# ---------------------------------------------------------------------------------------------
# The bare service: the same answers, hand-written, nothing general.

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_CORS_METHODS = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, QUERY"
_PREFLIGHT_VARY = (
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    b"Access-Control-Request-Private-Network"
)
_SESSION_ATTRS = b"; path=/; Max-Age=1209600; httponly; samesite=lax"
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
Headers = list[tuple[bytes, bytes]]


def _add_vary(headers: Headers, token: bytes) -> None:
    for index, (name, value) in enumerate(headers):
        if name == b"vary":
            headers[index] = (name, value + b", " + token)
            return
    headers.append((b"vary", token))


def make_bare_service() -> ASGIApp:
    import gzip as gzip_module
    import io

    from itsdangerous import BadSignature, TimestampSigner

    signer = TimestampSigner(SECRET)
    hosts = {host for host in ALLOWED_HOSTS if not host.startswith("*")}
    suffixes = tuple(host[1:] for host in ALLOWED_HOSTS if host.startswith("*"))
    origin_allowed = ORIGIN.encode()
    token_header = f"Bearer {TOKEN}".encode()

    def load_session(cookie_header: bytes | None) -> dict[str, Any]:
        for pair in (cookie_header or b"").split(b";"):
            name, _, value = pair.strip().partition(b"=")
            if name == b"session":
                try:
                    loaded: dict[str, Any] = json.loads(
                        b64decode(signer.unsign(value, max_age=14 * 24 * 60 * 60))
                    )
                    return loaded
                except (BadSignature, ValueError):  # pragma: no cover (never sent)
                    return {}
        return {}

    async def read_body(receive: Receive) -> bytes:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def send_all(send: Send, status: int, headers: Headers, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover (http only here)
            return
        start = time.perf_counter()
        request_headers = dict(scope["headers"])
        host = request_headers.get(b"host", b"").decode("latin-1").partition(":")[0]
        if host not in hosts and not host.endswith(suffixes):  # pragma: no cover (never sent)
            await send_all(send, 400, [(b"content-type", _TEXT)], b"Invalid host header")
            return
        method = scope["method"]
        origin = request_headers.get(b"origin")
        if method == "OPTIONS" and b"access-control-request-method" in request_headers:
            assert origin == origin_allowed
            headers = [
                (b"vary", _PREFLIGHT_VARY),
                (b"access-control-allow-methods", _CORS_METHODS),
                (b"access-control-max-age", b"600"),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-origin", origin),
                (
                    b"access-control-allow-headers",
                    request_headers[b"access-control-request-headers"],
                ),
                (b"content-length", b"2"),
                (b"content-type", _TEXT),
            ]
            await send_all(send, 200, headers, b"OK")
            return
        session = load_session(request_headers.get(b"cookie"))
        authenticated = request_headers.get(b"authorization") == token_header
        path = scope["path"]
        status, content_type, extra, accessed = 200, _JSON, [], False
        content: Any
        if path == "/health" and method == "GET":
            body, content_type = b"ok", _TEXT
        elif not authenticated:  # pragma: no cover (every request here carries the token)
            status, body, content_type = 403, b"Forbidden", _TEXT
        elif path == "/api/items/" and method == "GET":
            query = dict(pair.split("=", 1) for pair in scope["query_string"].decode().split("&"))
            offset, limit = int(query.get("offset", "0")), min(int(query.get("limit", "20")), 50)
            session["views"] = session.get("views", 0) + 1
            accessed = True
            content = page(offset, limit)
            body = _ENCODER.encode(content).encode()
            cookie = f"last_seen={offset}; Max-Age=3600; Path=/; SameSite=lax"
            extra = [(b"set-cookie", cookie.encode())]
        elif path.startswith("/api/items/") and path[11:].isdigit() and method == "GET":
            body = _ENCODER.encode(item(int(path[11:]))).encode()
        elif path == "/api/items/" and method == "POST":
            payload = json.loads(await read_body(receive))
            content = {"id": 1_000_001, "name": payload["name"], "owner": USER}
            status, body = 201, _ENCODER.encode(content).encode()
        else:  # pragma: no cover (never requested)
            status, body, content_type = 404, b"Not Found", _TEXT
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", content_type)]
        headers += extra
        headers.append((b"x-process-time", f"{time.perf_counter() - start:.6f}".encode()))
        if len(body) >= GZIP_MINIMUM and b"gzip" in request_headers.get(b"accept-encoding", b""):
            buffer = io.BytesIO()
            with gzip_module.GzipFile(mode="wb", fileobj=buffer, compresslevel=GZIP_LEVEL) as out:
                out.write(body)
            body = buffer.getvalue()
            headers[0] = (b"content-length", str(len(body)).encode())
            _add_vary(headers, b"Accept-Encoding")
            headers.append((b"content-encoding", b"gzip"))
        if accessed:
            _add_vary(headers, b"Cookie")
            signed = signer.sign(b64encode(json.dumps(session).encode()))
            headers.append((b"set-cookie", b"session=" + signed + _SESSION_ATTRS))
        if origin is not None:
            headers.append((b"access-control-allow-credentials", b"true"))
            headers.append((b"access-control-allow-origin", origin))
        _add_vary(headers, b"Origin")
        await send_all(send, status, headers, body)

    return app


def __getattr__(name: str) -> ASGIApp:
    # Built on first use: uvicorn imports "benchmarks.service:starling_service" and the like.
    if name == "starling_service":
        return make_service("starling")
    if name == "starlette_service":
        return make_service("starlette")
    if name == "bare_service":
        return make_bare_service()
    raise AttributeError(name)
