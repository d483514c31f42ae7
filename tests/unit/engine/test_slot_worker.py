"""A strategy's own thread: results and errors come back, a hung one is skipped, never queued."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from bot.engine.tick import SlotWorker, StrategyBusy


async def test_the_result_and_the_error_come_back_to_the_tick() -> None:
    worker = SlotWorker("s")
    assert await worker.run(lambda: 42, 5) == 42

    def boom() -> None:
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        await worker.run(boom, 5)
    assert not worker.busy


async def test_a_strategy_calling_exit_does_not_end_the_daemon() -> None:
    worker = SlotWorker("s")
    with pytest.raises(RuntimeError, match="SystemExit raised in the strategy"):
        await worker.run(lambda: sys.exit(3), 5)
    assert await worker.run(lambda: "still here", 5) == "still here"


async def test_a_hung_strategy_is_skipped_not_queued_until_it_returns() -> None:
    worker = SlotWorker("s")
    gate = threading.Event()
    with pytest.raises(TimeoutError, match=r"no answer within 0\.05 s"):
        await worker.run(lambda: gate.wait(30), 0.05)
    calls: list[int] = []
    with pytest.raises(StrategyBusy):
        await worker.run(lambda: calls.append(1), 5)
    gate.set()
    for _ in range(500):  # the released thread returns; bounded wait for that condition
        if not worker.busy:
            break
        await asyncio.sleep(0.01)
    assert await worker.run(lambda: "next tick", 5) == "next tick"
    assert calls == []  # the skipped call never ran later behind the hung one


def test_a_strategy_that_returns_after_its_loop_closed_leaves_no_traceback() -> None:
    worker = SlotWorker("s")
    gate = threading.Event()
    crashed: list[object] = []
    previous = threading.excepthook
    threading.excepthook = crashed.append
    try:

        async def tick() -> None:
            with pytest.raises(TimeoutError):
                await worker.run(lambda: gate.wait(30), 0.05)

        asyncio.run(tick())  # the loop is closed when this returns
        gate.set()
        for _ in range(500):
            if not worker.busy:
                break
            threading.Event().wait(0.01)
        assert not worker.busy and crashed == []
        assert worker._thread is not None and worker._thread.is_alive()
    finally:
        threading.excepthook = previous
