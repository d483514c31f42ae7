"""The market as the simulated venue serves it at the clock's time: closed candles, signals, price.

Each interval is aggregated from the base series, and its signals computed over the whole
aggregated series, once, the first time it is asked for (so start-up does none of it); a request
then only looks up the last candle closed at the clock's time. That is sound because indicators
at row t read rows <= t only (tested in tests/unit/market), so nothing served can depend on a
candle that has not closed yet.

A synthetic feed has no fixed end, so an accelerated clock left running for months never meets a
frozen market: when a request's time nears the end of what has been generated, the feed generates
the next `horizon_days` of the same seeded market (`SyntheticMarket` continues its streams, so
this costs the same after a year as after a day) and drops base rows more than `history_days`
(+ slack) behind that time. Each interval keeps its latest `KEPT_BARS` candles from before the
retained base, so candles are byte for byte those of one long generation, and signals too until
an interval has dropped candles; after that its recursive indicators are re-seeded `KEPT_BARS`
candles back and differ from the long generation's by float rounding (~1e-12 relative). Base bars
(`bars`, `price`) for times before the retained base are gone. Readers hold one `_Snapshot` per
request and an extension publishes a new one, so no answer mixes the market before and after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.domain import DEFAULT_ASSETS, INTERVAL_SECONDS
from bot.market.data import Candles, SyntheticMarket, load_dir, resample
from bot.market.signals import SignalSeries, compute_signal_series
from bot.sim.clock import ms_to_iso

SIGNAL_CODES = {1: "BUY", -1: "SELL", 0: "NEUTRAL"}
INDICATORS = ("ema_fast", "ema_slow", "rsi", "macd", "macd_signal", "macd_hist", "atr", "close")
# The API's largest `limit`: a request for the latest candles never reaches the dropped ones, and
# indicators recomputed after a drop have this much warm-up (they converge long before).
KEPT_BARS = 5000
DAY_MS = 86_400_000
# Extend when a request's time comes this close to the generated end.
EXTEND_MARGIN_MS = DAY_MS
# Base rows kept behind the asked time beyond `history_days`.
KEEP_SLACK_MS = 7 * DAY_MS
_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
VOLUME_DECIMALS = 8
"""Aggregated volumes are rounded to this many decimals: a sum of base volumes carries float
noise (27622.324220000002) that no venue shows; base volumes have fewer decimals than this."""

Extender = Callable[[int], dict[str, Candles]]
"""Given a time, the candles of every symbol that continue the base from its end to that time."""


@dataclass(frozen=True)
class _Interval:
    candles: Candles
    signals: SignalSeries


class _Snapshot:
    """One state of the market; an extension replaces it whole, never edits it."""

    __slots__ = ("base", "end_ms", "older", "series")

    def __init__(self, base: dict[str, Candles], older: dict[tuple[str, str], Candles]) -> None:
        self.base = base
        self.older = older
        self.end_ms = min(int(c.ts[-1]) + c.interval_ms for c in base.values())
        self.series: dict[tuple[str, str], _Interval] = {}


def _join(head: Candles | None, tail: Candles) -> Candles:
    if head is None or not len(head):
        return tail
    if not len(tail):
        return head
    return Candles(
        tail.symbol,
        tail.interval,
        *(np.concatenate((getattr(head, f), getattr(tail, f))) for f in _COLUMNS),
    )


def _last(candles: Candles, n: int) -> Candles:
    """The last `n` rows, copied so they do not keep the larger arrays alive."""
    part = candles.tail(n)
    return Candles(part.symbol, part.interval, *(np.array(getattr(part, f)) for f in _COLUMNS))


def _aggregate(candles: Candles, interval: str) -> Candles:
    """`candles` at `interval` (itself when it is theirs), aggregated volumes rounded."""
    if candles.interval == interval:
        return candles
    agg = resample(candles, interval)
    return Candles(
        agg.symbol,
        agg.interval,
        agg.ts,
        agg.open,
        agg.high,
        agg.low,
        agg.close,
        np.round(agg.volume, VOLUME_DECIMALS),
    )


def _closed(candles: Candles, now_ms: int) -> int:
    return int(np.searchsorted(candles.ts, now_ms - candles.interval_ms, side="right"))


class MarketFeed:
    """Candles of several symbols at every supported interval, served as of a given time.

    With an `extend`er the base grows on demand, `chunk_ms` past its end at a time, keeping
    `keep_ms` of base rows behind the time asked; without one (CSV) the data ends where it ends.
    """

    def __init__(
        self,
        base: dict[str, Candles],
        *,
        direction_interval: str = "1h",
        extend: Extender | None = None,
        chunk_ms: int = 60 * DAY_MS,
        keep_ms: int = 30 * DAY_MS + KEEP_SLACK_MS,
    ) -> None:
        if not base:
            raise ValueError("a market needs at least one symbol")
        intervals = {c.interval for c in base.values()}
        if len(intervals) != 1:
            raise ValueError(f"all base series must share one interval, got {sorted(intervals)}")
        if extend is not None and (chunk_ms <= 0 or keep_ms <= 0):
            raise ValueError("an extendable feed needs chunk_ms > 0 and keep_ms > 0")
        base_name = intervals.pop()
        self.base_interval_ms = INTERVAL_SECONDS[base_name] * 1000
        self.symbols = [s for s in sorted(base, key=lambda s: DEFAULT_ASSETS.get(s, 99))]
        self.intervals = [
            name
            for name, secs in INTERVAL_SECONDS.items()
            if secs * 1000 >= self.base_interval_ms and (secs * 1000) % self.base_interval_ms == 0
        ]
        self.direction_interval = (
            direction_interval if direction_interval in self.intervals else self.intervals[0]
        )
        self._snap = _Snapshot(base, {})
        self._extend = extend
        self._chunk_ms = chunk_ms
        self._keep_ms = keep_ms
        self._lock = threading.Lock()

    @classmethod
    def synthetic(
        cls,
        seed: int,
        start_ms: int,
        *,
        history_days: int = 30,
        horizon_days: int = 60,
        interval: str = "1m",
    ) -> MarketFeed:
        """`history_days` before `start_ms` and `horizon_days` after, extended as time goes on."""
        step = INTERVAL_SECONDS[interval] * 1000
        first = start_ms - history_days * DAY_MS
        first -= first % DAY_MS
        market = SyntheticMarket(seed, start_ms=first, interval=interval)
        base = market.take(int((start_ms + horizon_days * DAY_MS - first) // step))

        def extend(end_ms: int) -> dict[str, Candles]:
            return market.take(max(1, -(-(end_ms - market.next_ms) // step)))

        return cls(
            base,
            extend=extend,
            chunk_ms=max(horizon_days, 1) * DAY_MS,
            keep_ms=history_days * DAY_MS + KEEP_SLACK_MS,
        )

    @classmethod
    def from_csv_dir(
        cls,
        directory: Path,
        interval: str,
        symbols: list[str] | None = None,
        exchange: str | None = None,
    ) -> MarketFeed:
        return cls(load_dir(directory, interval=interval, symbols=symbols, exchange=exchange))

    @property
    def base(self) -> dict[str, Candles]:
        """The base series as currently held (an extendable feed replaces it as it extends)."""
        return self._snap.base

    @property
    def extendable(self) -> bool:
        """Whether it generates more market as time nears its end (else `last_ms` is fixed)."""
        return self._extend is not None

    @property
    def first_ms(self) -> int:
        """Where every symbol's held base rows begin; an extendable feed moves it forward."""
        return max(int(c.ts[0]) for c in self._snap.base.values())

    @property
    def last_ms(self) -> int:
        """Where the data ends: fixed for CSV, only what is generated so far when `extendable`."""
        return self._snap.end_ms

    def series(self, symbol: str, interval: str) -> _Interval:
        """The aggregated candles and their signals, computed on first use and kept."""
        return self._entry(self._snap, symbol, interval)

    def _entry(self, snap: _Snapshot, symbol: str, interval: str) -> _Interval:
        key = (symbol, interval)
        found = snap.series.get(key)
        if found is None:
            with self._lock:
                found = snap.series.get(key)
                if found is None:
                    candles = snap.base[symbol]
                    agg = _join(snap.older.get(key), _aggregate(candles, interval))
                    found = snap.series[key] = _Interval(agg, compute_signal_series(agg))
        return found

    def _at(self, now_ms: int) -> _Snapshot:
        """A snapshot whose base reaches past `now_ms` (extending first if it does not)."""
        snap = self._snap
        if self._extend is None or now_ms + EXTEND_MARGIN_MS < snap.end_ms:
            return snap
        with self._lock:
            snap = self._snap
            while now_ms + EXTEND_MARGIN_MS >= snap.end_ms:
                snap = self._extended(snap, now_ms)
            self._snap = snap
        return snap

    def _extended(self, snap: _Snapshot, now_ms: int) -> _Snapshot:
        """`snap` with `chunk_ms` more market, and base rows `keep_ms` behind now handed over
        to each interval's kept candles (cut at a day boundary, so no bucket is split)."""
        assert self._extend is not None
        end = snap.end_ms + self._chunk_ms
        fresh = self._extend(end)
        cut = min(now_ms, end) - self._keep_ms
        cut -= cut % DAY_MS
        base: dict[str, Candles] = {}
        older = dict(snap.older)
        for symbol, candles in snap.base.items():
            more = fresh[symbol]
            if more.interval != candles.interval or int(more.ts[0]) != snap.end_ms:
                raise RuntimeError(f"{symbol}: the extension does not continue the base series")
            k = int(np.searchsorted(candles.ts, cut, side="left"))
            if k:
                dropped = candles[:k]
                for interval in self.intervals:
                    key = (symbol, interval)
                    agg = _aggregate(dropped, interval)
                    older[key] = _last(_join(older.get(key), agg), KEPT_BARS)
            base[symbol] = _join(candles[k:], more)
        return _Snapshot(base, older)

    # -- MarketView, for the trading venue ----------------------------------------------------

    def bars(
        self, symbol: str, after_ms: int, upto_ms: int
    ) -> list[tuple[int, float, float, float, float]]:
        c = self._at(upto_ms).base[symbol]
        lo = int(np.searchsorted(c.ts, after_ms, side="left"))
        hi = _closed(c, upto_ms)
        return list(
            zip(
                c.ts[lo:hi].tolist(),
                c.open[lo:hi].tolist(),
                c.high[lo:hi].tolist(),
                c.low[lo:hi].tolist(),
                c.close[lo:hi].tolist(),
                strict=True,
            )
        )

    def price(self, symbol: str, now_ms: int) -> float:
        """Close of the last closed base bar (the first open before any bar has closed)."""
        c = self._at(now_ms).base[symbol]
        n = _closed(c, now_ms)
        return float(c.close[n - 1]) if n else float(c.open[0])

    def direction(self, symbol: str, ts_ms: int) -> int:
        """+1/-1/0 from the venue's signal on the candles closed at `ts_ms`."""
        entry = self._entry(self._at(ts_ms), symbol, self.direction_interval)
        n = _closed(entry.candles, ts_ms)
        return int(entry.signals.signal[n - 1]) if n else 0

    # -- JSON views, for the HTTP API -------------------------------------------------------

    def candles_json(
        self,
        symbol: str,
        interval: str,
        now_ms: int,
        limit: int,
        start_ms: int | None,
        end_ms: int | None,
    ) -> dict[str, Any]:
        candles = self._entry(self._at(now_ms), symbol, interval).candles
        hi = _closed(candles, now_ms)
        if end_ms is not None:
            hi = min(hi, int(np.searchsorted(candles.ts, end_ms, side="right")))
        lo = 0 if start_ms is None else int(np.searchsorted(candles.ts, start_ms, side="left"))
        lo = max(lo, hi - limit)
        rows = [
            {"time": t, "open": o, "high": h, "low": low, "close": cl, "volume": v}
            for t, o, h, low, cl, v in zip(
                candles.ts[lo:hi].tolist(),
                candles.open[lo:hi].tolist(),
                candles.high[lo:hi].tolist(),
                candles.low[lo:hi].tolist(),
                candles.close[lo:hi].tolist(),
                candles.volume[lo:hi].tolist(),
                strict=True,
            )
        ]
        return {"symbol": symbol, "interval": interval, "candles": rows}

    def latest_json(self, symbol: str, interval: str, now_ms: int) -> dict[str, Any] | None:
        rows = self.candles_json(symbol, interval, now_ms, 1, None, None)["candles"]
        return rows[0] if rows else None

    def signal_json(self, symbol: str, interval: str, now_ms: int) -> dict[str, Any]:
        entry = self._entry(self._at(now_ms), symbol, interval)
        n = _closed(entry.candles, now_ms)
        if n == 0:
            return {
                "symbol": symbol,
                "interval": interval,
                "signal": "NEUTRAL",
                "strength": 0.0,
                "indicators": {},
                "candleTime": 0,
                "time": ms_to_iso(now_ms),
            }
        i = n - 1
        sig = entry.signals
        indicators = {
            name: float(values[i])
            for name, values in sig.indicators.items()
            if np.isfinite(values[i])
        }
        return {
            "symbol": symbol,
            "interval": interval,
            "signal": SIGNAL_CODES[int(sig.signal[i])],
            "strength": float(sig.strength[i]),
            "indicators": indicators,
            "candleTime": int(entry.candles.ts[i]),
            "time": ms_to_iso(now_ms),
        }
