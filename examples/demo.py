"""A small starling app; ``make demo`` serves it at http://127.0.0.1:8000."""

from __future__ import annotations

from starling import __version__
from starling.applications import Starling
from starling.requests import Request
from starling.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starling.routing import Route


async def homepage(request: Request) -> Response:
    return PlainTextResponse("Hello from starling!")


async def info(request: Request) -> Response:
    return JSONResponse({"framework": "starling", "version": __version__})


async def greet(request: Request) -> Response:
    name = request.path_params["name"]
    return PlainTextResponse(f"Hello, {name}!")


async def item(request: Request) -> Response:
    # The ``int`` convertor has already turned the segment into an int (or answered 404).
    item_id: int = request.path_params["item_id"]
    return JSONResponse({"item_id": item_id, "q": request.query_params.get("q")})


def old_home(request: Request) -> Response:
    # A plain function works too: starling runs it in a worker thread.
    return RedirectResponse(request.url_for("homepage"), status_code=301)


routes = [
    Route("/", homepage),
    Route("/api/info", info),
    Route("/hello/{name}", greet),
    Route("/items/{item_id:int}", item),
    Route("/old-home", old_home),
]

app = Starling(routes=routes)
