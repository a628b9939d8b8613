"""A FastAPI app that does what FastAPI users do every day, written for FastAPI on Starlette
(nothing here knows about starling). tests/integration/test_fastapi_app.py runs it on starling
and expects the responses it gives on Starlette."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Cookie,
    Depends,
    FastAPI,
    Form,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"

# What happened, in order: dependency set-up and clean-up, background tasks, lifespan.
events: list[str] = []


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    events.append("startup")
    yield {"greeting": "hello from the lifespan"}
    events.append("shutdown")


app = FastAPI(lifespan=lifespan, max_body_size=1_000_000)
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


# -- parameters and models ------------------------------------------------------------------


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class StoredItem(BaseModel):
    id: int
    name: str
    price_with_tax: float
    tags: list[str]


@app.get("/items/{item_id}")
def read_item(
    item_id: int,
    q: str | None = None,
    limit: Annotated[int, Query(le=100)] = 10,
    x_token: Annotated[str | None, Header()] = None,
    session: Annotated[str | None, Cookie()] = None,
) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "limit": limit, "x_token": x_token, "session": session}


@app.post("/items/{item_id}", status_code=status.HTTP_201_CREATED, response_model=StoredItem)
async def create_item(item_id: int, item: Item) -> dict[str, Any]:
    return {**item.model_dump(), "id": item_id, "price_with_tax": round(item.price * 1.2, 2)}


# -- dependencies ---------------------------------------------------------------------------


def pagination(skip: int = 0, limit: int = 10) -> dict[str, int]:
    return {"skip": skip, "limit": limit}


async def current_user(x_user: Annotated[str | None, Header()] = None) -> str:
    if x_user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated")
    return x_user


async def database() -> AsyncIterator[str]:
    events.append("database opened")
    try:
        yield "database"
    finally:
        events.append("database closed")


def audit_log() -> Iterator[str]:
    events.append("audit opened")
    yield "audit"
    events.append("audit closed")


@app.get("/users/me")
async def read_me(
    user: Annotated[str, Depends(current_user)],
    db: Annotated[str, Depends(database)],
    audit: Annotated[str, Depends(audit_log)],
    page: Annotated[dict[str, int], Depends(pagination)],
) -> dict[str, Any]:
    events.append(f"handler ran for {user}")
    return {"user": user, "db": db, "audit": audit, "page": page}


# -- routers --------------------------------------------------------------------------------


async def require_admin(x_role: Annotated[str | None, Header()] = None) -> None:
    if x_role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Admins only")


reports = APIRouter(prefix="/reports", tags=["reports"])


@reports.get("/{day}")
def daily_report(day: str) -> dict[str, str]:
    return {"report": day}


admin = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
admin.include_router(reports)


@admin.get("/stats")
def stats() -> dict[str, int]:
    return {"users": 3}


app.include_router(admin, prefix="/v1")


# -- errors ---------------------------------------------------------------------------------


class OutOfTea(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind


@app.exception_handler(OutOfTea)
async def out_of_tea(request: Request, exc: OutOfTea) -> JSONResponse:
    return JSONResponse(status_code=418, content={"message": f"No {exc.kind} left"})


@app.get("/tea/{kind}")
def tea(kind: str) -> dict[str, str]:
    if kind == "missing":
        raise HTTPException(404, "No such tea", headers={"X-Error": "missing"})
    if kind == "crash":
        raise RuntimeError("the kettle broke")
    raise OutOfTea(kind)


# -- background tasks -----------------------------------------------------------------------


def write_notification(email: str, message: str = "") -> None:
    events.append(f"notified {email}: {message}")


@app.post("/notify/{email}")
def notify(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(write_notification, email, message="hi")
    events.append("response ready")
    return {"message": "Notification sent in the background"}


# -- middleware -----------------------------------------------------------------------------


@app.middleware("http")
async def add_process_header(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers["X-Handled-By"] = "http-middleware"
    return response


class TagResponses:
    """A pure ASGI middleware: adds a header to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-asgi-middleware", b"yes")]
            await send(message)

        await self.app(scope, receive, send_tagged)


app.add_middleware(TagResponses)


# -- forms and uploads ----------------------------------------------------------------------


@app.post("/login")
def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> dict[str, Any]:
    return {"username": username, "password_length": len(password)}


@app.post("/files")
async def upload(files: list[UploadFile], note: Annotated[str, Form()] = "none") -> dict[str, Any]:
    described = []
    for file in files:
        content = await file.read()
        described.append(
            {"filename": file.filename, "content_type": file.content_type, "size": len(content)}
        )
    return {"note": note, "files": described}


@app.post("/limited", max_body_size=16)
async def limited(request: Request) -> dict[str, int]:
    return {"received": len(await request.body())}


# -- responses ------------------------------------------------------------------------------


async def countdown() -> AsyncIterator[str]:
    for number in (3, 2, 1):
        yield f"{number}\n"
    yield "liftoff\n"


@app.get("/countdown")
def stream() -> StreamingResponse:
    return StreamingResponse(countdown(), media_type="text/plain")


@app.get("/download")
def download() -> FileResponse:
    return FileResponse(STATIC_DIR / "hello.txt", filename="greeting.txt")


@app.get("/state")
def lifespan_state(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}


# -- websockets -----------------------------------------------------------------------------


async def websocket_token(websocket: WebSocket, token: str | None = None) -> str:
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="Bad token")
    return token


@app.websocket("/ws/{room}")
async def chat(
    websocket: WebSocket, room: str, token: Annotated[str, Depends(websocket_token)]
) -> None:
    await websocket.accept()
    await websocket.send_json({"room": room, "joined": True})
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"{room}: {text}")
    except WebSocketDisconnect as disconnect:
        events.append(f"left {room} with {disconnect.code}")
