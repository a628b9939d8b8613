"""StaticFiles: lookup, HTML mode, conditional GET, and that no request reads outside the dirs."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from starling.applications import Starling
from starling.datastructures import Headers
from starling.exceptions import HTTPException
from starling.routing import Mount
from starling.staticfiles import NotModifiedResponse, StaticFiles
from starling.types import Message, Scope
from starling.websockets import WebSocketDisconnect

if TYPE_CHECKING:  # a Protocol named Test*: imported at run time, pytest would try to collect it
    from tests.types import TestClientFactory


@pytest.fixture
def static(tmp_path: Path) -> Path:
    """tmp/static (served) next to tmp/outside and tmp/static_secret (never served)."""
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("hello")
    (root / "sub" / "index.html").write_text("<p>sub index</p>")
    (root / "index.html").write_text("<p>top index</p>")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("SECRET")
    (tmp_path / "static_secret").mkdir()
    (tmp_path / "static_secret" / "x.txt").write_text("SECRET")
    (tmp_path / "secret.txt").write_text("SECRET")
    return root


def mounted(app: StaticFiles) -> Starling:
    return Starling(routes=[Mount("/static", app=app, name="static")])


async def call(app: StaticFiles, path: str, method: str = "GET") -> list[Message]:
    """Call the app with a scope whose path is exactly ``path``: what a server hands over
    after percent-decoding, without the client normalising any "..".
    """
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        await anyio.sleep_forever()  # the client never leaves
        raise AssertionError("unreachable")  # pragma: no cover (sleep_forever never returns)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_serves_a_file(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static))
    response = client.get("/a.txt")
    assert response.status_code == 200
    assert response.text == "hello"
    assert list(response.headers) == [
        "content-type",
        "accept-ranges",
        "content-length",
        "last-modified",
        "etag",
    ]
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "5"


def test_pathlike_and_trailing_slash(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=str(static)))
    assert client.get("/a.txt/").text == "hello"
    assert client.get("/sub/../a.txt").text == "hello"


def test_head(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static))
    response = client.head("/a.txt")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "5"


def test_range(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static))
    response = client.get("/a.txt", headers={"range": "bytes=1-2"})
    assert response.status_code == 206
    assert response.text == "el"
    assert response.headers["content-range"] == "bytes 1-2/5"


def test_other_methods_are_405(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static))
    with pytest.raises(HTTPException) as info:
        client.post("/a.txt")
    assert info.value.status_code == 405
    assert info.value.headers == {"Allow": "GET, HEAD"}
    # even for a file that does not exist: the method is checked first
    with pytest.raises(HTTPException) as info:
        client.delete("/missing")
    assert info.value.status_code == 405

    response = test_client_factory(mounted(StaticFiles(directory=static))).post("/static/a.txt")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.text == "Method Not Allowed"


def test_missing_file(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static))
    for path in ("/missing", "/", "/sub", "/sub/", "/a.txt/more"):
        with pytest.raises(HTTPException) as info:
            client.get(path)
        assert info.value.status_code == 404

    response = test_client_factory(mounted(StaticFiles(directory=static))).get("/static/missing")
    assert response.status_code == 404
    assert response.text == "Not Found"


def test_mount_root_redirects(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(mounted(StaticFiles(directory=static)))
    response = client.get("/static", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/static/"
    assert client.get("/static/a.txt").text == "hello"


def test_url_for_the_mount(static: Path) -> None:
    app = mounted(StaticFiles(directory=static))
    assert app.url_path_for("static", path="/a.txt") == "/static/a.txt"


# --- HTML mode ---------------------------------------------------------------------------


def test_html_index(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(mounted(StaticFiles(directory=static, html=True)))
    response = client.get("/static/")
    assert response.text == "<p>top index</p>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert client.get("/static/sub/").text == "<p>sub index</p>"
    assert client.get("/static/sub/index.html").text == "<p>sub index</p>"


def test_html_directory_redirect(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(mounted(StaticFiles(directory=static, html=True)))
    response = client.get("/static/sub?x=1", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/static/sub/?x=1"
    assert client.get("/static/sub").text == "<p>sub index</p>"


def test_html_404_page(static: Path, test_client_factory: TestClientFactory) -> None:
    (static / "404.html").write_text("<h1>gone</h1>")
    client = test_client_factory(mounted(StaticFiles(directory=static, html=True)))
    for path in ("/static/missing", "/static/empty/", "/static/empty"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.text == "<h1>gone</h1>"
        assert response.headers["content-type"] == "text/html; charset=utf-8"
    # the 404 page is never "not modified"
    etag = response.headers["etag"]
    assert client.get("/static/missing", headers={"if-none-match": etag}).status_code == 404


def test_html_without_404_page(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static, html=True))
    with pytest.raises(HTTPException) as info:
        client.get("/empty/")
    assert info.value.status_code == 404


# --- configuration -----------------------------------------------------------------------


def test_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"^Directory '.*nope' does not exist$"):
        StaticFiles(directory=tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeError, match=r"^Directory '.*file' does not exist$"):
        StaticFiles(directory=tmp_path / "file")


def test_check_config_at_first_request(
    tmp_path: Path, test_client_factory: TestClientFactory
) -> None:
    app = StaticFiles(directory=tmp_path / "nope", check_dir=False)
    client = test_client_factory(app)
    with pytest.raises(RuntimeError, match=r"^StaticFiles directory '.*nope' does not exist\.$"):
        client.get("/x")
    assert app.config_checked is False

    (tmp_path / "file").write_text("")
    client = test_client_factory(StaticFiles(directory=tmp_path / "file", check_dir=False))
    with pytest.raises(RuntimeError, match=r"^StaticFiles path '.*file' is not a directory\.$"):
        client.get("/x")

    # created after start-up: checked once, then served
    later = tmp_path / "later"
    app = StaticFiles(directory=later, check_dir=False)
    later.mkdir()
    (later / "f.txt").write_text("late")
    client = test_client_factory(app)
    assert client.get("/f.txt").text == "late"
    assert app.config_checked is True


def test_no_directory(test_client_factory: TestClientFactory) -> None:
    app = StaticFiles()
    assert app.all_directories == []
    with pytest.raises(HTTPException):
        test_client_factory(app).get("/x")


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"starling_test_pkg_{os.getpid()}"
    base = tmp_path / "pkgs" / name
    (base / "statics").mkdir(parents=True)
    (base / "assets").mkdir()
    (base / "__init__.py").write_text("")
    (base / "statics" / "p.txt").write_text("from statics")
    (base / "assets" / "q.txt").write_text("from assets")
    (tmp_path / "pkgs" / "namespace_only").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    yield name
    sys.modules.pop(name, None)


def test_packages(
    package: str, static: Path, test_client_factory: TestClientFactory, tmp_path: Path
) -> None:
    app = StaticFiles(directory=static, packages=[package, (package, "assets")])
    pkg_dir = tmp_path / "pkgs" / package
    assert app.all_directories == [static, str(pkg_dir / "statics"), str(pkg_dir / "assets")]
    assert app.packages == [package, (package, "assets")]
    client = test_client_factory(app)
    assert client.get("/p.txt").text == "from statics"
    assert client.get("/q.txt").text == "from assets"
    assert client.get("/a.txt").text == "hello"


def test_package_errors(package: str) -> None:
    with pytest.raises(AssertionError, match=r"^Package 'no_such_pkg_xyz' could not be found\.$"):
        StaticFiles(packages=["no_such_pkg_xyz"])
    with pytest.raises(AssertionError, match=r"^Package 'namespace_only' could not be found\.$"):
        StaticFiles(packages=["namespace_only"])
    message = rf"^Directory ''nothere'' in package '{package}' could not be found\.$"
    with pytest.raises(AssertionError, match=message):
        StaticFiles(packages=[(package, "nothere")])


# --- conditional requests ----------------------------------------------------------------


def test_if_none_match(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static))
    etag = client.get("/a.txt").headers["etag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', f'"other",{etag}', "*"):
        response = client.get("/a.txt", headers={"if-none-match": value})
        assert response.status_code == 304, value
        assert response.content == b""
        assert list(response.headers.items()) == [("etag", etag)]
    assert client.head("/a.txt", headers={"if-none-match": etag}).status_code == 304
    # If-None-Match wins over Range
    response = client.get("/a.txt", headers={"if-none-match": etag, "range": "bytes=0-1"})
    assert response.status_code == 304
    # "*" is the wildcard only as the whole header, not inside a list or a quoted tag
    for value in (etag.strip('"'), '"other"', '"*"', '"a,*,b"', '"x", *', "*, W/*"):
        assert client.get("/a.txt", headers={"if-none-match": value}).status_code == 200, value
    assert client.get("/a.txt", headers={"if-none-match": " * "}).status_code == 304


def test_if_modified_since(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(StaticFiles(directory=static))
    last_modified = client.get("/a.txt").headers["last-modified"]
    for value, status in (
        (last_modified, 304),
        ("Sat, 01 Jan 2150 00:00:00 GMT", 304),
        ("Sat, 01 Jan 2000 00:00:00 GMT", 200),
        ("garbage", 200),
    ):
        response = client.get("/a.txt", headers={"if-modified-since": value})
        assert response.status_code == status, value
    # an If-None-Match that does not match decides: If-Modified-Since is not consulted
    headers = {"if-none-match": '"other"', "if-modified-since": last_modified}
    assert client.get("/a.txt", headers=headers).status_code == 200
    # an empty If-None-Match is as good as none: If-Modified-Since decides
    headers = {"if-none-match": "", "if-modified-since": last_modified}
    assert client.get("/a.txt", headers=headers).status_code == 304


def test_is_not_modified() -> None:
    app = StaticFiles()
    date = "Sat, 21 Nov 2026 07:15:35 GMT"
    assert app.is_not_modified(Headers({"etag": '"a"'}), Headers({"if-none-match": ' W/"a" '}))
    assert not app.is_not_modified(Headers({"etag": '"a"'}), Headers({"if-none-match": '"A"'}))
    assert app.is_not_modified(Headers({}), Headers({"if-none-match": "*"}))
    assert not app.is_not_modified(Headers({}), Headers({"if-none-match": '"a"'}))
    assert not app.is_not_modified(Headers({"etag": '"a"'}), Headers({}))
    assert not app.is_not_modified(Headers({}), Headers({"if-modified-since": date}))
    assert not app.is_not_modified(
        Headers({"last-modified": "garbage"}), Headers({"if-modified-since": date})
    )
    assert not app.is_not_modified(
        Headers({"last-modified": date}),
        Headers({"if-modified-since": "Sat, 21 Nov 2026 07:15:34 GMT"}),
    )


def test_not_modified_response_keeps_cache_headers() -> None:
    headers = Headers(
        raw=[
            (b"date", b"d"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"3"),
            (b"etag", b'"e"'),
            (b"last-modified", b"lm"),
            (b"vary", b"a"),
            (b"vary", b"b"),
            (b"cache-control", b"no-cache"),
            (b"expires", b"x"),
            (b"content-location", b"/c"),
            (b"x-other", b"o"),
        ]
    )
    response = NotModifiedResponse(headers)
    assert response.status_code == 304
    assert response.body == b""
    assert response.raw_headers == [
        (b"date", b"d"),
        (b"etag", b'"e"'),
        (b"vary", b"b"),
        (b"cache-control", b"no-cache"),
        (b"expires", b"x"),
        (b"content-location", b"/c"),
    ]


def test_file_response_checks_preconditions(static: Path) -> None:
    app = StaticFiles(directory=static)
    stat_result = os.stat(static / "a.txt")
    scope: Scope = {"type": "http", "method": "GET", "headers": [(b"if-none-match", b"*")]}
    response = app.file_response(static / "a.txt", stat_result, scope)
    assert isinstance(response, NotModifiedResponse)
    response = app.file_response(static / "a.txt", stat_result, {**scope, "headers": []}, 201)
    assert response.status_code == 201


# --- lookup ------------------------------------------------------------------------------


def test_get_path() -> None:
    app = StaticFiles()
    for path, expected in (
        ("/a/b", "a/b"),
        ("/", "."),
        ("", "."),
        ("//etc/passwd", "etc/passwd"),
        ("/a/../b/./c//d", "b/c/d"),
        ("/..", ".."),
        ("/a\\b", "a\\b"),
    ):
        assert app.get_path({"path": path, "root_path": ""}) == expected
    assert app.get_path({"path": "/static/a", "root_path": "/static"}) == "a"


def test_lookup_path(static: Path) -> None:
    app = StaticFiles(directory=static)
    full_path, stat_result = app.lookup_path("a.txt")
    assert full_path == str(static / "a.txt")
    assert stat_result is not None
    assert stat_result.st_size == 5
    assert app.lookup_path("sub")[0] == str(static / "sub")
    assert app.lookup_path("missing") == ("", None)
    assert app.lookup_path("a.txt/x") == ("", None)
    assert app.lookup_path("../outside/secret.txt") == ("", None)
    assert app.lookup_path(str(static.parent / "secret.txt")) == ("", None)
    with pytest.raises(ValueError):
        app.lookup_path("a.txt\x00")


# APPSEC: every one of these is a path a client can send; none may leave the directory.
TRAVERSALS = [
    "/../secret.txt",
    "/../outside/secret.txt",
    "/sub/../../secret.txt",
    "/../static_secret/x.txt",
    "/..\\secret.txt",
    "/sub\\..\\..\\secret.txt",
    "//etc/passwd",
    "/etc/passwd",
    "/a.txt\x00",
    "/\x00../secret.txt",
    "/C:/Windows/win.ini",
    "/C:\\Windows\\win.ini",
    "/c:..\\secret.txt",
    "/" + "a" * 300,
    "/" + "a/" * 3000,
    "/link_out/secret.txt",
    "/file_link_out",
    "/loop",
    "/loop/x",
]


@pytest.fixture
def with_links(static: Path) -> Path:
    (static / "link_out").symlink_to(static.parent / "outside")
    (static / "file_link_out").symlink_to(static.parent / "secret.txt")
    (static / "link_in").symlink_to(static / "a.txt")
    (static / "loop").symlink_to(static / "loop")
    return static


def run(app: StaticFiles, path: str, backend: tuple[str, dict[str, Any]]) -> list[Message]:
    """The app is built outside the event loop, as an application module builds it."""
    return anyio.run(call, app, path, backend=backend[0], backend_options=backend[1])


@pytest.mark.parametrize("html", [False, True])
@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_escape_from_the_directory(
    with_links: Path, path: str, html: bool, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    app = StaticFiles(directory=with_links, html=html)
    with pytest.raises(HTTPException) as info:
        run(app, path, anyio_backend)
    assert info.value.status_code == 404


@pytest.mark.parametrize("path", [p for p in TRAVERSALS if "link_out" not in p])
def test_no_escape_with_follow_symlink(
    with_links: Path, path: str, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    app = StaticFiles(directory=with_links, follow_symlink=True)
    with pytest.raises(HTTPException) as info:
        run(app, path, anyio_backend)
    assert info.value.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/outside/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/sub/..%2f..%2fsecret.txt",
        "/static/%2e%2e%2fstatic_secret%2fx.txt",
        "/static/..%5csecret.txt",
        "/static/%2f%2fetc%2fpasswd",
        "/static/a.txt%00",
        "/static/%00",
        "/static/C%3A%5Cwin.ini",
        "/static/link_out/secret.txt",
        "/static/file_link_out",
        "/static/loop",
    ],
)
def test_encoded_traversal_is_404(
    with_links: Path, path: str, test_client_factory: TestClientFactory
) -> None:
    client = test_client_factory(mounted(StaticFiles(directory=with_links)))
    response = client.get(path)
    assert response.status_code == 404
    assert "SECRET" not in response.text


def test_symlinks(with_links: Path, test_client_factory: TestClientFactory) -> None:
    # a link that stays inside is fine, and is typed by its target
    client = test_client_factory(StaticFiles(directory=with_links))
    response = client.get("/link_in")
    assert response.text == "hello"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    # follow_symlink=True trusts links placed in the directory, wherever they point
    client = test_client_factory(StaticFiles(directory=with_links, follow_symlink=True))
    assert client.get("/link_out/secret.txt").text == "SECRET"
    response = client.get("/file_link_out")
    assert response.text == "SECRET"
    assert response.headers["content-type"] == "application/octet-stream"


def test_directory_itself_a_symlink(
    static: Path, tmp_path: Path, test_client_factory: TestClientFactory
) -> None:
    (tmp_path / "current").symlink_to(static)
    (static / "file_link_out").symlink_to(tmp_path / "secret.txt")
    client = test_client_factory(mounted(StaticFiles(directory=tmp_path / "current")))
    assert client.get("/static/a.txt").text == "hello"
    assert client.get("/static/file_link_out").status_code == 404


def test_not_a_regular_file(static: Path, test_client_factory: TestClientFactory) -> None:
    os.mkfifo(static / "fifo")
    client = test_client_factory(mounted(StaticFiles(directory=static)))
    assert client.get("/static/fifo").status_code == 404


class FailingLookup(StaticFiles):
    error: Exception

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PermissionError(errno.EACCES, "denied"), 401),
        (OSError(errno.ENAMETOOLONG, "too long"), 404),
        (OSError(errno.ELOOP, "loop"), 404),
        (ValueError("embedded null byte"), 404),
    ],
)
def test_lookup_errors(
    static: Path, error: Exception, status: int, test_client_factory: TestClientFactory
) -> None:
    app = FailingLookup(directory=static, html=True)
    app.error = error
    response = test_client_factory(mounted(app)).get("/static/a.txt")
    assert response.status_code == status


def test_other_os_errors_propagate(static: Path, test_client_factory: TestClientFactory) -> None:
    app = FailingLookup(directory=static)
    app.error = OSError(errno.EIO, "disk")
    with pytest.raises(OSError, match="disk"):
        test_client_factory(app).get("/a.txt")


# --- other scopes ------------------------------------------------------------------------


def test_websocket_is_refused(static: Path, test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(mounted(StaticFiles(directory=static)))
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/static/a.txt"):
        pass  # pragma: no cover (the handshake is refused)
    assert info.value.code == 1000


def test_lifespan_scope_is_an_error(
    static: Path, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    app = StaticFiles(directory=static)

    async def receive() -> Message:
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        raise AssertionError("unreachable")  # pragma: no cover

    scope: dict[str, Any] = {"type": "lifespan"}
    with pytest.raises(AssertionError):
        anyio.run(app, scope, receive, send, backend=anyio_backend[0])


def test_direct_call_streams_the_file(
    static: Path, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    sent = run(StaticFiles(directory=static), "/a.txt", anyio_backend)
    assert sent[0]["status"] == 200
    assert b"".join(message.get("body", b"") for message in sent) == b"hello"
