"""A FastAPI app, never edited for starling, that reports who serves it."""

from __future__ import annotations

import os

import starlette
from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/probe")
async def probe(request: Request) -> dict[str, object]:
    return {
        "starlette_file": starlette.__file__,
        "starlette_version": starlette.__version__,
        "request_class": f"{type(request).__module__}.{type(request).__qualname__}",
        "pid": os.getpid(),
    }
