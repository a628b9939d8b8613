"""AuthenticationMiddleware: scope["auth"] and scope["user"], errors, and other scope types."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from starling.applications import Starling
from starling.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
    UnauthenticatedUser,
)
from starling.middleware import Middleware
from starling.middleware.authentication import AuthenticationMiddleware
from starling.requests import HTTPConnection, Request
from starling.responses import JSONResponse, PlainTextResponse, Response
from starling.routing import Route, WebSocketRoute
from starling.types import Message, Receive, Scope, Send
from starling.websockets import WebSocket, WebSocketDisconnect
from tests.types import TestClientFactory


class TokenBackend(AuthenticationBackend):
    """ "Authorization: <scopes>" logs in as "bob"; "bad" is rejected; none is anonymous."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = conn.headers.get("authorization")
        if token is None:
            return None
        if token == "bad":
            raise AuthenticationError("Invalid token")
        return AuthCredentials(token.split(",")), SimpleUser("bob")


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "authenticated": request.user.is_authenticated,
            "user": type(request.user).__name__,
            "name": request.user.display_name,
            "scopes": request.auth.scopes,
        }
    )


async def websocket_whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(
        {"name": websocket.user.display_name, "scopes": websocket.auth.scopes}
    )
    await websocket.close()


ROUTES = [Route("/", whoami), WebSocketRoute("/ws", websocket_whoami)]


OnError = Callable[[HTTPConnection, AuthenticationError], Response]


def make_app(on_error: OnError | None = None) -> Starling:
    middleware = Middleware(AuthenticationMiddleware, backend=TokenBackend(), on_error=on_error)
    return Starling(routes=ROUTES, middleware=[middleware])


def test_anonymous(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    assert client.get("/").json() == {
        "authenticated": False,
        "user": "UnauthenticatedUser",
        "name": "",
        "scopes": [],
    }


def test_authenticated(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    assert client.get("/", headers={"Authorization": "read,write"}).json() == {
        "authenticated": True,
        "user": "SimpleUser",
        "name": "bob",
        "scopes": ["read", "write"],
    }


def test_authentication_error_is_a_400(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    response = client.get("/", headers={"Authorization": "bad"})
    assert response.status_code == 400
    assert response.text == "Invalid token"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_custom_on_error(test_client_factory: TestClientFactory) -> None:
    seen: list[tuple[str, str]] = []

    def on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
        seen.append((type(conn).__name__, str(exc)))
        return JSONResponse({"error": str(exc)}, status_code=401)

    client = test_client_factory(make_app(on_error=on_error))
    response = client.get("/", headers={"Authorization": "bad"})
    assert (response.status_code, response.json()) == (401, {"error": "Invalid token"})
    assert seen == [("HTTPConnection", "Invalid token")]


def test_other_backend_errors_propagate(test_client_factory: TestClientFactory) -> None:
    class Broken(AuthenticationBackend):
        async def authenticate(
            self, conn: HTTPConnection
        ) -> tuple[AuthCredentials, BaseUser] | None:
            raise ValueError("backend down")

    app = Starling(routes=ROUTES, middleware=[Middleware(AuthenticationMiddleware, Broken())])
    with pytest.raises(ValueError, match="backend down"):
        test_client_factory(app).get("/")


def test_websocket(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(make_app())
    with client.websocket_connect("/ws") as websocket:
        assert websocket.receive_json() == {"name": "", "scopes": []}
    with client.websocket_connect("/ws", headers={"Authorization": "chat"}) as websocket:
        assert websocket.receive_json() == {"name": "bob", "scopes": ["chat"]}


def test_websocket_authentication_error_closes(test_client_factory: TestClientFactory) -> None:
    seen: list[str] = []

    def on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
        seen.append(str(exc))  # called for websockets too; its response is not sent
        return PlainTextResponse("unused", status_code=401)

    for app in (make_app(), make_app(on_error=on_error)):
        client = test_client_factory(app)
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect("/ws", headers={"Authorization": "bad"}),
        ):
            pass  # pragma: no cover (the connection is refused)
        assert info.value.code == 1000
    assert seen == ["Invalid token"]


@pytest.mark.anyio
async def test_websocket_close_message() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not reached")  # pragma: no cover (the backend rejects first)

    async def receive() -> Message:
        return {"type": "websocket.connect"}  # pragma: no cover (never read)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "websocket", "path": "/", "headers": [(b"authorization", b"bad")]}
    await AuthenticationMiddleware(app, TokenBackend())(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1000}]
    assert "auth" not in scope


def test_lifespan_passes_through(test_client_factory: TestClientFactory) -> None:
    with test_client_factory(make_app()) as client:
        assert client.get("/").status_code == 200


def test_default_on_error_and_attributes() -> None:
    response = AuthenticationMiddleware.default_on_error(
        HTTPConnection({"type": "http", "headers": []}), AuthenticationError("nope")
    )
    assert (response.status_code, response.body) == (400, b"nope")
    backend = TokenBackend()
    middleware = AuthenticationMiddleware(whoami_app, backend)
    assert middleware.on_error is AuthenticationMiddleware.default_on_error
    assert (middleware.app, middleware.backend) == (whoami_app, backend)
    assert isinstance(UnauthenticatedUser(), BaseUser)


async def whoami_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Only its identity is used."""
