"""The router's index: the routes that could match a path, in registration order.

A route's regex starts with the literal text of its path up to its first parameter, so every
path it matches starts with that text. The index files each route under that text: a route
without parameters under its exact path (a dict), any other route under the complete path
segments of its literal prefix (a tree of dicts, one level per segment). A lookup returns the
routes filed under the path itself and under each node the path's segments walk through, plus
the routes the index cannot reason about, all in registration order. That is a superset of
the routes whose ``matches()`` can succeed: the router still asks each one, in order, so it
decides exactly as a scan of the whole list would.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from inspect import getattr_static
from itertools import chain, takewhile
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Self, SupportsIndex

from starling.convertors import (
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)
from starling.types import ASGIApp

if TYPE_CHECKING:
    from starling.routing import BaseRoute

_Entry = tuple[int, "BaseRoute"]
# A plain Route's request_response app and its endpoint (Route._endpoint)
Endpoint = tuple[ASGIApp, Callable[..., Any]]

# The lookup cache of each index: paths longer than this are looked up every time.
MAX_CACHED_PATHS = 1024
MAX_CACHED_PATH_LENGTH = 256
_by_position = itemgetter(0)

# Scope types a route can match: the only two that reach the router's matching.
HTTP = "http"
WEBSOCKET = "websocket"


class RouteList(list["BaseRoute"]):
    """``router.routes``: a plain list that drops the router's index whenever it changes.

    Every mutating method is covered, so appending, inserting, replacing, deleting, sorting
    or reversing routes after construction (FastAPI appends) is seen by the next request.
    """

    __slots__ = ("router_index",)

    def __init__(self, routes: Iterable[BaseRoute] = ()) -> None:
        super().__init__(routes)
        self.router_index: RouteIndex | None = None

    def __setitem__(self, key: Any, value: Any) -> None:
        self.router_index = None
        super().__setitem__(key, value)

    def __delitem__(self, key: SupportsIndex | slice) -> None:
        self.router_index = None
        super().__delitem__(key)

    def __iadd__(self, other: Iterable[BaseRoute]) -> Self:  # type: ignore[override,misc]
        self.router_index = None
        return super().__iadd__(other)

    def __imul__(self, count: SupportsIndex) -> Self:
        self.router_index = None
        return super().__imul__(count)

    def append(self, route: BaseRoute) -> None:
        self.router_index = None
        super().append(route)

    def extend(self, routes: Iterable[BaseRoute]) -> None:
        self.router_index = None
        super().extend(routes)

    def insert(self, position: SupportsIndex, route: BaseRoute) -> None:
        self.router_index = None
        super().insert(position, route)

    def remove(self, route: BaseRoute) -> None:
        self.router_index = None
        super().remove(route)

    def pop(self, position: SupportsIndex = -1) -> BaseRoute:
        self.router_index = None
        return super().pop(position)

    def clear(self) -> None:
        self.router_index = None
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.router_index = None
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self.router_index = None
        super().reverse()


class _Node:
    """One path segment of the tree: the routes filed here and the next literal segments."""

    __slots__ = ("children", "entries")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entries: list[_Entry] = []


class _TypeIndex:
    """The index of the routes that can match one scope type."""

    __slots__ = ("always", "cache", "decidable", "decisions", "depth", "root", "static")

    def __init__(self) -> None:
        self.static: dict[str, list[_Entry]] = {}
        self.root = _Node()
        self.always: list[_Entry] = []  # candidates for every path
        self.depth = 0
        self.cache: dict[str, tuple[BaseRoute, ...]] = {}
        # id() of each route whose answer depends on the path and method alone (decidable())
        self.decidable: set[int] = set()
        # path -> (the first route matching it, its converted parameters): see remember()
        self.decisions: dict[str, tuple[BaseRoute, dict[str, Any], Endpoint | None]] = {}

    def remember(
        self,
        path: str,
        candidates: Iterable[BaseRoute],
        first: BaseRoute,
        path_params: dict[str, Any],
        endpoint: Endpoint | None,
    ) -> None:
        """Note that ``first`` is the first of ``candidates`` to match ``path``, when that is
        certain to stay so: it and every candidate before it is decidable.

        Such a route matches by its regex and built-in convertors alone, so the same path
        always gets the same answer from each: NONE for those before ``first``, and from
        ``first`` FULL with the same converted parameters (in ``path_params``, the ones it
        returned) when its methods allow the request's. The router then skips the matching;
        any other request is matched in full. ``endpoint`` is kept for the router too: a
        plain Route's (request_response app, endpoint), valid while the app is still its.
        """
        if len(path) > MAX_CACHED_PATH_LENGTH:
            return
        decidable = self.decidable
        earlier = takewhile(lambda candidate: candidate is not first, candidates)
        if id(first) not in decidable or not all(id(route) in decidable for route in earlier):
            return
        params = {name: path_params[name] for name in first.param_convertors}  # type: ignore[attr-defined]
        decisions = self.decisions
        if len(decisions) >= MAX_CACHED_PATHS:
            decisions.clear()
        decisions[path] = (first, params, endpoint)

    def add(self, entry: _Entry, source: str | None) -> None:
        if source is None:
            self.always.append(entry)
            return
        prefix, has_params = literal_prefix(source)
        if not has_params:
            self.static.setdefault(source, []).append(entry)
            return
        # "/a/b{x}" -> ["a"]: only complete segments; the last piece is cut by a parameter.
        segments = prefix.split("/")[1:-1]
        if not segments:
            self.always.append(entry)
            return
        node = self.root
        for segment in segments:
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = _Node()
            node = child
        node.entries.append(entry)
        self.depth = max(self.depth, len(segments))

    def lookup(self, path: str) -> tuple[BaseRoute, ...]:
        # PERF: most requests ask for a few paths again and again (measured: a cache hit is
        # ~0.15 µs, a tree walk ~0.8 µs); bounded in entries and key length against clients
        # sending endless distinct paths.
        found = self.cache.get(path)
        if found is None:
            found = self._lookup(path)
            if len(path) <= MAX_CACHED_PATH_LENGTH:
                if len(self.cache) >= MAX_CACHED_PATHS:
                    self.cache.clear()
                self.cache[path] = found
        return found

    def _lookup(self, path: str) -> tuple[BaseRoute, ...]:
        runs = [self.always]
        found = self.static.get(path)
        if found is not None:
            runs.append(found)
        if self.depth:
            node = self.root
            # PERF: splitting at most depth + 1 times bounds the work for a path of many segments
            for segment in path.split("/", self.depth + 1)[1 : self.depth + 1]:
                child = node.children.get(segment)
                if child is None:
                    break
                node = child
                runs.append(node.entries)
        return tuple(route for _, route in sorted(chain.from_iterable(runs), key=_by_position))


def literal_prefix(source: str) -> tuple[str, bool]:
    """The text of a route path before its first parameter, and whether it has any."""
    from starling.routing import PARAM_REGEX

    match = PARAM_REGEX.search(source)
    if match is None:
        return source, False
    return source[: match.start()], True


# What each indexable ``matches`` implementation can match: filled in by starling.routing.
INDEXABLE: dict[Callable[..., Any], tuple[str, ...]] = {}
# Route.matches, filled in by starling.routing: see decidable().
ROUTE_MATCHES: list[Callable[..., Any]] = []
# Convertors whose convert() is a pure function of the text.
_PURE_CONVERTORS = frozenset(
    {StringConvertor, PathConvertor, IntegerConvertor, FloatConvertor, UUIDConvertor}
)


def decidable(route: BaseRoute, source: str | None) -> bool:
    """Whether ``route`` answers a scope by its path and method alone, the same every time.

    That is Route.matches (from the class, not replaced on the instance) on a regex compiled
    from ``source`` with built-in convertors only: a convertor of the application's own may
    answer differently from one request to the next.
    """
    return (
        source is not None
        and type(route).matches is ROUTE_MATCHES[0]
        and "matches" not in route.__dict__
        and all(
            type(convertor) in _PURE_CONVERTORS
            for convertor in route.param_convertors.values()  # type: ignore[attr-defined]
        )
    )


def index_source(route: BaseRoute) -> tuple[str | None, tuple[str, ...]]:
    """The path a route's regex was compiled from and the scope types it matches.

    None (a candidate for every path of both types) for any route whose matching the index
    cannot vouch for: a class with its own ``matches``, a Host, or a regex set from outside.
    """
    scope_types = INDEXABLE.get(type(route).matches)
    attributes = getattr(route, "__dict__", {})
    source = attributes.get("_compiled_from")
    regex = attributes.get("path_regex", _NOT_COMPILED)
    if (
        scope_types is None
        or source is None
        # still to be compiled from `source`, or compiled from it: not set from outside
        or not (regex is _NOT_COMPILED or regex is attributes.get("_own_regex"))
        or not isinstance(getattr_static(type(route), "path_regex", None), LazyRegexType)
    ):
        return None, (HTTP, WEBSOCKET)
    return source, scope_types


_NOT_COMPILED: Any = object()
# The lazy `path_regex` descriptor class: filled in by starling.routing.
LazyRegexType: Any = type(None)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk build, then as it was."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class RouteIndex:
    """The candidate routes for a scope type and route path, built once per routes list."""

    __slots__ = ("by_type", "routes")

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        # Kept: the identity of each indexed route (see Router._index for a foreign list).
        self.routes = list(routes)
        self.by_type = {HTTP: _TypeIndex(), WEBSOCKET: _TypeIndex()}
        # PERF: the build allocates a few objects per route and frees none: the garbage
        # collector's passes over everything alive would make it grow faster than the number
        # of routes (measured at 10,000 routes: 8.6 -> 5.8 µs per route; 20,000: 10.6 -> 6.5).
        with _collector_paused():
            for position, route in enumerate(self.routes):
                source, scope_types = index_source(route)
                for scope_type in scope_types:
                    self.by_type[scope_type].add((position, route), source)
                if HTTP in scope_types and decidable(route, source):
                    self.by_type[HTTP].decidable.add(id(route))

    def candidates(self, scope_type: str, path: str) -> Sequence[BaseRoute]:
        """The routes to try, in order: every route for a scope type the index does not cover."""
        type_index = self.by_type.get(scope_type)
        if type_index is None:
            return self.routes
        return type_index.lookup(path)
