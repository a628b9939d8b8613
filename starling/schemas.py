"""OpenAPI schemas from route docstrings: the YAML after ``---`` describes each endpoint."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from starling.requests import Request
from starling.responses import Response
from starling.routing import BaseRoute, Host, Mount, Route

# The HTTPEndpoint methods that can appear in a schema, in the order they are listed.
_ENDPOINT_METHODS = ("get", "post", "put", "patch", "delete", "options", "query")

# OpenAPI 3.2 added the QUERY operation: an older document must not name it. The version is
# read as Starlette does: a leading "major.minor" of the "openapi" value, whatever its type.
_QUERY_SINCE = (3, 2)
_version_prefix = re.compile(r"(\d+)\.(\d+)").match

# "{id:int}" -> "{id}": OpenAPI path templates have no convertors.
_strip_convertors = re.compile(r":\w+}").sub


def _remove_converter_pattern(path: str) -> str:
    return _strip_convertors("}", path)


def _supports_query(openapi: object) -> bool:
    match = _version_prefix(str(openapi))
    return match is not None and (int(match[1]), int(match[2])) >= _QUERY_SINCE


def _yaml(feature: str) -> ModuleType:
    """pyyaml, imported on first use: it is optional, and only schemas need it."""
    try:
        import yaml
    except ImportError:
        # AssertionError, as Starlette raises it
        raise AssertionError(f"`pyyaml` must be installed to use {feature}.") from None
    return yaml


class OpenAPIResponse(Response):
    media_type = "application/vnd.oai.openapi"

    def render(self, content: Any) -> bytes:
        yaml = _yaml("OpenAPIResponse")
        assert isinstance(content, dict), (
            "The schema passed to OpenAPIResponse should be a dictionary."
        )
        return yaml.dump(content, default_flow_style=False).encode("utf-8")  # type: ignore[no-any-return]


class EndpointInfo(NamedTuple):
    path: str
    http_method: str
    func: Callable[..., Any]


class BaseSchemaGenerator:
    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        raise NotImplementedError()

    def get_endpoints(self, routes: list[BaseRoute]) -> list[EndpointInfo]:
        """Every (path, method, handler) in ``routes``, through Mounts and Hosts.

        Function endpoints give one entry per method (HEAD excepted); HTTPEndpoint classes one
        per handler method they define. Routes with include_in_schema=False are left out.
        """
        endpoints: list[EndpointInfo] = []
        for route in routes:
            if isinstance(route, (Mount, Host)):
                prefix = _remove_converter_pattern(route.path) if isinstance(route, Mount) else ""
                for sub in self.get_endpoints(route.routes or []):
                    endpoints.append(sub._replace(path=prefix + sub.path))
            elif isinstance(route, Route) and route.include_in_schema:
                endpoints.extend(self._route_endpoints(route))
        return endpoints

    def _route_endpoints(self, route: Route) -> list[EndpointInfo]:
        path = _remove_converter_pattern(route.path)
        endpoint = route.endpoint
        if inspect.isfunction(endpoint) or inspect.ismethod(endpoint):
            # sorted: a set's order would change from run to run
            methods = sorted(route.methods or ("GET",))
            return [
                EndpointInfo(path, method.lower(), endpoint)
                for method in methods
                if method != "HEAD"
            ]
        return [
            EndpointInfo(path, method, getattr(endpoint, method))
            for method in _ENDPOINT_METHODS
            if hasattr(endpoint, method)
        ]

    def parse_docstring(self, func_or_method: Callable[..., Any]) -> dict[str, Any]:
        """The YAML mapping in the docstring, after its last ``---`` line if there is one."""
        docstring = func_or_method.__doc__
        if not docstring:
            return {}
        yaml = _yaml("parse_docstring")
        # safe_load: a docstring is code, but YAML tags that build objects are never wanted
        parsed = yaml.safe_load(docstring.split("---")[-1])
        if not isinstance(parsed, dict):
            return {}
        return parsed

    def OpenAPIResponse(self, request: Request) -> Response:
        routes = request.app.routes
        schema = self.get_schema(routes=routes)
        return OpenAPIResponse(schema)


class SchemaGenerator(BaseSchemaGenerator):
    def __init__(self, base_schema: dict[str, Any]) -> None:
        self.base_schema = base_schema

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        schema = dict(self.base_schema)
        # copies: filling in the paths must leave base_schema as it was for the next call
        paths: dict[str, Any] = {
            path: dict(operations) for path, operations in schema.get("paths", {}).items()
        }
        schema["paths"] = paths
        query = _supports_query(schema.get("openapi"))
        for endpoint in self.get_endpoints(routes):
            if endpoint.http_method == "query" and not query:
                continue
            parsed = self.parse_docstring(endpoint.func)
            if parsed:
                paths.setdefault(endpoint.path, {})[endpoint.http_method] = parsed
        return schema
