"""The demo board in a real browser: Debian's Chromium, driven by Playwright, against the app
served by uvicorn on 127.0.0.1, as its users would use it."""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, expect

from tests._processes import ROOT, environment, free_port, running

SCREENSHOT = ROOT / "docs" / "img" / "demo.png"


def png(width: int = 320, height: int = 120) -> bytes:
    """A valid PNG image (a colour gradient), made here rather than shipped."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (59 + 150 * x // width, 91 + y, 219))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def board_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    uploads = tmp_path_factory.mktemp("uploads")
    command = [sys.executable, "-m", "uvicorn", "--factory", "examples.board.app:create_app"]
    env = environment(BOARD_UPLOAD_DIR=str(uploads), REDIS_URL=None)
    with running([*command, "--host", "127.0.0.1", "--port", str(port)], port, env):
        yield f"http://127.0.0.1:{port}"


class Watched:
    """A page whose console messages and failed requests are collected as they happen."""

    def __init__(self, context: BrowserContext) -> None:
        self.page: Page = context.new_page()
        self.console: list[ConsoleMessage] = []
        self.errors: list[str] = []
        self.failed: list[Request] = []
        # (Playwright wants functions it can introspect: lambdas, not bound built-ins)
        self.page.on("console", lambda message: self.console.append(message))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("requestfailed", lambda request: self.failed.append(request))

    @property
    def problems(self) -> list[str]:
        return [
            *(f"console: {message.text}" for message in self.console if message.type == "error"),
            *(f"page error: {error}" for error in self.errors),
            *(
                f"failed: {request.method} {request.url} {request.failure}"
                for request in self.failed
                # leaving a page (signing in or out navigates) cuts its event stream: expected
                if not (request.url.endswith("/events") and request.failure == "net::ERR_ABORTED")
            ),
        ]


def sign_in(watched: Watched, url: str, name: str) -> Page:
    page = watched.page
    page.goto(url)
    page.fill("#name", name)
    page.click("#signin-form button")
    expect(page.locator("#me")).to_have_text(name)
    expect(page.locator("#live")).to_have_class("live on")  # the event stream is open
    return page


def test_two_people_use_the_board(browser: Browser, board_url: str, tmp_path: Path) -> None:
    ada_context = browser.new_context(viewport={"width": 1200, "height": 800})
    bob_context = browser.new_context()
    try:
        ada, bob = Watched(ada_context), Watched(bob_context)
        ada_page = sign_in(ada, board_url, "Ada")
        bob_page = sign_in(bob, board_url, "Bob")

        # A message posted by Ada appears in Bob's feed without a reload.
        ada_page.fill("#text", "Hello from Ada")
        ada_page.click("#post")
        expect(bob_page.locator("#feed .message .text").first).to_have_text("Hello from Ada")
        expect(ada_page.locator("#feed .message .text").first).to_have_text("Hello from Ada")

        # An image Bob uploads renders on Ada's page.
        picture = tmp_path / "blue.png"
        picture.write_bytes(png())
        bob_page.fill("#text", "A picture")
        bob_page.set_input_files("#image", str(picture))
        bob_page.click("#post")
        image = ada_page.locator("#feed .message img").first
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth") == 320

        # A chat line crosses over the WebSocket.
        bob_page.fill("#chat-line", "hi Ada")
        bob_page.press("#chat-line", "Enter")
        expect(ada_page.locator("#chat li").last).to_have_text("Bob: hi Ada")

        ada_page.screenshot(path=str(SCREENSHOT))
        assert ada.problems == [] and bob.problems == []

        # Signing out ends the session: the page asks for a name again.
        bob_page.click("#signout")
        expect(bob_page.locator("#signin-form")).to_be_visible()
        bob_page.reload()
        expect(bob_page.locator("#signin-form")).to_be_visible()
    finally:
        ada_context.close()
        bob_context.close()


def test_a_forged_cross_site_post_is_refused(browser: Browser, board_url: str) -> None:
    context = browser.new_context()
    try:
        page = sign_in(Watched(context), board_url, "Eve's target")
        # A page on another site that posts to the board with the victim's cookies.
        forged = (
            f'<form id="f" method="post" action="{board_url}/messages">'
            '<input name="text" value="forged"></form>'
            "<script>document.getElementById('f').submit()</script>"
        )
        page.route(
            "http://evil.example/**",
            lambda route: route.fulfill(body=forged, content_type="text/html"),
        )
        page.goto("http://evil.example/")
        page.wait_for_url(f"{board_url}/messages")
        expect(page.locator("body")).to_contain_text("cross-origin")
    finally:
        context.close()
