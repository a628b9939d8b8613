"""examples/demo.py: every route of the app that ``make demo`` serves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from examples.demo import app
from starling import __version__

if TYPE_CHECKING:
    # A module-level name starting with "Test" would be collected by pytest (and warn).
    from tests.types import TestClientFactory


def test_homepage(test_client_factory: TestClientFactory) -> None:
    response = test_client_factory(app).get("/")
    assert response.status_code == 200
    assert response.text == "Hello from starling!"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_info_is_json(test_client_factory: TestClientFactory) -> None:
    response = test_client_factory(app).get("/api/info")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"framework": "starling", "version": __version__}


def test_greet_uses_the_path_parameter(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    assert client.get("/hello/Ada").text == "Hello, Ada!"
    assert client.get("/hello/J%C3%BCrgen").text == "Hello, J\xfcrgen!"


def test_item_converts_the_id(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app)
    assert client.get("/items/42").json() == {"item_id": 42, "q": None}
    assert client.get("/items/7", params={"q": "search"}).json() == {"item_id": 7, "q": "search"}
    assert client.get("/items/not-a-number").status_code == 404


def test_old_home_redirects_to_homepage(test_client_factory: TestClientFactory) -> None:
    client = test_client_factory(app, follow_redirects=False)
    response = client.get("/old-home")
    assert response.status_code == 301
    assert response.headers["location"] == "http://testserver/"
    followed = test_client_factory(app).get("/old-home")
    assert followed.status_code == 200
    assert followed.text == "Hello from starling!"


def test_unknown_path_is_404(test_client_factory: TestClientFactory) -> None:
    response = test_client_factory(app).get("/nope")
    assert response.status_code == 404
    assert response.text == "Not Found"
