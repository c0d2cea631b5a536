"""Hand memory freed after a burst of connections back to the operating system (glibc only).

Each TLS connection on asyncio holds about 320 KiB (most of it asyncio's 256 KiB read buffer)
until it ends.  glibc's ``malloc`` keeps what a burst freed for reuse, so a server's resident
memory stays at the high-water mark of the burst; ``malloc_trim(0)`` returns the free pages.
:class:`IdleTrimmer` calls it once the server has had no connection in its handler for a
moment, at most once per interval.  Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import time
from collections.abc import Callable

__all__ = ["IdleTrimmer", "malloc_trim"]


def _load() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load()


def malloc_trim() -> bool:
    """Return free heap pages to the OS; False where glibc's ``malloc_trim`` is not there."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class IdleTrimmer:
    """Counts a server's connections in progress; trims the heap when they drop to none.

    :param delay: seconds without any connection before trimming.
    :param interval: the least seconds between two trims.
    """

    def __init__(self, delay: float = 1.0, interval: float = 10.0) -> None:
        self._delay, self._interval = delay, interval
        self._active = 0
        self._since_trim = 0
        self._last = 0.0
        self._pending: asyncio.TimerHandle | None = None

    def enter(self) -> None:
        """A connection starts being served."""
        self._active += 1
        self._since_trim += 1

    def leave(self) -> None:
        """A connection is done; schedule a trim when it was the last one."""
        self._active -= 1
        if self._active == 0 and self._pending is None and _TRIM is not None:
            self._pending = asyncio.get_running_loop().call_later(self._delay, self._run)

    def _run(self) -> None:
        self._pending = None
        now = time.monotonic()
        if self._active or not self._since_trim:
            return
        if now - self._last < self._interval:  # too soon: try again when the interval is over
            wait = self._interval - (now - self._last)
            self._pending = asyncio.get_running_loop().call_later(wait, self._run)
            return
        self._last, self._since_trim = now, 0
        malloc_trim()
