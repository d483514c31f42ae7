"""The simulator's market clock.

Every time-dependent part of the simulator reads one `SimClock`, so tests can step time exactly
and the demo can run a day of markets in minutes; nothing here ever sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["SimClock", "ms_to_iso"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_iso(ms: int) -> str:
    """Format epoch milliseconds as UTC ISO 8601 with a `Z` suffix, always with milliseconds.

    Integer arithmetic (no float seconds) keeps the text exact for any millisecond value.
    """
    dt = _EPOCH + timedelta(milliseconds=ms)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


class SimClock:
    """Simulated wall clock in epoch milliseconds: stepped (tests) or accelerated (demo).

    Accelerated: ``now = base + (monotonic() - t0) * speed * 1000``. `advance` and `set` work on
    both kinds (an accelerated clock is re-based and keeps running from the new time).
    """

    __slots__ = ("_base_ms", "_lock", "_monotonic", "_paused", "_speed", "_t0")

    def __init__(
        self,
        start_ms: int,
        *,
        speed: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self._lock = threading.Lock()
        self._base_ms = int(start_ms)
        self._speed = speed
        self._monotonic = monotonic
        self._t0 = monotonic() if speed is not None else 0.0
        self._paused = False

    @classmethod
    def stepped(cls, start_ms: int) -> SimClock:
        """A clock that moves only when told to (`advance`/`set`): deterministic tests."""
        return cls(start_ms)

    @classmethod
    def accelerated(
        cls,
        start_ms: int,
        speed: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> SimClock:
        """A clock running `speed` times faster than `monotonic` (injectable for tests)."""
        return cls(start_ms, speed=speed, monotonic=monotonic)

    @property
    def speed(self) -> float | None:
        """Acceleration factor, or None for a stepped clock."""
        return self._speed

    @property
    def is_stepped(self) -> bool:
        return self._speed is None

    def now_ms(self) -> int:
        """Current simulated time in epoch milliseconds."""
        with self._lock:
            return self._now_locked()

    def now_iso(self) -> str:
        return ms_to_iso(self.now_ms())

    def advance(self, ms: int) -> int:
        """Move forward by `ms` (>= 0: the market clock never runs backwards by accident)."""
        if ms < 0:
            raise ValueError(f"cannot advance by a negative amount ({ms} ms); use set()")
        with self._lock:
            self._rebase(self._now_locked() + int(ms))
            return self._base_ms

    def set(self, ms: int) -> None:
        """Jump to an absolute time, backwards included (an explicit, deliberate act)."""
        with self._lock:
            self._rebase(int(ms))

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Freeze an accelerated clock where it is (a harness checks invariants at rest)."""
        with self._lock:
            self._rebase(self._now_locked())
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._rebase(self._base_ms)

    def _now_locked(self) -> int:
        if self._speed is None or self._paused:
            return self._base_ms
        elapsed = self._monotonic() - self._t0
        return self._base_ms + int(elapsed * self._speed * 1000)

    def _rebase(self, ms: int) -> None:
        self._base_ms = ms
        if self._speed is not None:
            self._t0 = self._monotonic()

    def __repr__(self) -> str:
        kind = "stepped" if self._speed is None else f"accelerated x{self._speed:g}"
        return f"SimClock({kind}, now={ms_to_iso(self.now_ms())})"
