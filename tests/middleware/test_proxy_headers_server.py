"""ProxyHeadersMiddleware under a real uvicorn process on 127.0.0.1, with uvicorn's own proxy
header handling off (``--no-proxy-headers``), spoken to by httpx as a proxy would."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.httpsredirect import HTTPSRedirectMiddleware
from starling.middleware.proxy_headers import ProxyHeadersMiddleware
from starling.requests import Request
from starling.responses import JSONResponse
from starling.routing import Route

ROOT = Path(__file__).parents[2]


async def describe(request: Request) -> JSONResponse:  # pragma: no cover (runs in uvicorn)
    return JSONResponse(
        {
            "client": list(request.client or ()),
            "url": str(request.url),
            "url_for": str(request.url_for("describe")),
        }
    )


def make_app(trusted_hosts: list[str]) -> Starling:
    return Starling(
        routes=[Route("/describe", describe)],
        middleware=[
            Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_hosts),
            Middleware(HTTPSRedirectMiddleware),
        ],
    )


# uvicorn imports these by name: one app trusting the loopback peer, one trusting nobody here.
trusting_app = make_app(["127.0.0.1"])
distrusting_app = make_app(["192.0.2.0/24"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, "uvicorn exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("uvicorn did not start within 15 s")  # pragma: no cover


@pytest.fixture(scope="module")
def base_urls() -> Iterator[dict[str, str]]:
    urls: dict[str, str] = {}
    processes = []
    try:
        for name in ("trusting_app", "distrusting_app"):
            port = _free_port()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    f"tests.middleware.test_proxy_headers_server:{name}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-proxy-headers",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
            )
            processes.append(process)
            _wait_for(port, process)
            urls[name] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def test_a_real_proxy_request(base_urls: dict[str, str]) -> None:
    headers = {
        # "6.6.6.6" is what the client forged; the proxy appended the address it saw.
        "x-forwarded-for": "6.6.6.6, 203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "shop.example",
        "x-forwarded-prefix": "/store",
    }
    response = httpx.get(f"{base_urls['trusting_app']}/describe", headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "client": ["203.0.113.9", 0],
        "url": "https://shop.example/store/describe",
        "url_for": "https://shop.example/store/describe",
    }


def test_https_redirect_goes_to_the_forwarded_host(base_urls: dict[str, str]) -> None:
    response = httpx.get(
        f"{base_urls['trusting_app']}/describe?q=1",
        headers={"forwarded": "for=203.0.113.9;proto=http;host=shop.example"},
        timeout=10,
    )
    assert response.status_code == 307
    assert response.headers["location"] == "https://shop.example/describe?q=1"


def test_an_untrusted_peer_cannot_forge(base_urls: dict[str, str]) -> None:
    url = base_urls["distrusting_app"]
    response = httpx.get(
        f"{url}/describe",
        headers={
            "x-forwarded-for": "6.6.6.6",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "evil.example",
        },
        timeout=10,
    )
    # Still plain http from the real peer: redirected to the real host, not the forged one.
    assert response.status_code == 307
    assert response.headers["location"] == f"https{url[4:]}/describe"
