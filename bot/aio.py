"""The event loop the long-running commands (`run`, `demo`) use: uvloop when it is installed.

A daemon ticking every second spends most of its CPU in the event loop's machinery and its
sockets; uvloop (libuv, in C) does the same work for about a tenth less of the whole daemon's
CPU (bench/RESULTS.md, "Daemon"). ``ALURA_BOT_LOOP=asyncio`` picks the standard loop instead,
for debugging or when a platform's uvloop misbehaves.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str | None = None) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """(name, factory) of the loop to run: ``auto`` is uvloop when importable, else asyncio."""
    choice = (choice or os.environ.get("ALURA_BOT_LOOP") or "auto").strip().lower()
    if choice not in LOOPS:
        raise ValueError(f"ALURA_BOT_LOOP must be one of {', '.join(LOOPS)}, got {choice!r}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError("ALURA_BOT_LOOP=uvloop but uvloop is not installed") from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], *, choice: str | None = None) -> T:
    """`asyncio.run` on the chosen loop."""
    _, factory = loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
