"""URL building that no value can restructure (starling._path_values, through url_path_for)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from starling._path_values import UnsafePathValue, path_value
from starling.applications import Starling
from starling.convertors import Convertor, StringConvertor
from starling.requests import Request
from starling.responses import JSONResponse, Response
from starling.routing import Host, Match, Mount, NoMatchFound, Route, Router
from starling.types import Scope
from tests.types import TestClientFactory


async def echo_params(request: Request) -> Response:
    return JSONResponse({key: str(value) for key, value in request.path_params.items()})


class SlashingConvertor(Convertor[str]):
    """A custom convertor whose regex refuses "/", but whose to_string may write one."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


ROUTES = {
    "str": Route("/users/{name}", echo_params, name="str"),
    "path": Route("/files/{name:path}", echo_params, name="path"),
    "int": Route("/ints/{name:int}", echo_params, name="int"),
    "uuid": Route("/uuids/{name:uuid}", echo_params, name="uuid"),
}
router = Router(list(ROUTES.values()))


def routed_back(kind: str, built: str) -> dict[str, Any]:
    """The parameters ``built`` gives when a server decodes it and routes it."""
    scope: Scope = {"type": "http", "method": "GET", "path": unquote(built), "root_path": ""}
    match, child_scope = ROUTES[kind].matches(scope)
    assert match is Match.FULL, built
    params: dict[str, Any] = child_scope["path_params"]
    return params


@pytest.mark.parametrize(
    ("kind", "value", "built"),
    [
        # the examples: no query, no fragment added
        ("str", "a?admin=1", "/users/a%3Fadmin=1"),
        ("path", "x#/evil", "/files/x%23/evil"),
        ("str", "x#evil", "/users/x%23evil"),
        # "%" would be decoded by the server: "%2F" would become a separator
        ("str", "a%2Fb", "/users/a%252Fb"),
        ("path", "100%", "/files/100%25"),
        # browsers read "\" as "/", and drop or trim tab, CR, LF, controls and spaces
        ("str", "a\\b", "/users/a%5Cb"),
        ("str", " a\tb\r\n\x00\x7f ", "/users/ a%09b%0D%0A%00%7F "),
        # left as they are (Starlette's output): no structure in them
        ("str", "{id}", "/users/{id}"),
        ("str", "José", "/users/José"),
        ("str", "a=b&c;d@e:f", "/users/a=b&c;d@e:f"),
        ("str", "...", "/users/..."),
        ("str", ".hidden", "/users/.hidden"),
        ("path", "a/b/c.txt", "/files/a/b/c.txt"),
        ("path", "a//b", "/files/a//b"),
        ("int", 42, "/ints/42"),
    ],
)
def test_values_cannot_restructure_the_path(kind: str, value: Any, built: str) -> None:
    path = router.url_path_for(kind, name=value)
    assert path == built
    assert routed_back(kind, path) == {"name": value}


@pytest.mark.parametrize("value", [".", "..", "a/..", "../a", "a/./b", "a/../../etc/passwd"])
def test_dot_segments_are_refused(value: str) -> None:
    with pytest.raises(UnsafePathValue, match=r'path parameter name=.*"\." or "\.\." segment'):
        router.url_path_for("path", name=value)
    if "/" not in value:
        with pytest.raises(ValueError, match="resolved away by clients"):
            router.url_path_for("str", name=value)


def test_a_slash_where_the_convertor_refuses_it_is_refused() -> None:
    route = Route("/custom/{name}", echo_params, name="custom")
    route.param_convertors["name"] = SlashingConvertor()
    built = route.url_path_for("custom", name="a?b")
    assert built == "/custom/a%3Fb"
    scope: Scope = {"type": "http", "method": "GET", "path": unquote(built), "root_path": ""}
    assert route.matches(scope)[1]["path_params"] == {"name": "a?b"}
    with pytest.raises(UnsafePathValue, match='does not match "/".*Use a "path" convertor'):
        route.url_path_for("custom", name="a/b")


@pytest.mark.parametrize("value", ["a/b", ""])
def test_string_convertor_refusals_survive_python_O(value: str) -> None:
    # Starlette's AssertionError and message, raised rather than asserted
    with pytest.raises(AssertionError):
        StringConvertor().to_string(value)
    code = f"import starling.convertors as c; c.StringConvertor().to_string({value!r})"
    result = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "AssertionError" in result.stderr


def test_mount_and_host_parameters_are_escaped_too() -> None:
    app = Router(
        [
            Mount("/{tenant}", routes=[Route("/d/{name:path}", echo_params, name="doc")], name="t"),
            Host("{sub}.example.org", Router([Route("/", echo_params, name="home")]), name="h"),
        ]
    )
    assert app.url_path_for("t:doc", tenant="a?b", name="c#d") == "/a%3Fb/d/c%23d"
    assert app.url_path_for("t", tenant="a#", path="x?y") == "/a%23/x%3Fy"
    url = app.url_path_for("h:home", sub="www").make_absolute_url("http://whatever")
    assert str(url) == "http://www.example.org/"
    assert str(app.url_path_for("h", sub="api", path="/p?q")) == "/p?q"  # the path is the app's


@pytest.mark.parametrize("sub", ["evil.com@x", "a:b", "a[b", "é"])
def test_host_parameters_that_do_not_make_a_host_are_refused(sub: str) -> None:
    app = Router(
        [Host("{sub}.example.org", Router([Route("/", echo_params, name="home")]), name="h")]
    )
    with pytest.raises(UnsafePathValue, match=r"host parameter sub=.*RFC 3986 reg-name"):
        app.url_path_for("h:home", sub=sub)
    with pytest.raises(UnsafePathValue, match="could move the URL's authority"):
        app.url_path_for("h", sub=sub, path="/")
    # a name that is not the host's: the host's parameters are not its business
    with pytest.raises(NoMatchFound):
        app.url_path_for("elsewhere", sub=sub)


def test_unused_values_still_mean_no_match() -> None:
    with pytest.raises(NoMatchFound):
        router.url_path_for("str", name="a?b", other="c")


def test_path_value_leaves_plain_values_alone() -> None:
    assert path_value("name", "plain-value_1.txt", "[^/]+") == "plain-value_1.txt"


HOSTILE = ["a?admin=1", "x#evil", "50%", "a%2Fb", "sp ace", "tab\there", "{id}", "é\\"]


@pytest.mark.parametrize("value", HOSTILE)
def test_links_from_url_for_lead_back_to_the_same_value(
    test_client_factory: TestClientFactory, value: str
) -> None:
    async def link(request: Request) -> Response:
        return JSONResponse({"link": str(request.url_for("str", name=request.query_params["v"]))})

    app = Starling(routes=[Route("/link", link), ROUTES["str"]])
    client = test_client_factory(app)
    built = client.get("/link", params={"v": value}).json()["link"]
    assert re.fullmatch(r"http://testserver/users/[^?#]+", built)
    assert client.get(built).json() == {"name": value}


# ---------------------------------------------------------------------------------------------
# Property: whatever a convertor accepts routes back to the same parameters


@given(st.text(min_size=1))
@example("a/b")
@example("..")
def test_any_string_value_routes_back_or_is_refused(value: str) -> None:
    try:
        built = router.url_path_for("str", name=value)
    except AssertionError:
        assert "/" in value
        return
    except UnsafePathValue:
        assert value in (".", "..")
        return
    assert not re.search(r"[?#]", built)
    assert routed_back("str", built) == {"name": value}


@given(st.lists(st.text(), min_size=1, max_size=4).map("/".join))
@example("a/../b")
def test_any_path_value_routes_back_or_is_refused(value: str) -> None:
    try:
        built = router.url_path_for("path", name=value)
    except UnsafePathValue:
        assert {".", ".."} & set(value.split("/"))
        return
    assert not re.search(r"[?#]", built)
    assert routed_back("path", built) == {"name": value}


@given(st.integers(min_value=0) | st.uuids())
def test_int_and_uuid_values_route_back(value: int | uuid.UUID) -> None:
    kind = "int" if isinstance(value, int) else "uuid"
    assert routed_back(kind, router.url_path_for(kind, name=value)) == {"name": value}


def test_a_backslash_in_the_route_itself_is_escaped_too() -> None:
    # "/\" is read as "//" by browsers: a link to another host
    route = Route("/\\evil.com/{name}", echo_params, name="r")
    assert route.url_path_for("r", name="x") == "/%5Cevil.com/x"
