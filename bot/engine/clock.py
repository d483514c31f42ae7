"""The engine's notion of time, injectable so tests step it and the demo runs it accelerated."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock UTC milliseconds: what the live daemon uses."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to: tests."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms

    def set(self, ms: int) -> None:
        self._now = ms


class FollowingClock:
    """Follows another clock known by (time, speed) samples, extrapolating in between: the
    daemon's view of an accelerated simulator's market clock (`engine.clock = "venue"`)."""

    def __init__(
        self, now_ms: int, speed: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._monotonic = monotonic
        self.speed = speed
        self._base = now_ms
        self._t0 = monotonic()

    def now_ms(self) -> int:
        return self._base + int((self._monotonic() - self._t0) * self.speed * 1000)

    def resync(self, now_ms: int, speed: float) -> None:
        """Re-base on a fresh sample (the venue restarted, or drifted)."""
        self._base, self.speed, self._t0 = now_ms, speed, self._monotonic()
