"""The error a store raises when its backend cannot answer."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """A store's backend did not answer: the message says which operation failed and where
    the backend was expected (never with its password). The store is used again, without a
    restart, as soon as the backend answers."""
