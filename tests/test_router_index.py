"""The router's index decides exactly as a scan of the whole route list, in order, would."""

from __future__ import annotations

import json
import re
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starling._router_index import RouteIndex, RouteList, index_source, literal_prefix
from starling.convertors import CONVERTOR_TYPES, Convertor
from starling.routing import BaseRoute, Host, Match, Mount, Route, Router, WebSocketRoute
from starling.types import Message, Receive, Scope, Send

# ---------------------------------------------------------------------------------------------
# Routers under test


class ScanRouter(Router):
    """The reference: every route asked in order, with no index and no shortcut."""

    def _candidates(self, scope: Scope) -> Any:
        return self.routes  # what _slash_redirect asks

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("router", self)
        found = None
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                found = (route, child_scope)
                break
            if match is Match.PARTIAL and found is None:
                found = (route, child_scope)
        if found is not None:
            route, child_scope = found
            scope.update(child_scope)
            scope["route"] = route
            await route.handle(scope, receive, send)
            return
        redirect = self._slash_redirect(scope) if self.redirect_slashes else None
        if redirect is not None and scope["type"] == "http":
            await redirect(scope, receive, send)
            return
        await self.default(scope, receive, send)


class Echo:
    """An ASGI endpoint reporting what routing put in the scope."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        report = {
            "endpoint": self.name,
            "path_params": {key: repr(value) for key, value in scope["path_params"].items()},
            "root_path": scope.get("root_path"),
            "app_root_path": scope.get("app_root_path"),
            "route": getattr(scope.get("route"), "label", None),
        }
        await send({"type": "echo", "report": json.dumps(report, sort_keys=True)})


class PrefixRoute(BaseRoute):
    """A route class of its own: matches every path under a prefix (a barrier to the index)."""

    def __init__(self, prefix: str, app: Echo) -> None:
        self.prefix = prefix
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["path"].startswith(self.prefix):
            return Match.FULL, {"endpoint": self.app, "path_params": {}}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class CheckedRoute(Route):
    """A Route subclass with its own ``matches`` (as FastAPI's): tried in order."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return super().matches(scope)


class QuietRoute(Route):
    """A Route subclass that keeps Route's ``matches``: indexed like a Route."""


class Lowercase(Convertor[str]):
    """A convertor whose values may span segments and may be refused after the regex."""

    regex = "[a-z/]+"

    def convert(self, value: str) -> str:
        if value == "x":
            from starling.convertors import _NoSuchValue

            raise _NoSuchValue(value)
        return value

    def to_string(self, value: str) -> str:
        return value  # pragma: no cover (url_path_for is not exercised here)


@pytest.fixture(autouse=True, scope="module")
def lowercase_convertor() -> Iterator[None]:
    CONVERTOR_TYPES["lower"] = Lowercase()
    yield
    del CONVERTOR_TYPES["lower"]


# ---------------------------------------------------------------------------------------------
# Route tables

LITERALS = ["a", "b", "users", "42", "x", ""]
CONVERTORS = ["str", "int", "float", "uuid", "path", "lower"]
REQUEST_SEGMENTS = [
    "a",
    "b",
    "users",
    "42",
    "7",
    "1.5",
    "x",
    "abc",
    "item5",
    "",
    "d3b07384-d9a0-4c1b-8f1a-0123456789ab",
]


@dataclass
class Spec:
    kind: str
    path: str
    methods: list[str] | None = None
    children: list[Spec] = field(default_factory=list)


@st.composite
def paths(draw: st.DrawFn) -> str:
    segments = []
    for position in range(draw(st.integers(0, 3))):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            segments.append(draw(st.sampled_from(LITERALS)))
        elif choice == 1:
            segments.append(f"{{p{position}:{draw(st.sampled_from(CONVERTORS))}}}")
        elif choice == 2:
            segments.append(f"item{{p{position}:{draw(st.sampled_from(CONVERTORS))}}}")
        else:
            segments.append(f"{{p{position}}}")
    path = "/" + "/".join(segments)
    if draw(st.booleans()) and not path.endswith("/"):
        path += "/"
    return path


METHODS = st.sampled_from([None, ["GET"], ["POST"], ["GET", "POST"]])


def specs(depth: int) -> st.SearchStrategy[Spec]:
    leaf = st.one_of(
        st.builds(Spec, st.just("route"), paths(), METHODS),
        st.builds(Spec, st.just("websocket"), paths()),
        st.builds(Spec, st.just("checked"), paths(), METHODS),
        st.builds(Spec, st.just("quiet"), paths(), METHODS),
        st.builds(Spec, st.just("prefix"), st.sampled_from(["/a", "/users/4", "/"])),
    )
    if depth == 0:
        return leaf
    children = st.lists(specs(depth - 1), max_size=4)
    mount_paths = st.sampled_from(["", "/", "/a", "/users", "/{tenant}", "/a/{n:int}", "/b/"])
    hosts = st.sampled_from(["example.com", "{sub}.example.com", "x.org:8000"])
    return st.one_of(
        leaf,
        leaf,
        st.builds(Spec, st.just("mount"), mount_paths, st.none(), children),
        st.builds(Spec, st.just("host"), hosts, st.none(), children),
    )


def build(specs: list[Spec], router_class: type[Router], labels: Iterator[int]) -> list[Any]:
    routes: list[Any] = []
    for spec in specs:
        label = next(labels)
        name = f"{spec.kind}-{label}"
        route: Any
        if spec.kind == "route":
            route = Route(spec.path, Echo(name), methods=spec.methods)
        elif spec.kind == "websocket":
            route = WebSocketRoute(spec.path, Echo(name))
        elif spec.kind == "checked":
            route = CheckedRoute(spec.path, Echo(name), methods=spec.methods)
        elif spec.kind == "quiet":
            route = QuietRoute(spec.path, Echo(name), methods=spec.methods)
        elif spec.kind == "prefix":
            route = PrefixRoute(spec.path, Echo(name))
        else:
            inner = router_class(build(spec.children, router_class, labels))
            if spec.kind == "mount":
                route = Mount(spec.path, app=inner)
            else:
                route = Host(spec.path, app=inner)
        route.label = label
        routes.append(route)
    return routes


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, str, str]:
    segments = draw(st.lists(st.sampled_from(REQUEST_SEGMENTS), max_size=4))
    path = "/" + "/".join(segments)
    if draw(st.booleans()):
        path += "/"
    root_path = draw(st.sampled_from(["", "", "/a"]))
    if root_path and draw(st.booleans()):
        path = root_path + path
    scope_type = draw(st.sampled_from(["http", "http", "websocket"]))
    method = draw(st.sampled_from(["GET", "POST", "HEAD"]))
    host = draw(st.sampled_from(["example.com", "api.example.com:8000", "x.org", "[::1]"]))
    return scope_type, method, path, root_path, host


# ---------------------------------------------------------------------------------------------
# Running a request


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run an app that never waits on anything: no event loop needed."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the app waited on something")  # pragma: no cover (a test bug)


def outcome(router: Router, request: tuple[str, str, str, str, str]) -> Any:
    scope_type, method, path, root_path, host = request
    scope: Scope = {
        "type": scope_type,
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "scheme": "http" if scope_type == "http" else "ws",
        "server": ("testserver", 80),
        "headers": [(b"host", host.encode())],
    }
    sent: list[Message] = []

    async def receive() -> Message:  # pragma: no cover (no app here reads the body)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        run(router(scope, receive, send))
    except Exception as exc:  # pragma: no cover (both routers must raise alike)
        sent.append({"raised": repr(exc)})
    changes = {key: scope.get(key) for key in ("path_params", "root_path", "app_root_path", "path")}
    changes["route"] = getattr(scope.get("route"), "label", None)
    changes["path_params"] = {k: repr(v) for k, v in (changes["path_params"] or {}).items()}
    return sent, changes


def assert_same_decisions(
    table: list[Spec], requests: list[tuple[str, str, str, str, str]], redirect: bool
) -> None:
    indexed = Router(build(table, Router, iter(range(10**6))), redirect_slashes=redirect)
    scanned = ScanRouter(build(table, ScanRouter, iter(range(10**6))), redirect_slashes=redirect)
    # Twice over: the second time, each path may be answered from what the first remembered.
    for request in requests + requests:
        assert outcome(indexed, request) == outcome(scanned, request), request


# ---------------------------------------------------------------------------------------------
# The property


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=st.lists(specs(2), max_size=8),
    requests=st.lists(requests(), min_size=1, max_size=6),
    redirect=st.booleans(),
)
def test_index_decides_as_the_ordered_scan(
    table: list[Spec], requests: list[tuple[str, str, str, str, str]], redirect: bool
) -> None:
    assert_same_decisions(table, requests, redirect)


@settings(max_examples=300, deadline=None)
@given(
    table=st.lists(specs(1), max_size=6),
    more=st.lists(specs(1), min_size=1, max_size=3),
    requests=st.lists(requests(), min_size=1, max_size=4),
    edit=st.sampled_from(["append", "insert", "setitem", "delitem", "reverse", "assign"]),
)
def test_index_follows_changes_to_the_list(
    table: list[Spec],
    more: list[Spec],
    requests: list[tuple[str, str, str, str, str]],
    edit: str,
) -> None:
    labels_indexed, labels_scanned = iter(range(10**6)), iter(range(10**6))
    indexed = Router(build(table, Router, labels_indexed))
    scanned = ScanRouter(build(table, ScanRouter, labels_scanned))
    for request in requests:  # builds the index, which the edit must then drop
        outcome(indexed, request)
    for router, labels, router_class in (
        (indexed, labels_indexed, Router),
        (scanned, labels_scanned, ScanRouter),
    ):
        extra = build(more, router_class, labels)
        if edit == "append":
            router.routes.append(extra[0])
        elif edit == "insert":
            router.routes.insert(0, extra[0])
        elif edit == "setitem":
            router.routes[:1] = extra
        elif edit == "delitem":
            del router.routes[:1]
        elif edit == "reverse":
            router.routes.reverse()
        else:
            router.routes = [*extra, *router.routes]
    for request in requests:
        assert outcome(indexed, request) == outcome(scanned, request), request


# ---------------------------------------------------------------------------------------------
# The pieces


def test_literal_prefix() -> None:
    assert literal_prefix("/a/b") == ("/a/b", False)
    assert literal_prefix("/a/{x:int}/b") == ("/a/", True)
    assert literal_prefix("/a/item{x}") == ("/a/item", True)


def route(path: str) -> Route:
    return Route(path, Echo(path))


def labels(routes: Any) -> list[Any]:
    return [route.path for route in routes]


def test_candidates_come_from_the_path_only() -> None:
    routes = [
        route("/a/{x}"),
        route("/b"),
        route("/a/b/{y:int}"),
        route("/{z}"),
        route("/a/b/c"),
        Mount("/a", app=Echo("mount")),
    ]
    index = RouteIndex(routes)
    assert labels(index.candidates("http", "/a/b/7")) == ["/a/{x}", "/a/b/{y:int}", "/{z}", "/a"]
    assert labels(index.candidates("http", "/b")) == ["/b", "/{z}"]
    assert labels(index.candidates("http", "/a/b/c")) == [
        "/a/{x}",
        "/a/b/{y:int}",
        "/{z}",
        "/a/b/c",
        "/a",
    ]
    assert labels(index.candidates("websocket", "/a/b/c")) == ["/a"]
    assert index.candidates("lifespan", "/") == routes


def test_no_candidates() -> None:
    index = RouteIndex([route("/a")])
    assert list(index.candidates("http", "/b")) == []
    assert list(index.candidates("websocket", "/a")) == []


def test_a_route_whose_regex_was_replaced_is_tried_for_every_path() -> None:
    replaced = route("/a")
    replaced.path_regex = Route("/b", Echo("b")).path_regex
    index = RouteIndex([replaced])
    assert labels(index.candidates("http", "/b")) == ["/a"]
    assert labels(index.candidates("websocket", "/b")) == ["/a"]


def test_route_list_drops_its_index_on_every_change() -> None:
    routes = RouteList([route("/a"), route("/b")])
    mutations: list[Any] = [
        lambda r: r.append(route("/c")),
        lambda r: r.extend([route("/d")]),
        lambda r: r.insert(0, route("/e")),
        lambda r: r.remove(r[0]),
        lambda r: r.pop(),
        lambda r: r.sort(key=lambda x: x.path),
        lambda r: r.reverse(),
        lambda r: r.__setitem__(0, route("/f")),
        lambda r: r.__delitem__(0),
        lambda r: r.__iadd__([route("/g")]),
        lambda r: r.__imul__(2),
        lambda r: r.clear(),
    ]
    for mutate in mutations:
        routes.router_index = RouteIndex(routes)
        mutate(routes)
        assert routes.router_index is None
    assert isinstance(routes, list)
    routes += [route("/h")]
    routes *= 1
    assert isinstance(routes, RouteList)
    assert labels(routes) == ["/h"]


def test_a_foreign_list_is_checked_for_changes() -> None:
    router = Router()
    router.routes = [route("/a")]
    index = router._index()
    assert router._index() is index
    router.routes.append(route("/b"))
    assert router._index() is not index
    index = router._index()
    router.routes[0] = route("/c")
    assert router._index() is not index


def test_lookups_are_cached_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("starling._router_index.MAX_CACHED_PATHS", 2)
    monkeypatch.setattr("starling._router_index.MAX_CACHED_PATH_LENGTH", 4)
    index = RouteIndex([route("/a/{x}")])
    first = index.candidates("http", "/a/1")
    assert index.candidates("http", "/a/1") is first
    index.candidates("http", "/a/2")
    index.candidates("http", "/a/3")  # the cache was full: it starts again
    assert list(index.by_type["http"].cache) == ["/a/3"]
    assert labels(index.candidates("http", "/a/long")) == ["/a/{x}"]
    assert "/a/long" not in index.by_type["http"].cache


def test_decisions_are_remembered_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("starling._router_index.MAX_CACHED_PATHS", 2)
    monkeypatch.setattr("starling._router_index.MAX_CACHED_PATH_LENGTH", 4)
    router = Router([route("/a/{x}")])
    for path in ["/a/1", "/a/2", "/a/3", "/a/long"]:
        outcome(router, ("http", "GET", path, "", "h"))
    index = router.routes.router_index  # type: ignore[attr-defined]
    # full after two: it started again; a path over the length is never remembered
    assert list(index.by_type["http"].decisions) == ["/a/3"]


def test_a_convertor_may_refuse_what_its_regex_matched() -> None:
    router = Router([Route("/{value:lower}", Echo("lower")), Route("/{value}", Echo("any"))])
    assert (
        json.loads(outcome(router, ("http", "GET", "/x", "", "h"))[0][0]["report"])["endpoint"]
        == "any"
    )
    assert (
        json.loads(outcome(router, ("http", "GET", "/y", "", "h"))[0][0]["report"])["endpoint"]
        == "lower"
    )


def test_regex_compiled_on_first_use() -> None:
    lazy = route("/a/{x:int}")
    assert "path_regex" not in vars(lazy)
    assert index_source(lazy) == ("/a/{x:int}", ("http",))
    assert lazy.path_regex.pattern == "^/a/(?P<x>[0-9]+)$"
    assert lazy.path_regex is vars(lazy)["path_regex"]  # compiled once, then a plain attribute
    assert index_source(lazy) == ("/a/{x:int}", ("http",))  # still its own regex
    assert isinstance(Route.__dict__["path_regex"], type(Route.path_regex))


def test_route_classes_the_index_cannot_vouch_for() -> None:
    class NeverInitialised(Route):
        def __init__(self) -> None:
            pass

    class FixedRegex(Route):
        path_regex = re.compile("^/z$")

    with pytest.raises(AttributeError):
        NeverInitialised().path_regex  # noqa: B018
    assert index_source(NeverInitialised()) == (None, ("http", "websocket"))
    assert index_source(FixedRegex("/a", Echo("a"))) == (None, ("http", "websocket"))
    host = Host("example.com", app=Echo("host"))
    assert index_source(host) == (None, ("http", "websocket"))


def test_an_unknown_scope_type_scans_every_route() -> None:
    router = Router([route("/a")])
    assert labels(router._candidates({"type": "lifespan", "path": "/"})) == ["/a"]


def test_a_route_with_matches_of_its_own_is_asked() -> None:
    # Not decided by the path alone: its own matches() has the last word on every request.
    def table() -> list[Any]:
        changing, accepting = route("/a"), route("/a")
        calls = iter(range(10))

        def matches(scope: Scope) -> tuple[Match, Scope]:
            if next(calls) == 0:
                return Match.NONE, {}
            return Route.matches(changing, scope)

        changing.matches = matches  # type: ignore[method-assign]
        changing.label, accepting.label = "changing", "accepting"  # type: ignore[attr-defined]
        return [changing, accepting]

    request = ("http", "GET", "/a", "", "example.com")
    indexed, scanned = Router(table()), ScanRouter(table())
    for expected in ["accepting", "changing"]:
        sent, changes = outcome(indexed, request)
        assert changes["route"] == expected
        assert (sent, changes) == outcome(scanned, request)


def test_a_remembered_path_keeps_the_parameters_of_the_mount() -> None:
    # The second request is answered from what the first remembered: the mount's parameters
    # still come first, then the route's own.
    table = [
        Spec("mount", "/{tenant}", None, [Spec("route", "/a", None), Spec("route", "/n/{n:int}")])
    ]
    requests = [("http", "GET", path, "", "example.com") for path in ["/x/a", "/y/n/7"]]
    assert_same_decisions(table, requests, redirect=True)
    router = Router(build(table, Router, iter(range(10**6))))
    for _ in range(2):
        _, changes = outcome(router, requests[1])
        assert changes["path_params"] == {"tenant": "'y'", "n": "7"}


class Counting(Convertor[int]):
    """A convertor of the application's own: its answer may change from call to call."""

    regex = "[a-z]+"

    def __init__(self) -> None:
        self.calls = 0

    def convert(self, value: str) -> int:
        self.calls += 1
        return self.calls

    def to_string(self, value: int) -> str:
        return str(value)  # pragma: no cover (url_path_for is not exercised here)


def test_a_path_with_a_convertor_of_the_applications_own_is_matched_every_time() -> None:
    counting = Counting()
    CONVERTOR_TYPES["counting"] = counting
    try:
        router = Router([Route("/{value:counting}", Echo("counting"))])
    finally:
        del CONVERTOR_TYPES["counting"]
    request = ("http", "GET", "/abc", "", "example.com")
    seen = [outcome(router, request)[1]["path_params"] for _ in range(3)]
    assert seen == [{"value": "1"}, {"value": "2"}, {"value": "3"}]


def test_a_remembered_path_still_answers_405_for_another_method() -> None:
    router = Router([Route("/a", Echo("get"), methods=["GET"])])
    get = ("http", "GET", "/a", "", "example.com")
    post = ("http", "POST", "/a", "", "example.com")
    assert outcome(router, get)[1]["route"] is None  # (Echo routes carry no label)
    sent, _ = outcome(router, post)
    assert sent == outcome(ScanRouter([Route("/a", Echo("get"), methods=["GET"])]), post)[0]
    assert sent[0]["status"] == 405


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was(enabled: bool) -> None:
    # Paused while the index is built (see RouteIndex), then as the application had it.
    import gc

    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        seen: list[bool] = []

        class Watching(dict[str, Any]):
            def values(self) -> Any:  # read by the index for each route
                seen.append(gc.isenabled())
                return super().values()

        watched = route("/a")
        watched.param_convertors = Watching()
        RouteIndex([watched])
        assert gc.isenabled() is enabled
        assert seen and not any(seen)
    finally:
        (gc.enable if was else gc.disable)()
