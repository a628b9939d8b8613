"""The rate-limit algorithm the backends share: a fixed window per key, started by its first
counted request, checked and counted in one atomic step.

``hit(keys, limits, windows)`` looks at every key; when any is at its limit the request is
refused and nothing is counted (a refused request does not use quota), else every key is
counted. A key's window starts at its first counted request and lasts ``window`` seconds, so a
limit of N per window allows exactly N requests in it, across every worker sharing the store.
"""

from __future__ import annotations

from typing import NamedTuple


class HitResult(NamedTuple):
    allowed: bool
    counts: list[int]  # requests counted in each key's current window, this one included
    resets: list[float]  # seconds until each key's window ends
