"""SchemaGenerator: endpoints through Mounts and Hosts, docstring YAML, the OpenAPI response."""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

import pytest

from starling.applications import Starling
from starling.endpoints import HTTPEndpoint
from starling.requests import Request
from starling.responses import Response
from starling.routing import BaseRoute, Host, Mount, Route, Router, WebSocketRoute
from starling.schemas import BaseSchemaGenerator, EndpointInfo, OpenAPIResponse, SchemaGenerator
from starling.types import Receive, Scope, Send
from starling.websockets import WebSocket

if TYPE_CHECKING:  # a Protocol named Test*: imported at run time, pytest would try to collect it
    from tests.types import TestClientFactory

schemas = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "Example API", "version": "1.0"}})


def list_users(request: Request) -> Response:
    """
    responses:
      200:
        description: A list of users.
    """
    raise NotImplementedError()


def get_user(request: Request) -> Response:
    """
    Prose that is not part of the schema.
    ---
    responses:
      200:
        description: A user.
    """
    raise NotImplementedError()


def no_docstring(request: Request) -> Response:
    raise NotImplementedError()


def prose_only(request: Request) -> Response:
    """Just some words."""
    raise NotImplementedError()


def a_list(request: Request) -> Response:
    """
    ---
    - 1
    - 2
    """
    raise NotImplementedError()


class Organisation(HTTPEndpoint):
    def get(self, request: Request) -> Response:
        """summary: read"""
        raise NotImplementedError()

    def post(self, request: Request) -> Response:
        """summary: create"""
        raise NotImplementedError()

    def put(self, request: Request) -> Response:
        raise NotImplementedError()

    def trace(self, request: Request) -> Response:  # pragma: no cover (never in a schema)
        """summary: not listed"""
        raise NotImplementedError()


class Handlers:
    def bound(self, request: Request) -> Response:
        """summary: bound method"""
        raise NotImplementedError()


async def websocket_endpoint(websocket: WebSocket) -> None:
    raise NotImplementedError()


async def plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise NotImplementedError()


def schema_endpoint(request: Request) -> Response:
    return schemas.OpenAPIResponse(request)


class Custom(BaseRoute):
    path = "/custom"
    endpoint = list_users


ROUTES: list[BaseRoute] = [
    Route("/schema", schema_endpoint, include_in_schema=False),
    Route("/users", list_users, methods=["GET", "HEAD", "POST"]),
    Route("/users/{id:int}", get_user),
    Route("/nodoc", no_docstring),
    Route("/prose", prose_only),
    Route("/list", a_list),
    Route("/hidden", list_users, include_in_schema=False),
    Route("/orgs", Organisation),
    Route("/bound", Handlers().bound),
    Route("/partial", functools.partial(list_users)),
    Route("/files/{rest:path}", get_user),
    WebSocketRoute("/ws", websocket_endpoint),
    Custom(),
    Mount(
        "/m/{org:int}",
        routes=[Route("/items/{item}", get_user), Mount("/deep", routes=[Route("/", get_user)])],
    ),
    Mount("/router", app=Router(routes=[Route("/r", get_user, methods=["DELETE"])])),
    Mount("/app", app=plain_app),
    Mount("/", routes=[Route("/root", get_user)]),
    Host("api.example.com", app=Router(routes=[Route("/hosted", get_user)])),
    Host("{sub}.example.com", app=plain_app),
]


def test_get_endpoints() -> None:
    assert schemas.get_endpoints(ROUTES) == [
        EndpointInfo("/users", "get", list_users),
        EndpointInfo("/users", "post", list_users),
        EndpointInfo("/users/{id}", "get", get_user),
        EndpointInfo("/nodoc", "get", no_docstring),
        EndpointInfo("/prose", "get", prose_only),
        EndpointInfo("/list", "get", a_list),
        EndpointInfo("/orgs", "get", Organisation.get),
        EndpointInfo("/orgs", "post", Organisation.post),
        EndpointInfo("/orgs", "put", Organisation.put),
        EndpointInfo("/bound", "get", ROUTES[8].endpoint),  # type: ignore[attr-defined]
        EndpointInfo("/files/{rest}", "get", get_user),
        EndpointInfo("/m/{org}/items/{item}", "get", get_user),
        EndpointInfo("/m/{org}/deep/", "get", get_user),
        EndpointInfo("/router/r", "delete", get_user),
        EndpointInfo("/root", "get", get_user),
        EndpointInfo("/hosted", "get", get_user),
    ]


def test_endpoint_info() -> None:
    info = EndpointInfo(path="/a", http_method="get", func=list_users)
    assert info.path == "/a"
    assert info._fields == ("path", "http_method", "func")
    assert info == ("/a", "get", list_users)


def test_get_schema() -> None:
    user = {"responses": {200: {"description": "A user."}}}
    assert schemas.get_schema(ROUTES) == {
        "openapi": "3.0.0",
        "info": {"title": "Example API", "version": "1.0"},
        "paths": {
            "/users": {
                "get": {"responses": {200: {"description": "A list of users."}}},
                "post": {"responses": {200: {"description": "A list of users."}}},
            },
            "/users/{id}": {"get": user},
            "/orgs": {"get": {"summary": "read"}, "post": {"summary": "create"}},
            "/bound": {"get": {"summary": "bound method"}},
            "/files/{rest}": {"get": user},
            "/m/{org}/items/{item}": {"get": user},
            "/m/{org}/deep/": {"get": user},
            "/router/r": {"delete": user},
            "/root": {"get": user},
            "/hosted": {"get": user},
        },
    }


class Searchable(HTTPEndpoint):
    def get(self, request: Request) -> Response:
        """summary: read"""
        raise NotImplementedError()

    def query(self, request: Request) -> Response:
        """summary: search"""
        raise NotImplementedError()


QUERY_ROUTES: list[BaseRoute] = [
    Route("/s", Searchable),
    Route("/f", get_user, methods=["QUERY", "GET"]),
    Route("/only", get_user, methods=["QUERY"]),
]


def test_query_endpoints() -> None:
    # listed whatever the version: only the schema leaves them out
    assert SchemaGenerator({}).get_endpoints(QUERY_ROUTES) == [
        EndpointInfo("/s", "get", Searchable.get),
        EndpointInfo("/s", "query", Searchable.query),
        EndpointInfo("/f", "get", get_user),
        EndpointInfo("/f", "query", get_user),
        EndpointInfo("/only", "query", get_user),
    ]


@pytest.mark.parametrize(
    "version",
    ["3.2.0", "3.2", 3.2, "3.10.0", "4.0", "3.2.0-rc1", "3.02", "10.0", "3.2 "],
)
def test_query_operations_from_openapi_3_2(version: object) -> None:
    schema = SchemaGenerator({"openapi": version}).get_schema(QUERY_ROUTES)
    user = {"responses": {200: {"description": "A user."}}}
    assert schema["paths"] == {
        "/s": {"get": {"summary": "read"}, "query": {"summary": "search"}},
        "/f": {"get": user, "query": user},
        "/only": {"query": user},
    }


@pytest.mark.parametrize(
    "version", ["3.1.2", "3.1.99", "3", "10", 3, None, "abc", " 3.2.0", "v3.2", "3.-2", "missing"]
)
def test_no_query_operations_before_openapi_3_2(version: object) -> None:
    base = {} if version == "missing" else {"openapi": version}
    schema = SchemaGenerator(base).get_schema(QUERY_ROUTES)
    user = {"responses": {200: {"description": "A user."}}}
    # an OpenAPI 3.1 document has no "query" operation: such a path is left out altogether
    assert schema["paths"] == {"/s": {"get": {"summary": "read"}}, "/f": {"get": user}}


def test_base_schema_is_not_changed() -> None:
    base: dict[str, Any] = {"paths": {"/kept": {"get": {"summary": "kept"}}, "/users": {}}}
    generator = SchemaGenerator(base)
    schema = generator.get_schema([Route("/users", get_user)])
    assert schema["paths"] == {
        "/kept": {"get": {"summary": "kept"}},
        "/users": {"get": {"responses": {200: {"description": "A user."}}}},
    }
    assert base == {"paths": {"/kept": {"get": {"summary": "kept"}}, "/users": {}}}
    assert SchemaGenerator({}).get_schema([]) == {"paths": {}}


def test_parse_docstring() -> None:
    assert schemas.parse_docstring(no_docstring) == {}
    assert schemas.parse_docstring(prose_only) == {}
    assert schemas.parse_docstring(a_list) == {}
    assert schemas.parse_docstring(get_user) == {"responses": {200: {"description": "A user."}}}

    def several(request: Request) -> None:
        """
        a: 1
        ---
        b: 2
        ---
        c: 3
        """

    assert schemas.parse_docstring(several) == {"c": 3}


def test_parse_docstring_is_safe() -> None:
    import yaml

    def unsafe(request: Request) -> None:
        """
        ---
        x: !!python/object/apply:os.system ["true"]
        """

    with pytest.raises(yaml.YAMLError):
        schemas.parse_docstring(unsafe)


def test_base_generator_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        BaseSchemaGenerator().get_schema([])


def test_openapi_response() -> None:
    response = OpenAPIResponse({"b": 1, "a": {"c": [1, 2]}})
    assert response.body == b"a:\n  c:\n  - 1\n  - 2\nb: 1\n"
    assert response.raw_headers == [
        (b"content-length", b"25"),
        (b"content-type", b"application/vnd.oai.openapi"),
    ]
    message = "The schema passed to OpenAPIResponse should be a dictionary."
    with pytest.raises(AssertionError, match=message):
        OpenAPIResponse("not a dict")


def test_schema_endpoint(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(Starling(routes=ROUTES))
    response = client.get("/schema")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.oai.openapi"
    assert response.text.startswith(
        "info:\n  title: Example API\n  version: '1.0'\nopenapi: 3.0.0\n"
    )
    assert "  /users/{id}:\n    get:\n      responses:\n        200:\n" in response.text


def test_pyyaml_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    # no docstring, no YAML needed
    assert schemas.parse_docstring(no_docstring) == {}
    with pytest.raises(
        AssertionError, match=r"^`pyyaml` must be installed to use parse_docstring\.$"
    ):
        schemas.parse_docstring(get_user)
    with pytest.raises(
        AssertionError, match=r"^`pyyaml` must be installed to use OpenAPIResponse\.$"
    ):
        OpenAPIResponse({})
