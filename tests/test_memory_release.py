"""After a burst of connections the reference server hands freed heap back (issue 7: the
server's memory returns to its baseline; bench/load.py measures it on 500 connections)."""

from __future__ import annotations

import asyncio
import platform
import sys

import pytest

from capif8sec.integrations import _memory
from capif8sec.integrations._memory import IdleTrimmer, malloc_trim


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)
def test_malloc_trim_is_there_on_glibc() -> None:
    assert malloc_trim() is True


def test_the_trimmer_waits_for_the_last_connection_and_spaces_its_trims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def fake_trim(pad: int) -> int:
            calls.append(loop.time())
            return 1

        monkeypatch.setattr(_memory, "_TRIM", fake_trim)
        trimmer = IdleTrimmer(delay=0.05, interval=0.3)
        trimmer.enter()
        trimmer.enter()
        trimmer.leave()
        await asyncio.sleep(0.1)
        assert calls == []  # one connection still in progress
        trimmer.leave()
        await asyncio.sleep(0.1)
        assert len(calls) == 1  # idle for the delay: trimmed once
        trimmer.enter()
        trimmer.leave()
        await asyncio.sleep(0.1)
        assert len(calls) == 1  # too soon after the last trim
        await asyncio.sleep(0.3)
        assert len(calls) == 2  # once the interval is over
        assert calls[1] - calls[0] >= 0.3
        trimmer.enter()
        await asyncio.sleep(0.5)
        assert len(calls) == 2  # busy: never while a connection is in progress
        trimmer.leave()

    asyncio.run(main())
