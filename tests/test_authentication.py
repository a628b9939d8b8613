"""requires(), has_required_scope() and the user and credential classes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pytest

from starling.applications import Starling
from starling.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
    UnauthenticatedUser,
    has_required_scope,
    requires,
)
from starling.endpoints import HTTPEndpoint
from starling.exceptions import HTTPException
from starling.middleware import Middleware
from starling.middleware.authentication import AuthenticationMiddleware
from starling.requests import HTTPConnection, Request
from starling.responses import JSONResponse, PlainTextResponse, Response
from starling.routing import Route, WebSocketRoute
from starling.types import Message
from starling.websockets import WebSocket, WebSocketDisconnect
from tests.types import TestClientFactory


class BasicAuth(AuthenticationBackend):
    """Basic auth where the password is the comma-separated list of scopes."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if "authorization" not in conn.headers:
            return None
        scheme, _, encoded = conn.headers["authorization"].partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("ascii")
        except (ValueError, binascii.Error) as exc:  # UnicodeDecodeError is a ValueError
            raise AuthenticationError("Invalid basic auth credentials") from exc
        username, _, password = decoded.partition(":")
        return AuthCredentials(password.split(",") if password else []), SimpleUser(username)


def basic(username: str, scopes: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{username}:{scopes}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@requires("authenticated")
async def dashboard(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.display_name, "scopes": request.auth.scopes})


@requires(["authenticated", "admin"], status_code=401)
def admin_sync(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"admin {request.user.identity}")


@requires("authenticated", redirect="login")
async def private(request: Request) -> PlainTextResponse:
    return PlainTextResponse("private")


@requires("authenticated", redirect="login")
def private_sync(request: Request) -> PlainTextResponse:
    return PlainTextResponse("private sync")


async def login(request: Request) -> PlainTextResponse:
    return PlainTextResponse("login")


@requires("authenticated")
async def keyword_only(*, request: Request) -> PlainTextResponse:
    return PlainTextResponse("keyword")


@requires("authenticated")
async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.user.display_name})
    await websocket.close()


@requires("authenticated")
def websocket_sync(websocket: WebSocket) -> None:
    """A sync websocket endpoint: the wrapper is a coroutine all the same (as in Starlette)."""


@requires("authenticated")
async def websocket_async(websocket: WebSocket) -> str:
    return "dropped"


class Dashboard(HTTPEndpoint):
    @requires("authenticated")
    async def get(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("method")

    @requires("authenticated")
    def post(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("sync method")


app = Starling(
    routes=[
        Route("/dashboard", dashboard),
        Route("/admin", admin_sync),
        Route("/private", private),
        Route("/private_sync", private_sync),
        Route("/login", login, name="login"),
        Route("/class", Dashboard),
        WebSocketRoute("/ws", websocket_endpoint),
    ],
    middleware=[Middleware(AuthenticationMiddleware, backend=BasicAuth())],
)


def test_requires_async(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    response = client.get("/dashboard")
    assert (response.status_code, response.text) == (403, "Forbidden")
    response = client.get("/dashboard", headers=basic("tomchristie", "authenticated"))
    assert response.json() == {"user": "tomchristie", "scopes": ["authenticated"]}


def test_requires_sync_with_status_code(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    response = client.get("/admin", headers=basic("bob", "authenticated"))
    assert (response.status_code, response.text) == (401, "Unauthorized")
    response = client.get("/admin", headers=basic("bob", "authenticated,admin"))
    assert response.text == "admin bob"


def test_requires_redirect(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app, follow_redirects=False)
    response = client.get("/private")
    assert response.status_code == 303
    assert response.headers["location"] == (
        "http://testserver/login?next=http%3A%2F%2Ftestserver%2Fprivate"
    )
    response = client.get("/private_sync?x=1&y=%20z")
    assert response.headers["location"] == (
        "http://testserver/login?next=http%3A%2F%2Ftestserver%2Fprivate_sync%3Fx%3D1%26y%3D%2520z"
    )
    assert client.get("/private", headers=basic("a", "authenticated")).text == "private"
    assert test_client_factory(app).get("/private").text == "login"  # following the redirect
    assert client.get("/private_sync", headers=basic("a", "authenticated")).text == "private sync"


def test_requires_on_methods(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    assert client.get("/class").status_code == 403
    assert client.post("/class").status_code == 403
    assert client.get("/class", headers=basic("a", "authenticated")).text == "method"
    assert client.post("/class", headers=basic("a", "authenticated")).text == "sync method"


def test_requires_websocket(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws"):
        pass  # pragma: no cover (the connection is refused)
    assert info.value.code == 1000
    with client.websocket_connect("/ws", headers=basic("ws", "authenticated")) as websocket:
        assert websocket.receive_json() == {"user": "ws"}


def test_bad_credentials_answer_400(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    response = client.get("/dashboard", headers={"Authorization": "Basic ***"})
    assert (response.status_code, response.text) == (400, "Invalid basic auth credentials")


@pytest.mark.parametrize(
    "source",
    [
        "def f(x): pass",
        "async def f(): pass",
        "def f(self, req): pass",
        "def f(ws): pass",
    ],
)
def test_requires_needs_a_connection_parameter(source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    func = namespace["f"]
    with pytest.raises(Exception) as info:
        requires("a")(func)
    assert str(info.value) == f'No "request" or "websocket" argument on function "{func}"'


def make_request(scopes: list[str]) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": b"",
            "headers": [],
            "server": ("testserver", 80),
            "scheme": "http",
            "auth": AuthCredentials(scopes),
        }
    )


def make_websocket(scopes: list[str], sent: list[Message]) -> WebSocket:
    async def receive() -> Message:
        return {"type": "websocket.connect"}  # pragma: no cover (never read)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "headers": [], "auth": AuthCredentials(scopes)}
    return WebSocket(scope, receive, send)


@pytest.mark.anyio
async def test_request_passed_by_keyword_or_position() -> None:
    @requires("a")
    async def view(request: Request, extra: int = 1) -> int:
        return extra

    assert await view(make_request(["a"])) == 1
    assert await view(request=make_request(["a"]), extra=2) == 2
    assert await view(make_request(["a"]), 3) == 3
    response = await keyword_only(request=make_request(["authenticated"]))
    assert response.body == b"keyword"


@pytest.mark.anyio
async def test_keyword_only_request_is_checked() -> None:
    with pytest.raises(HTTPException) as info:
        await keyword_only(request=make_request([]))
    assert info.value.status_code == 403


def test_first_connection_parameter_decides() -> None:
    @requires("a")
    def both(request: Request, websocket: WebSocket) -> str:
        return "both"

    assert both(make_request(["a"]), None) == "both"  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_wrong_connection_type_is_an_assertion_error() -> None:
    @requires("a")
    async def view(request: Request) -> None:
        """Never reached."""

    @requires("a")
    async def socket(websocket: WebSocket) -> None:
        """Never reached."""

    with pytest.raises(AssertionError) as info:
        await view(make_websocket(["a"], []))  # type: ignore[arg-type]
    assert str(info.value) == (
        "Parameter with name 'request' is required to be of type 'Request' not 'WebSocket'"
    )
    with pytest.raises(AssertionError) as info:
        await socket(make_request(["a"]))  # type: ignore[arg-type]
    assert str(info.value) == (
        "Parameter with name 'websocket' is required to be of type 'WebSocket' not 'Request'"
    )
    with pytest.raises(AssertionError, match="not 'NoneType'"):
        await view()  # type: ignore[call-arg]


@pytest.mark.anyio
async def test_websocket_wrapper_closes_or_runs() -> None:
    sent: list[Message] = []
    await websocket_sync(make_websocket([], sent))
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]
    sent.clear()
    # allowed: the endpoint runs; its return value is dropped, as in Starlette
    assert await websocket_async(websocket=make_websocket(["authenticated"], sent)) is None
    assert sent == []


def test_wrappers_keep_the_function_metadata() -> None:
    assert dashboard.__name__ == "dashboard"
    assert admin_sync.__wrapped__.__name__ == "admin_sync"  # type: ignore[attr-defined]


def test_redirect_needs_a_router() -> None:
    @requires("a", redirect="login")
    def view(request: Request) -> Response:
        return Response()  # pragma: no cover (the request lacks the scope)

    with pytest.raises(RuntimeError, match="url_for"):
        view(make_request([]))


def test_empty_scopes_always_pass() -> None:
    @requires([])
    def view(request: Request) -> str:
        return "ok"

    assert view(make_request([])) == "ok"


def test_has_required_scope() -> None:
    conn = make_request(["a", "b"])
    assert has_required_scope(conn, ["a"])
    assert has_required_scope(conn, ["a", "b"])
    assert not has_required_scope(conn, ["a", "c"])
    assert has_required_scope(conn, [])
    # a bare string is a sequence of one-letter scopes, as in Starlette
    assert has_required_scope(conn, "ab")


def test_auth_credentials() -> None:
    assert AuthCredentials().scopes == []
    assert AuthCredentials(("a", "b")).scopes == ["a", "b"]


def test_users() -> None:
    user = SimpleUser("bob")
    assert (user.username, user.is_authenticated, user.display_name, user.identity) == (
        "bob",
        True,
        "bob",
        "bob",
    )
    anonymous = UnauthenticatedUser()
    assert (anonymous.is_authenticated, anonymous.display_name, anonymous.identity) == (
        False,
        "",
        "",
    )


@pytest.mark.parametrize("name", ["is_authenticated", "display_name", "identity"])
def test_base_user_is_abstract(name: str) -> None:
    with pytest.raises(NotImplementedError):
        getattr(BaseUser(), name)


@pytest.mark.anyio
async def test_backend_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        await AuthenticationBackend().authenticate(make_request([]))


def test_authentication_error() -> None:
    error = AuthenticationError("x")
    assert isinstance(error, Exception)
    assert error.args == ("x",)
