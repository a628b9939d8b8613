"""The content codings CompressionMiddleware produces: zstd, br and gzip.

Each coding compresses a whole body in one call (the common case, and the cheapest: zstd then
records the size in its frame header) or a stream chunk by chunk, flushing after every chunk so
that the client can decode everything sent so far. zstd and brotli are imported only when a
middleware is configured with them; a missing one is an ImportError naming the extra.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from typing import Any, Protocol

# The order ties are broken in: the best compression for the time first.
PREFERENCE = ("zstd", "br", "gzip")
# Default levels: fast enough for dynamic responses, well ahead of gzip -9 in size for zstd and br.
DEFAULT_LEVELS = {"zstd": 4, "br": 4, "gzip": 4}

_EXTRA_HINT = "install it with `pip install 'starling[compress]'`"


class Stream(Protocol):
    def chunk(self, data: bytes) -> bytes:
        """``data`` compressed and flushed: the client can decode all of it."""

    def finish(self, data: bytes) -> bytes:
        """``data`` compressed, and the end of the stream."""


class Coding:
    """One content coding at one level."""

    def __init__(
        self, name: str, whole: Callable[[bytes], bytes], stream: Callable[[], Stream]
    ) -> None:
        self.name = name
        self.header = name.encode("latin-1")
        self.whole = whole
        self.stream = stream


class _GzipStream:
    def __init__(self, level: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def chunk(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_FINISH)


class _BrotliStream:
    def __init__(self, brotli: Any, quality: int) -> None:
        self._compressor = brotli.Compressor(quality=quality)

    def chunk(self, data: bytes) -> bytes:
        compressor = self._compressor
        return compressor.process(data) + compressor.flush()  # type: ignore[no-any-return]

    def finish(self, data: bytes) -> bytes:
        compressor = self._compressor
        return compressor.process(data) + compressor.finish()  # type: ignore[no-any-return]


class _ZstdStream:
    def __init__(self, zstd: Any, level: int) -> None:
        self._compressor = zstd.ZstdCompressor(level=level)

    def chunk(self, data: bytes) -> bytes:
        compressor = self._compressor
        return compressor.compress(data, compressor.FLUSH_BLOCK)  # type: ignore[no-any-return]

    def finish(self, data: bytes) -> bytes:
        compressor = self._compressor
        return compressor.compress(data, compressor.FLUSH_FRAME)  # type: ignore[no-any-return]


def _check_level(name: str, level: object, low: int, high: int) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not low <= level <= high:
        raise ValueError(
            f"The {name} level must be a whole number from {low} to {high}: {level!r}."
        )
    return level


def _gzip(level: int) -> Coding:
    level = _check_level("gzip", level, 0, 9)

    def whole(body: bytes) -> bytes:
        return zlib.compress(body, level, wbits=31)

    return Coding("gzip", whole, lambda: _GzipStream(level))


def _brotli(quality: int) -> Coding:
    try:
        import brotli  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ImportError(f"The br coding needs the brotli package: {_EXTRA_HINT}.") from exc
    quality = _check_level("br", quality, 0, 11)

    def whole(body: bytes) -> bytes:
        return brotli.compress(body, quality=quality)  # type: ignore[no-any-return]

    return Coding("br", whole, lambda: _BrotliStream(brotli, quality))


def _import_zstd() -> Any:
    # The standard library's from Python 3.14, the backport (same API) before.
    for module in ("compression.zstd", "backports.zstd"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise ImportError(
        f"The zstd coding needs Python 3.14 or the backports.zstd package: {_EXTRA_HINT}."
    )


def _zstd(level: int) -> Coding:
    zstd = _import_zstd()
    low, high = zstd.CompressionParameter.compression_level.bounds()
    level = _check_level("zstd", level, low, high)

    def whole(body: bytes) -> bytes:
        return zstd.compress(body, level=level)  # type: ignore[no-any-return]

    return Coding("zstd", whole, lambda: _ZstdStream(zstd, level))


_FACTORIES: dict[str, Callable[[int], Coding]] = {"zstd": _zstd, "br": _brotli, "gzip": _gzip}


def load(name: str, level: int) -> Coding:
    """The coding ``name`` (one of ``PREFERENCE``) at ``level``; ValueError for a bad level."""
    return _FACTORIES[name](level)
