"""The board: sign in, post a message with an optional image, watch the feed update live, chat.

Everything it uses is starling's: sessions, CSRF protection, security headers, compression,
rate limiting, per-route upload limits, Server-Sent Events and WebSockets fed by broadcast,
Jinja2 templates and static files with Range and ETag. With no configuration it keeps
everything in memory (one process, nothing to install); with ``REDIS_URL`` set, sessions,
rate limits, messages and broadcast live in Redis, so several workers serve one board.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import jinja2

from examples.board.messages import MemoryMessages, Message, MessageStore, RedisMessages
from starling.applications import Starling
from starling.broadcast import Broadcast
from starling.datastructures import UploadFile
from starling.exceptions import HTTPException
from starling.middleware import Middleware
from starling.middleware.compression import CompressionMiddleware
from starling.middleware.csrf import CSRFMiddleware
from starling.middleware.ratelimit import MemoryStore as MemoryLimits
from starling.middleware.ratelimit import RateLimit, RateLimitMiddleware
from starling.middleware.ratelimit import RedisStore as RedisLimits
from starling.middleware.security import SecurityHeadersMiddleware
from starling.requests import Request
from starling.responses import PlainTextResponse, RedirectResponse, Response
from starling.routing import Mount, Route, WebSocketRoute
from starling.sessions import MemoryStore as MemorySessions
from starling.sessions import RedisStore as RedisSessions
from starling.sessions import SessionStoreMiddleware, regenerate
from starling.sse import EventSourceResponse, ServerSentEvent
from starling.staticfiles import StaticFiles
from starling.templating import Jinja2Templates
from starling.websockets import WebSocket, WebSocketDisconnect

HERE = Path(__file__).parent
MAX_NAME = 40
MAX_TEXT = 500
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_CHAT = 300
# The first bytes of each image format the board accepts, and the extension it is saved under:
# the file's content decides, never the name or Content-Type the browser sent.
IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": ".png",
    b"\xff\xd8\xff": ".jpg",
    b"GIF87a": ".gif",
    b"GIF89a": ".gif",
}

# Templates are read and compiled once, here, not on the event loop while serving (jinja2's
# loader reads files with blocking calls, and with auto_reload it would stat them per request).
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        auto_reload=False,
    )
)
for _name in ("base.html", "board.html"):
    templates.get_template(_name)


@dataclass
class Settings:
    redis_url: str | None = None
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    upload_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="board-")))
    posts_per_minute: int = 10

    @classmethod
    def from_environ(cls) -> Settings:
        settings = cls(redis_url=os.environ.get("REDIS_URL") or None)
        if os.environ.get("BOARD_SECRET"):
            settings.secret = os.environ["BOARD_SECRET"]
        if os.environ.get("BOARD_UPLOAD_DIR"):
            settings.upload_dir = Path(os.environ["BOARD_UPLOAD_DIR"])
        return settings


def _image_extension(head: bytes) -> str | None:
    for signature, extension in IMAGE_SIGNATURES.items():
        if head.startswith(signature):
            return extension
    return None


def create_app(settings: Settings | None = None) -> Starling:
    settings = settings or Settings.from_environ()
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    if settings.redis_url:
        messages: MessageStore = RedisMessages(settings.redis_url)
        broadcast = Broadcast(settings.redis_url)
        sessions: Any = RedisSessions(settings.redis_url, prefix="board:session:")
        limits: Any = RedisLimits(settings.redis_url)
    else:
        messages = MemoryMessages()
        broadcast = Broadcast("memory://")
        sessions = MemorySessions(max_sessions=10_000)
        limits = MemoryLimits()

    def signed_in(request: Request | WebSocket) -> str | None:
        name = request.session.get("name")
        return name if isinstance(name, str) else None

    async def board(request: Request) -> Response:
        context = {"name": signed_in(request), "messages": await messages.recent()}
        return templates.TemplateResponse(request, "board.html", context)

    async def sign_in(request: Request) -> Response:
        form = await request.form(max_fields=4, max_files=0)
        name = str(form.get("name", "")).strip()
        if not name or len(name) > MAX_NAME:
            raise HTTPException(400, f"A name is 1 to {MAX_NAME} characters.")
        # A new session id at every sign-in: an id planted before it is worth nothing after.
        regenerate(request)
        request.session["name"] = name
        return RedirectResponse("/", status_code=303)

    async def sign_out(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/", status_code=303)

    async def post_message(request: Request) -> Response:
        name = signed_in(request)
        if name is None:
            raise HTTPException(401, "Sign in to post.")
        form = await request.form(max_fields=4, max_files=1, max_file_size=MAX_IMAGE_BYTES)
        text = str(form.get("text", "")).strip()
        if not text or len(text) > MAX_TEXT:
            raise HTTPException(400, f"A message is 1 to {MAX_TEXT} characters.")
        image = form.get("image")
        saved = None
        if isinstance(image, UploadFile) and image.filename:
            saved = await _save_image(image, settings.upload_dir)
        message = await messages.add(name, text, saved)
        await broadcast.publish("feed", message.to_json())
        if request.headers.get("accept") == "application/json":
            return Response(message.to_json(), 201, media_type="application/json")
        return RedirectResponse("/", status_code=303)

    async def events(request: Request) -> Response:
        # A reconnecting EventSource sends the id of the last event it saw: resume after it.
        try:
            after = int(request.headers.get("last-event-id", "0"))
        except ValueError:
            after = 0

        async def feed() -> AsyncIterator[ServerSentEvent]:
            # Subscribed before the replay, so nothing posted in between is missed; what both
            # bring (or what the browser saw before it reconnected) is sent once, by id.
            last = after
            async with broadcast.subscribe("feed") as subscriber:
                for message in await messages.recent(after):
                    yield _as_event(message)
                    last = message.id
                async for event in subscriber:
                    message = Message.from_json(event.message)
                    if message.id > last:
                        yield _as_event(message)
                        last = message.id

        return EventSourceResponse(feed(), ping=10)

    async def chat(websocket: WebSocket) -> None:
        name = signed_in(websocket)
        if name is None:
            await websocket.close(code=1008, reason="sign in first")
            return
        await websocket.accept()
        async with broadcast.subscribe("chat") as subscriber:

            async def forward() -> None:
                async for event in subscriber:
                    await websocket.send_text(event.message)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(forward)
                try:
                    while True:
                        line = (await websocket.receive_text()).strip()[:MAX_CHAT]
                        if line:
                            await broadcast.publish(
                                "chat", json.dumps({"author": name, "text": line})
                            )
                except WebSocketDisconnect:
                    pass
                tasks.cancel_scope.cancel()

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starling) -> AsyncIterator[None]:
        async with broadcast:
            yield
        if isinstance(messages, RedisMessages):
            await messages.close()

    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(CompressionMiddleware),
        Middleware(SessionStoreMiddleware, store=sessions, cookie_name="board"),
        Middleware(CSRFMiddleware, secret=settings.secret),
        Middleware(
            RateLimitMiddleware,
            rules=[
                RateLimit(f"{settings.posts_per_minute}/minute", path="/messages", methods=["POST"])
            ],
            store=limits,
        ),
    ]
    routes = [
        Route("/", board, name="board"),
        Route("/signin", sign_in, methods=["POST"], name="sign_in"),
        Route("/signout", sign_out, methods=["POST"], name="sign_out"),
        Route("/messages", post_message, methods=["POST"], name="post_message"),
        Route("/events", events, name="events"),
        Route("/health", health),
        WebSocketRoute("/chat", chat, name="chat"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Mount("/uploads", StaticFiles(directory=settings.upload_dir), name="uploads"),
    ]
    return Starling(routes=routes, middleware=middleware, lifespan=lifespan)


def _as_event(message: Message) -> ServerSentEvent:
    return ServerSentEvent(message.to_json(), event="message", id=str(message.id))


async def _save_image(upload: UploadFile, directory: Path) -> str:
    head = await upload.read(16)
    extension = _image_extension(head)
    if extension is None:
        raise HTTPException(415, "The image must be a PNG, JPEG or GIF file.")
    await upload.seek(0)
    name = secrets.token_hex(16) + extension
    data = await upload.read()
    await anyio.Path(directory / name).write_bytes(data)
    return name
