"""starling: a fast, hardened ASGI toolkit with Starlette's API."""

__version__ = "0.1.0"
