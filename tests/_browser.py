"""Debian's Chromium, driven by Playwright: never a browser download (there is no internet for
that). Tests that need it skip, naming the install command, where it is missing; CI installs it
(.ci/run), so there they always run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # no connections to the outside: this machine has none, and a test must not try
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Never longer: while Playwright's sync API is open, its
    event loop runs in the main thread, which other tests (and blockbuster) would see."""
    path = chromium_path()
    if path is None:  # pragma: no cover (CI installs Chromium; a bare machine skips)
        pytest.skip("Chromium is not installed: apt-get install -y chromium")
    # The block runs, but in the greenlet Playwright's sync API switches to, which coverage follows
    # only with `concurrency = ["greenlet"]`; that setting made Hypothesis tests later in the
    # run 100x slower under coverage, so the block is excluded instead.
    with sync_playwright() as playwright:  # pragma: no cover (runs in Playwright's greenlet)
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        with closing(launched):
            yield launched
