"""The app that tests/test_multiworker.py runs in two uvicorn processes sharing one Redis.

``create_app`` reads where Redis is and a per-test key prefix from the environment, so each
process (started with ``uvicorn --factory``) builds the same app on the same Redis.
"""

from __future__ import annotations

import os

from starling.applications import Starling
from starling.middleware import Middleware
from starling.middleware.ratelimit import RateLimit, RateLimitMiddleware
from starling.middleware.ratelimit import RedisStore as RateLimitRedisStore
from starling.requests import Request
from starling.responses import JSONResponse
from starling.routing import Route
from starling.sessions import RedisStore, SessionStoreMiddleware, regenerate

LIMIT = 5


async def login(request: Request) -> JSONResponse:
    regenerate(request)
    request.session["user"] = request.query_params["user"]
    request.session["port"] = request.url.port
    return JSONResponse(dict(request.session))


async def me(request: Request) -> JSONResponse:
    return JSONResponse({**request.session, "served_by": request.url.port})


async def limited(request: Request) -> JSONResponse:
    return JSONResponse({"served_by": request.url.port})


def create_app() -> Starling:
    url = os.environ["STARLING_TEST_REDIS_URL"]
    prefix = os.environ["STARLING_TEST_PREFIX"]
    return Starling(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/limited", limited),
        ],
        middleware=[
            Middleware(SessionStoreMiddleware, store=RedisStore(url, prefix=prefix + "session:")),
            Middleware(
                RateLimitMiddleware,
                rules=[RateLimit(f"{LIMIT}/minute", path="/limited")],
                store=RateLimitRedisStore(url, prefix=prefix + "ratelimit:"),
            ),
        ],
    )
