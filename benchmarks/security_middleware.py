"""The proxy-header, security-header and CSRF middleware against the plugins they replace.

Each middleware wraps the same bare ASGI app and is driven directly, in process: a request is
one call with a fresh scope. Contenders run in interleaved rounds of equal wall time; the table
shows microseconds per request (median over rounds) and the median of the per-round ratios
starling / plugin. Every contender's response is checked before anything is timed.

    python -m benchmarks.security_middleware [--rounds 7] [--round-time 0.2]

Plugins (each optional; a missing one is skipped): uvicorn's ProxyHeadersMiddleware, the
``secure`` package's SecureASGIMiddleware, and ``starlette-csrf``. They are benchmark-only
dependencies, never starling's: install them in the benchmark environment.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starling.middleware.csrf import CSRFMiddleware
from starling.middleware.proxy_headers import ProxyHeadersMiddleware
from starling.middleware.security import ContentSecurityPolicy, SecurityHeadersMiddleware

Message = dict[str, Any]
Scope = dict[str, Any]
App = Callable[..., Any]
SECRET = "benchmark-secret-benchmark-secret"


async def bare_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["method"] == "POST":
        await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def make_scope(
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] = ("127.0.0.1", 5000),
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.com"), *(headers or [])],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }


async def run(app: App, template: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = dict(template)
    scope["headers"] = list(template["headers"])
    await app(scope, receive, send)
    return sent


@dataclass
class Contender:
    name: str
    app: App
    scope: Scope


@dataclass
class Case:
    name: str
    starling: Contender
    others: list[Contender]


def _set_cookie(sent: list[Message], name: bytes) -> str:
    for key, value in sent[0]["headers"]:
        if key == b"set-cookie" and value.startswith(name + b"="):
            return value.split(b";", 1)[0].split(b"=", 1)[1].decode()
    raise AssertionError("no cookie was set")


def proxy_cases() -> list[Case]:
    forwarded = [(b"x-forwarded-for", b"203.0.113.9, 10.0.0.1"), (b"x-forwarded-proto", b"https")]
    trusted = make_scope(headers=forwarded)
    untrusted = make_scope(headers=forwarded, client=("198.51.100.7", 5000))
    ours = ProxyHeadersMiddleware(bare_app, trusted_hosts=["127.0.0.1", "10.0.0.0/8"])
    others: list[tuple[str, App]] = []
    try:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware as UvicornProxy

        uvicorn_app = UvicornProxy(bare_app, trusted_hosts=["127.0.0.1", "10.0.0.0/8"])
        others.append(("uvicorn", uvicorn_app))
    except ImportError:  # the plugin is not installed here
        pass
    return [
        Case(
            f"proxy: {label}",
            Contender("starling", ours, scope),
            [Contender(name, app, scope) for name, app in others],
        )
        for label, scope in [("trusted peer, XFF + proto", trusted), ("untrusted peer", untrusted)]
    ]


def security_cases() -> list[Case]:
    scope = make_scope()
    others: list[Contender] = []
    try:
        import secure
        from secure.middleware import SecureASGIMiddleware

        policy = secure.Secure.with_default_headers()
        others.append(Contender("secure", SecureASGIMiddleware(bare_app, secure=policy), scope))
    except ImportError:  # the plugin is not installed here
        pass
    static = SecurityHeadersMiddleware(
        bare_app, content_security_policy=ContentSecurityPolicy(script_src="'self'")
    )
    return [
        Case(
            "security headers: defaults (CSP nonce)",
            Contender("starling", SecurityHeadersMiddleware(bare_app), scope),
            others,
        ),
        Case(
            "security headers: static CSP",
            Contender("starling", static, scope),
            others,
        ),
    ]


async def csrf_cases() -> list[Case]:
    ours = CSRFMiddleware(bare_app, SECRET, bind_to_session=False)
    first = await run(ours, make_scope())
    cookie = _set_cookie(first, b"csrftoken")
    token = cookie  # the cookie value is an accepted token, as a script sends it
    our_get = make_scope(headers=[(b"cookie", f"csrftoken={cookie}".encode())])
    our_post = make_scope(
        "POST",
        headers=[(b"cookie", f"csrftoken={cookie}".encode()), (b"x-csrftoken", token.encode())],
    )
    get_others: list[Contender] = []
    post_others: list[Contender] = []
    try:
        from starlette_csrf import CSRFMiddleware as StarletteCSRF

        theirs = StarletteCSRF(bare_app, SECRET)
        their_cookie = _set_cookie(await run(theirs, make_scope()), b"csrftoken")
        their_headers = [(b"cookie", f"csrftoken={their_cookie}".encode())]
        get_others.append(Contender("starlette-csrf", theirs, make_scope(headers=their_headers)))
        post_headers = [*their_headers, (b"x-csrftoken", their_cookie.encode())]
        post_others.append(Contender("starlette-csrf", theirs, make_scope("POST", post_headers)))
    except ImportError:  # the plugin is not installed here
        pass
    return [
        Case("csrf: GET with a cookie", Contender("starling", ours, our_get), get_others),
        Case("csrf: POST, header token", Contender("starling", ours, our_post), post_others),
    ]


async def per_request(contender: Contender, seconds: float) -> float:
    """Microseconds per request over about ``seconds`` of wall time."""
    app, scope = contender.app, contender.scope
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(200):
            await run(app, scope)
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return (now - started) / count * 1e6


async def check(contender: Contender) -> None:
    sent = await run(contender.app, contender.scope)
    assert sent[0]["status"] == 200, (contender.name, sent)


async def main(rounds: int, round_time: float) -> None:
    cases = [*proxy_cases(), *security_cases(), *(await csrf_cases())]
    bare = Contender("bare app", bare_app, make_scope())
    print(f"{'case':44} {'contender':16} {'µs/request':>12} {'starling/it':>12}")
    for case in cases:
        contenders = [case.starling, *case.others, bare]
        for contender in contenders:
            await check(contender)
        times: dict[str, list[float]] = {contender.name: [] for contender in contenders}
        for index in range(rounds):
            rotation = contenders[index % len(contenders) :] + contenders[: index % len(contenders)]
            for contender in rotation:
                times[contender.name].append(await per_request(contender, round_time))
        ours = times["starling"]
        for contender in contenders:
            mine = times[contender.name]
            ratio = (
                ""
                if contender is case.starling
                else (f"{statistics.median(a / b for a, b in zip(ours, mine, strict=True)):.2f}")
            )
            print(f"{case.name:44} {contender.name:16} {statistics.median(mine):12.2f} {ratio:>12}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--round-time", type=float, default=0.2)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.round_time))
