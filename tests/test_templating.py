"""Jinja2Templates: loading, context, autoescape, url_for and the debug extension."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import pytest

from starling.applications import Starling
from starling.background import BackgroundTask
from starling.requests import Request
from starling.responses import Response
from starling.routing import Mount, Route
from starling.templating import Jinja2Templates
from starling.types import Message, Scope

if TYPE_CHECKING:  # a Protocol named Test*: imported at run time, pytest would try to collect it
    from tests.types import TestClientFactory


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("Hello {{ name }} at {{ request.url.path }}")
    (tmp_path / "links.html").write_text(
        "{{ url_for('user', id=7) }}|{{ url_for('static', path='/a b.css') }}"
    )
    (tmp_path / "page.xml").write_text("<b>{{ x }}</b>")
    (tmp_path / "plain.txt").write_text("{{ x }}")
    (tmp_path / "extra.html").write_text("{{ extra }}|{{ x }}")
    return tmp_path


def app_for(templates: Jinja2Templates, name: str, **kwargs: Any) -> Starling:
    # a sync endpoint: jinja2 reads template files with blocking calls, so keep it off the loop
    def endpoint(request: Request) -> Response:
        return templates.TemplateResponse(request, name, **kwargs)

    def user(request: Request) -> Response:  # pragma: no cover (only its URL is built)
        return Response()

    return Starling(
        routes=[
            Route("/", endpoint),
            Route("/users/{id:int}", user, name="user"),
            Mount("/static", app=Starling(), name="static"),
        ]
    )


def test_renders_html(template_dir: Path, test_client_factory: TestClientFactory) -> None:
    templates = Jinja2Templates(directory=template_dir)
    client = test_client_factory(app_for(templates, "index.html", context={"name": "<b>"}))
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "Hello &lt;b&gt; at /"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.template.name == "index.html"  # type: ignore[attr-defined]
    context = response.context  # type: ignore[attr-defined]
    assert set(context) == {"name", "request"}
    assert isinstance(context["request"], Request)


def test_autoescape_by_extension(
    template_dir: Path, test_client_factory: TestClientFactory
) -> None:
    templates = Jinja2Templates(directory=template_dir)
    response = test_client_factory(app_for(templates, "page.xml", context={"x": "<y>"})).get("/")
    assert response.text == "<b>&lt;y&gt;</b>"
    # the media type stays text/html unless asked otherwise
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    app = app_for(
        templates, "plain.txt", context={"x": "<y>"}, media_type="text/plain", status_code=201
    )
    response = test_client_factory(app).get("/")
    assert response.status_code == 201
    assert response.text == "<y>"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert templates.env.from_string("{{ x }}").render(x="<") == "&lt;"


def test_headers_and_background(template_dir: Path, test_client_factory: TestClientFactory) -> None:
    done: list[str] = []
    templates = Jinja2Templates(directory=template_dir)
    app = app_for(
        templates,
        "plain.txt",
        context={"x": 1},
        headers={"x-a": "1"},
        background=BackgroundTask(done.append, "ran"),
    )
    response = test_client_factory(app).get("/")
    assert list(response.headers.items())[0] == ("x-a", "1")
    assert done == ["ran"]


def test_url_for(template_dir: Path, test_client_factory: TestClientFactory) -> None:
    templates = Jinja2Templates(directory=template_dir)
    response = test_client_factory(app_for(templates, "links.html")).get("/")
    assert response.text == "http://testserver/users/7|http://testserver/static/a b.css"


def test_context_processors(template_dir: Path, test_client_factory: TestClientFactory) -> None:
    seen: list[Request] = []

    def processor(request: Request) -> dict[str, Any]:
        seen.append(request)
        return {"extra": "EX", "x": "from processor"}

    templates = Jinja2Templates(directory=template_dir, context_processors=[processor])
    assert templates.context_processors == [processor]
    context: dict[str, Any] = {"x": "mine"}
    response = test_client_factory(app_for(templates, "extra.html", context=context)).get("/")
    # a processor has the last word, and the caller's dict is filled in place
    assert response.text == "EX|from processor"
    assert context["request"] is seen[0]
    assert context["extra"] == "EX"


def test_request_in_context_is_kept(template_dir: Path) -> None:
    templates = Jinja2Templates(directory=template_dir)
    request = Request({"type": "http", "headers": []})
    context: dict[str, Any] = {"request": "mine", "x": 1}
    response = templates.TemplateResponse(request, "plain.txt", context)
    assert response.context is context
    assert context["request"] == "mine"
    assert response.body == b"1"


def test_env(test_client_factory: TestClientFactory) -> None:
    env = jinja2.Environment(loader=jinja2.DictLoader({"t.html": "{{ url_for('home') }}"}))
    templates = Jinja2Templates(env=env)
    assert templates.env is env
    assert env.globals["url_for"] is not None

    async def home(request: Request) -> Response:
        return templates.TemplateResponse(request, "t.html")

    app = Starling(routes=[Route("/", home, name="home")])
    assert test_client_factory(app).get("/").text == "http://testserver/"


def test_env_keeps_its_own_url_for() -> None:
    def url_for(name: str) -> str:  # pragma: no cover (never called)
        return name

    env = jinja2.Environment()
    env.globals["url_for"] = url_for
    Jinja2Templates(env=env)
    assert env.globals["url_for"] is url_for


def test_directory_or_env(template_dir: Path) -> None:
    message = "either 'directory' or 'env' arguments must be passed"
    with pytest.raises(AssertionError, match=message):
        Jinja2Templates()
    with pytest.raises(AssertionError, match=message):
        Jinja2Templates(directory=template_dir, env=jinja2.Environment())


def test_directories(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    (other / "only_here.txt").write_text("other")
    templates = Jinja2Templates(directory=[str(template_dir), other])
    assert templates.get_template("only_here.txt").render() == "other"
    assert templates.get_template("plain.txt").render(x=2) == "2"
    with pytest.raises(jinja2.TemplateNotFound):
        templates.get_template("missing.html")


def test_template_object_as_name() -> None:
    templates = Jinja2Templates(env=jinja2.Environment())
    template = templates.env.from_string("{{ y }}")
    response = templates.TemplateResponse(Request({"type": "http"}), template, {"y": "<"})  # type: ignore[arg-type]
    assert response.template is template
    assert response.body == b"<"  # a plain Environment does not autoescape


def test_old_calling_convention_is_gone() -> None:
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.DictLoader({})))
    request = Request({"type": "http"})
    with pytest.raises(TypeError):
        templates.TemplateResponse("index.html", {"request": request})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        templates.TemplateResponse(name="index.html", context={"request": request})  # type: ignore[call-arg]


async def render(response: Response, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    await response(scope, receive, send)
    return sent


@pytest.mark.anyio
@pytest.mark.parametrize("debug", [True, False])
async def test_debug_message_only_when_asked(debug: bool) -> None:
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.DictLoader({"t": "{{ x }}"})))
    extensions: dict[str, Any] = {"http.response.debug": {}} if debug else {}
    scope: Scope = {"type": "http", "method": "GET", "headers": [], "extensions": extensions}
    response = templates.TemplateResponse(Request(scope), "t", {"x": 9})
    sent = await render(response, scope)
    assert sent[-1]["body"] == b"9"
    if debug:
        assert sent[0]["type"] == "http.response.debug"
        assert sent[0]["info"]["template"] is response.template
        assert sent[0]["info"]["context"] is response.context
        assert sent[1]["type"] == "http.response.start"
    else:
        assert sent[0]["type"] == "http.response.start"


def test_missing_jinja2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)
    monkeypatch.delitem(sys.modules, "starling.templating")
    with pytest.raises(ImportError, match="^jinja2 must be installed to use Jinja2Templates$"):
        importlib.import_module("starling.templating")
