"""tests/integration/app.py on starling: each response is the one FastAPI on Starlette 1.10
gives (checked by running this file against the real Starlette in a separate environment)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from starling.testclient import TestClient
from starling.websockets import WebSocketDisconnect
from tests.integration.app import STATIC_DIR, app, current_user, events
from tests.types import TestClientFactory


@pytest.fixture
def client(test_client_factory: TestClientFactory) -> Iterator[TestClient]:
    events.clear()
    with test_client_factory(app) as client:  # runs the lifespan
        yield client


def test_fastapi_runs_on_starling() -> None:
    import fastapi.routing
    import starlette.routing

    import starling.routing

    assert starlette.routing is starling.routing
    assert issubclass(fastapi.routing.APIRoute, starling.routing.Route)


# -- parameters and models ------------------------------------------------------------------


def test_path_query_header_and_cookie_parameters(client: TestClient) -> None:
    client.cookies.set("session", "abc")
    response = client.get("/items/7", params={"q": "tea", "limit": 5}, headers={"X-Token": "t"})
    assert response.status_code == 200
    assert response.json() == {
        "item_id": 7,
        "q": "tea",
        "limit": 5,
        "x_token": "t",
        "session": "abc",
    }


def test_defaults(client: TestClient) -> None:
    response = client.get("/items/7")
    assert response.json() == {
        "item_id": 7,
        "q": None,
        "limit": 10,
        "x_token": None,
        "session": None,
    }


def test_invalid_parameters_are_a_422(client: TestClient) -> None:
    response = client.get("/items/seven", params={"limit": 500})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["path", "item_id"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "seven",
            },
            {
                "type": "less_than_equal",
                "loc": ["query", "limit"],
                "msg": "Input should be less than or equal to 100",
                "input": "500",
                "ctx": {"le": 100},
            },
        ]
    }


def test_body_model_in_and_response_model_out(client: TestClient) -> None:
    response = client.post("/items/3", json={"name": "oolong", "price": 10, "tags": ["green"]})
    assert response.status_code == 201
    assert response.json() == {"id": 3, "name": "oolong", "price_with_tax": 12.0, "tags": ["green"]}


def test_invalid_body_is_a_422(client: TestClient) -> None:
    response = client.post("/items/3", json={"name": "", "price": -1})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [
        ["body", "name"],
        ["body", "price"],
    ]


def test_malformed_json_body_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/items/3", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


# -- dependencies ---------------------------------------------------------------------------


def test_sync_async_and_yield_dependencies(client: TestClient) -> None:
    response = client.get("/users/me", params={"skip": 20}, headers={"X-User": "ada"})
    assert response.status_code == 200
    assert response.json() == {
        "user": "ada",
        "db": "database",
        "audit": "audit",
        "page": {"skip": 20, "limit": 10},
    }
    # clean-up runs after the handler, in reverse order of set-up
    assert events == [
        "startup",
        "database opened",
        "audit opened",
        "handler ran for ada",
        "audit closed",
        "database closed",
    ]


def test_a_dependency_that_raises(client: TestClient) -> None:
    response = client.get("/users/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert events == ["startup"]  # later dependencies never ran


def test_dependency_overrides(client: TestClient) -> None:
    app.dependency_overrides[current_user] = lambda: "test user"
    try:
        response = client.get("/users/me")
    finally:
        app.dependency_overrides.clear()
    assert response.json()["user"] == "test user"


# -- routers --------------------------------------------------------------------------------


def test_included_routers_with_prefixes(client: TestClient) -> None:
    admin = {"X-Role": "admin"}
    assert client.get("/v1/admin/stats", headers=admin).json() == {"users": 3}
    assert client.get("/v1/admin/reports/monday", headers=admin).json() == {"report": "monday"}
    response = client.get("/v1/admin/stats")
    assert response.status_code == 403
    assert response.json() == {"detail": "Admins only"}
    assert client.get("/admin/stats", headers=admin).status_code == 404


def test_tags_in_the_openapi_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["paths"]["/v1/admin/stats"]["get"]["tags"] == ["admin"]
    assert schema["paths"]["/v1/admin/reports/{day}"]["get"]["tags"] == ["admin", "reports"]
    assert sorted(schema["paths"]) == [
        "/countdown",
        "/download",
        "/files",
        "/items/{item_id}",
        "/limited",
        "/login",
        "/notify/{email}",
        "/state",
        "/tea/{kind}",
        "/users/me",
        "/v1/admin/reports/{day}",
        "/v1/admin/stats",
    ]


def test_docs_page(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "/openapi.json" in response.text


# -- errors ---------------------------------------------------------------------------------


def test_http_exception_with_headers(client: TestClient) -> None:
    response = client.get("/tea/missing")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such tea"}
    assert response.headers["x-error"] == "missing"


def test_custom_exception_handler(client: TestClient) -> None:
    response = client.get("/tea/earl-grey")
    assert response.status_code == 418
    assert response.json() == {"message": "No earl-grey left"}


def test_unhandled_error_is_a_500(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app, raise_server_exceptions=False)
    response = client.get("/tea/crash")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


def test_unhandled_error_reaches_the_test(client: TestClient) -> None:
    with pytest.raises(RuntimeError, match="the kettle broke"):
        client.get("/tea/crash")


def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    response = client.delete("/items/1")
    assert (response.status_code, response.json()) == (405, {"detail": "Method Not Allowed"})
    # two decorators, two routes: the first that matches the path answers, with its methods
    assert response.headers["allow"] == "GET"


# -- background tasks -----------------------------------------------------------------------


def test_background_task_runs_after_the_response(client: TestClient) -> None:
    response = client.post("/notify/ada@example.com")
    assert response.json() == {"message": "Notification sent in the background"}
    assert events == ["startup", "response ready", "notified ada@example.com: hi"]


# -- middleware -----------------------------------------------------------------------------


def test_both_middleware_kinds_see_every_response(client: TestClient) -> None:
    for path in ["/items/1", "/nowhere", "/static/hello.txt"]:
        response = client.get(path)
        assert response.headers["x-handled-by"] == "http-middleware"
        assert response.headers["x-asgi-middleware"] == "yes"


# -- forms and uploads ----------------------------------------------------------------------


def test_form_fields(client: TestClient) -> None:
    response = client.post("/login", data={"username": "ada", "password": "s3cret!"})
    assert response.json() == {"username": "ada", "password_length": 7}


def test_missing_form_field_is_a_422(client: TestClient) -> None:
    response = client.post("/login", data={"username": "ada"})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": None}
    ]


def test_uploaded_files_and_a_form_field(client: TestClient) -> None:
    files = [
        ("files", ("a.txt", b"hello", "text/plain")),
        ("files", ("b.bin", b"\x00" * 2048, "application/octet-stream")),
    ]
    response = client.post("/files", files=files, data={"note": "two files"})
    assert response.status_code == 200
    assert response.json() == {
        "note": "two files",
        "files": [
            {"filename": "a.txt", "content_type": "text/plain", "size": 5},
            {"filename": "b.bin", "content_type": "application/octet-stream", "size": 2048},
        ],
    }


def test_max_body_size(client: TestClient) -> None:
    assert client.post("/limited", content=b"x" * 16).json() == {"received": 16}
    response = client.post("/limited", content=b"x" * 17)
    assert response.status_code == 413
    assert response.text == "Content Too Large"  # plain text, as on Starlette: not FastAPI's JSON
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_app_wide_max_body_size(client: TestClient) -> None:
    response = client.post("/login", content=b"x" * 1_000_001)
    assert response.status_code == 413
    assert response.text == "Content Too Large"


# -- responses ------------------------------------------------------------------------------


def test_streaming_response(client: TestClient) -> None:
    with client.stream("GET", "/countdown") as response:
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert list(response.iter_lines()) == ["3", "2", "1", "liftoff"]


def test_file_response(client: TestClient) -> None:
    response = client.get("/download")
    assert response.status_code == 200
    assert response.content == (STATIC_DIR / "hello.txt").read_bytes()
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="greeting.txt"'
    partial = client.get("/download", headers={"Range": "bytes=0-4"})
    assert partial.status_code == 206
    assert partial.content == b"Hello"


def test_static_files(client: TestClient) -> None:
    response = client.get("/static/hello.txt")
    assert response.status_code == 200
    assert response.text == "Hello from a static file.\n"
    cached = client.get("/static/hello.txt", headers={"If-None-Match": response.headers["etag"]})
    assert cached.status_code == 304
    assert client.get("/static/missing.txt").status_code == 404


def test_lifespan_state(test_client_factory: TestClientFactory) -> None:
    events.clear()
    with test_client_factory(app) as client:
        assert client.get("/state").json() == {"greeting": "hello from the lifespan"}
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


# -- websockets -----------------------------------------------------------------------------


def test_websocket_with_a_dependency(client: TestClient) -> None:
    with client.websocket_connect("/ws/tea?token=secret") as websocket:
        assert websocket.receive_json() == {"room": "tea", "joined": True}
        websocket.send_text("hello")
        assert websocket.receive_text() == "tea: hello"
        websocket.close(1001)
    assert events[-1] == "left tea with 1001"


def test_websocket_refused_by_its_dependency(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws/tea"):
        pass  # pragma: no cover - never reached: the connection is refused
    assert info.value.code == 1008
    assert info.value.reason == "Bad token"
