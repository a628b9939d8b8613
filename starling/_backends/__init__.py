"""Storage backends shared by the session stores and the rate-limit stores.

Each backend has one small interface: ``get``, ``set`` with a time to live, ``delete``, and
``hit`` (the rate-limit check: a fixed window per key, checked and counted atomically). The
in-memory one (``memory.py``) serves one process and needs nothing installed; the Redis one
(``redis.py``) serves every worker and machine pointed at one server. A new backend is one
module with the same methods.

Public names live in ``starling.sessions`` and ``starling.middleware.ratelimit``; this package
is private machinery.
"""
