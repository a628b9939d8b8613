"""The realistic service written the FastAPI way: pydantic models, dependencies, typed params.

The same middleware stack and the same answers as benchmarks/service.py. FastAPI imports
``starlette`` itself, so FastAPI + Starlette and FastAPI + starling cannot share a process:
``benchmarks.realistic`` runs each in a worker process of its own (starling through
``alias_starlette()`` before FastAPI is imported) and times them in paired, alternating rounds.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time, and the
# models are local to make_fastapi_service.
import time
from typing import Annotated, Any

from benchmarks.apps import ASGIApp, Message, Receive, Scope, Send
from benchmarks.service import (
    ALLOWED_HOSTS,
    FILLER_ROUTES,
    GZIP_MINIMUM,
    ORIGIN,
    SECRET,
    TOKEN,
    USER,
    item,
    page,
)


def make_fastapi_service() -> ASGIApp:
    from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
    from pydantic import BaseModel
    from starlette.authentication import (
        AuthCredentials,
        AuthenticationBackend,
        AuthenticationError,
        SimpleUser,
    )
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import PlainTextResponse

    class BearerBackend(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> Any:
            header = conn.headers.get("authorization")
            if header is None:
                return None
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or token != TOKEN:
                raise AuthenticationError("Invalid token")
            return AuthCredentials(["authenticated"]), SimpleUser(USER)

    class ProcessTime:
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

    class Item(BaseModel):
        id: int
        name: str
        price: float
        tags: list[str]

    class Page(BaseModel):
        items: list[Item]
        offset: int
        limit: int
        total: int

    class NewItem(BaseModel):
        name: str
        price: float

    class Created(BaseModel):
        id: int
        name: str
        owner: str

    def current_user(request: Request) -> str:
        # a sync dependency, as many apps have: FastAPI runs it in a worker thread
        if "authenticated" not in request.auth.scopes:
            raise HTTPException(403, "Forbidden")
        name: str = request.user.username
        return name

    User = Annotated[str, Depends(current_user)]
    items = APIRouter(prefix="/api/items", tags=["items"])

    @items.get("/", response_model=Page)
    async def list_items(
        request: Request,
        response: Response,
        user: User,
        offset: int = 0,
        limit: Annotated[int, Query(le=50)] = 20,
    ) -> Any:
        request.session["views"] = request.session.get("views", 0) + 1
        response.set_cookie("last_seen", str(offset), max_age=3600)
        return page(offset, limit)

    @items.get("/{item_id}", response_model=Item)
    async def get_item(item_id: int, user: User) -> Any:
        return item(item_id)

    @items.post("/", response_model=Created, status_code=201)
    async def create_item(new: NewItem, user: User) -> Any:
        return {"id": 1_000_001, "name": new.name, "owner": user}

    for n in range(FILLER_ROUTES):

        @items.get(f"/section{n}/{{item_id}}")
        async def filler(item_id: int) -> str:  # pragma: no cover (never requested)
            return "filler"

    app = FastAPI(
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=ALLOWED_HOSTS),
            Middleware(
                CORSMiddleware,
                allow_origins=[ORIGIN],
                allow_credentials=True,
                allow_methods=["*"],
                allow_headers=["*"],
            ),
            Middleware(SessionMiddleware, secret_key=SECRET),
            Middleware(AuthenticationMiddleware, backend=BearerBackend()),
            Middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM),
            Middleware(ProcessTime),
        ]
    )

    @app.get("/health", response_class=PlainTextResponse)
    async def health() -> str:
        return "ok"

    app.include_router(items)
    users = APIRouter(prefix="/api/users", tags=["users"])
    for n in range(FILLER_ROUTES):

        @users.get(f"/group{n}/{{user_id}}")
        async def group(user_id: int) -> str:  # pragma: no cover (never requested)
            return "filler"

    app.include_router(users)
    return app
