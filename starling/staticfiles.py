"""Serve files from directories and packages, with conditional GET, Range and an HTML mode."""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import stat
from email.utils import parsedate

import anyio.to_thread

from starling._utils import get_route_path
from starling.datastructures import URL, Headers
from starling.exceptions import HTTPException
from starling.responses import FileResponse, RedirectResponse, Response
from starling.types import Receive, Scope, Send

PathLike = str | os.PathLike[str]

# RFC 9110 §15.4.5: a 304 carries only the headers a 200 would have had that describe caching.
_NOT_MODIFIED_HEADERS = frozenset(
    ("cache-control", "content-location", "date", "etag", "expires", "vary")
)

# A client-chosen path that the OS cannot resolve is "not found", not a server error: a name too
# long, or (APPSEC: Starlette answers 500) a symlink loop inside the served directory.
_NOT_FOUND_ERRNOS = frozenset((errno.ENAMETOOLONG, errno.ELOOP))

# What _find decided: serve the file, serve a directory's index.html, serve 404.html, nothing.
_FILE, _INDEX, _NOT_FOUND_PAGE, _NOTHING = range(4)


class NotModifiedResponse(Response):
    def __init__(self, headers: Headers) -> None:
        kept = {name: value for name, value in headers.items() if name in _NOT_MODIFIED_HEADERS}
        super().__init__(status_code=304, headers=kept)


def _is_file(stat_result: os.stat_result | None) -> bool:
    return stat_result is not None and stat.S_ISREG(stat_result.st_mode)


def _is_dir(stat_result: os.stat_result | None) -> bool:
    return stat_result is not None and stat.S_ISDIR(stat_result.st_mode)


def _package_directory(package: str | tuple[str, str]) -> str:
    if isinstance(package, tuple):
        package, statics_dir = package
    else:
        statics_dir = "statics"
    spec = importlib.util.find_spec(package)
    assert spec is not None, f"Package {package!r} could not be found."
    # a namespace package has no origin, hence no single directory to serve from
    assert spec.origin is not None, f"Package {package!r} could not be found."
    directory = os.path.normpath(os.path.join(spec.origin, "..", statics_dir))
    assert os.path.isdir(directory), (
        f"Directory '{statics_dir!r}' in package {package!r} could not be found."
    )
    return directory


def _is_within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # pragma: no cover (only on Windows: paths on different drives)
        return False


def _etag_matches(if_none_match: str, etag: str | None) -> bool:
    """RFC 9110 §13.1.2, weak comparison: ``W/"x"`` in the request matches ``"x"``.

    ``*`` matches only as the whole header (the RFC's grammar): a "*" inside a list is not
    the wildcard, and neither is a "*" between the commas of a quoted tag such as "a,*,b".
    """
    if if_none_match.strip() == "*":
        return True
    if etag is None:
        return False
    # APPSEC: one regex scan in C, not a Python step per "," (a header of commas cost a step
    # per byte): some list element, stripped, is the etag or "W/" and the etag.
    weak = "W/" if etag.startswith("W/") else "(?:W/)?"
    element = rf"(?:\A|,)\s*{weak}{re.escape(etag)}\s*(?:,|\Z)"
    return etag in if_none_match and re.search(element, if_none_match) is not None


class StaticFiles:
    def __init__(
        self,
        *,
        directory: PathLike | None = None,
        packages: list[str | tuple[str, str]] | None = None,
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
    ) -> None:
        self.directory = directory
        self.packages = packages
        self.all_directories = self.get_directories(directory, packages)
        self.html = html
        self.config_checked = False
        self.follow_symlink = follow_symlink
        if check_dir and directory is not None and not os.path.isdir(directory):
            raise RuntimeError(f"Directory '{directory}' does not exist")

    def get_directories(
        self,
        directory: PathLike | None = None,
        packages: list[str | tuple[str, str]] | None = None,
    ) -> list[PathLike]:
        """The directories to look in, in order: ``directory``, then each package's."""
        directories: list[PathLike] = [] if directory is None else [directory]
        directories.extend(_package_directory(package) for package in packages or ())
        return directories

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] in ("http", "websocket")
        if scope["type"] == "websocket":
            # nothing to serve over a WebSocket: refuse the handshake
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return
        if not self.config_checked:
            await self.check_config()
            self.config_checked = True
        path = self.get_path(scope)
        response = await self.get_response(path, scope)
        await response(scope, receive, send)

    def get_path(self, scope: Scope) -> str:
        """The requested path relative to the served directories, normalised ("a/../b" is "b").

        Normalising alone does not confine the path ("../x" stays "../x"): lookup_path does.
        """
        return os.path.normpath(get_route_path(scope).lstrip("/"))

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        try:
            # one trip to a worker thread for every file system call this request needs
            found, full_path, stat_result = await anyio.to_thread.run_sync(self._find, path)
        except PermissionError:
            raise HTTPException(status_code=401) from None
        except OSError as exc:
            if exc.errno in _NOT_FOUND_ERRNOS:
                raise HTTPException(status_code=404) from None
            raise
        except ValueError:  # a NUL byte in the path: no such file can exist
            raise HTTPException(status_code=404) from None

        if stat_result is None:
            raise HTTPException(status_code=404)
        if found == _NOT_FOUND_PAGE:
            return FileResponse(full_path, stat_result=stat_result, status_code=404)
        if found == _INDEX and not scope["path"].endswith("/"):
            # relative links in the index page resolve against the directory, so add the "/"
            url = URL(scope=scope)
            return RedirectResponse(url=url.replace(path=url.path + "/"))
        return self.file_response(full_path, stat_result, scope)

    def _find(self, path: str) -> tuple[int, str, os.stat_result | None]:
        """What to serve for ``path`` (runs in a worker thread)."""
        full_path, stat_result = self.lookup_path(path)
        if _is_file(stat_result):
            return _FILE, full_path, stat_result
        if self.html:
            if _is_dir(stat_result):
                full_path, stat_result = self.lookup_path(os.path.join(path, "index.html"))
                if _is_file(stat_result):
                    return _INDEX, full_path, stat_result
            full_path, stat_result = self.lookup_path("404.html")
            if _is_file(stat_result):
                return _NOT_FOUND_PAGE, full_path, stat_result
        return _NOTHING, "", None

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """The first file or directory named ``path`` inside one of the directories.

        APPSEC: the candidate and the directory are both made absolute and normalised (and, unless
        follow_symlink, have their symlinks resolved) before checking that one contains the other,
        so neither "..", an absolute path nor a symlink pointing outside escapes. With
        follow_symlink, symlinks inside the directory are trusted wherever they point.
        """
        resolve = os.path.abspath if self.follow_symlink else os.path.realpath
        for directory in self.all_directories:
            root = resolve(directory)
            full_path = resolve(os.path.join(root, path))
            if not _is_within(full_path, root):
                continue
            try:
                return full_path, os.stat(full_path)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return "", None

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response

    async def check_config(self) -> None:
        """Fail clearly, on the first request, when the directory is missing or is a file."""
        if self.directory is None:
            return
        try:
            stat_result = await anyio.to_thread.run_sync(os.stat, self.directory)
        except FileNotFoundError:
            raise RuntimeError(
                f"StaticFiles directory '{self.directory}' does not exist."
            ) from None
        if not _is_dir(stat_result):
            raise RuntimeError(f"StaticFiles path '{self.directory}' is not a directory.")

    def is_not_modified(self, response_headers: Headers, request_headers: Headers) -> bool:
        """Whether the client's cached copy is current (RFC 9110 §13.1.2 and §13.1.3).

        If-None-Match, when sent, decides alone; If-Modified-Since is only used without it (an
        empty If-None-Match counts as not sent).
        """
        if_none_match = request_headers.get("if-none-match")
        if if_none_match:
            return _etag_matches(if_none_match, response_headers.get("etag"))
        if_modified_since = parsedate(request_headers.get("if-modified-since", ""))
        last_modified = parsedate(response_headers.get("last-modified", ""))
        return (
            if_modified_since is not None
            and last_modified is not None
            and if_modified_since >= last_modified
        )
