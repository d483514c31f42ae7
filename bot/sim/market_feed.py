"""The market as the simulated venue serves it at the clock's time: closed candles, signals, price.

Every interval is aggregated once from the base series at start-up, and signals are computed once
over each whole aggregated series; a request then only looks up the last candle closed at the
clock's time. That is sound because indicators at row t read rows <= t only (tested in
tests/unit/market), so nothing served can depend on a candle that has not closed yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.domain import DEFAULT_ASSETS, INTERVAL_SECONDS
from bot.market.data import Candles, load_dir, resample, synthetic_market
from bot.market.signals import SignalSeries, compute_signal_series
from bot.sim.clock import ms_to_iso

SIGNAL_CODES = {1: "BUY", -1: "SELL", 0: "NEUTRAL"}
INDICATORS = ("ema_fast", "ema_slow", "rsi", "macd", "macd_signal", "macd_hist", "atr", "close")


@dataclass(frozen=True)
class _Interval:
    candles: Candles
    signals: SignalSeries


class MarketFeed:
    """Candles of several symbols at every supported interval, served as of a given time."""

    def __init__(self, base: dict[str, Candles], *, direction_interval: str = "1h") -> None:
        if not base:
            raise ValueError("a market needs at least one symbol")
        intervals = {c.interval for c in base.values()}
        if len(intervals) != 1:
            raise ValueError(f"all base series must share one interval, got {sorted(intervals)}")
        self.base = base
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
        self._series: dict[tuple[str, str], _Interval] = {}
        for symbol, candles in base.items():
            for name in self.intervals:
                agg = candles if name == base_name else resample(candles, name)
                self._series[symbol, name] = _Interval(agg, compute_signal_series(agg))

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
        step = INTERVAL_SECONDS[interval] * 1000
        first = start_ms - history_days * 86_400_000
        first -= first % 86_400_000
        n = (start_ms + horizon_days * 86_400_000 - first) // step
        return cls(synthetic_market(seed, start_ms=first, n=int(n), interval=interval))

    @classmethod
    def from_csv_dir(
        cls, directory: Path, interval: str, symbols: list[str] | None = None
    ) -> MarketFeed:
        return cls(load_dir(directory, interval=interval, symbols=symbols))

    @property
    def first_ms(self) -> int:
        return max(int(c.ts[0]) for c in self.base.values())

    @property
    def last_ms(self) -> int:
        return min(int(c.ts[-1]) + self.base_interval_ms for c in self.base.values())

    def _closed_count(self, symbol: str, interval: str, now_ms: int) -> int:
        candles = self._series[symbol, interval].candles
        return int(np.searchsorted(candles.ts, now_ms - candles.interval_ms, side="right"))

    # -- MarketView, for the trading venue ----------------------------------------------------

    def bars(
        self, symbol: str, after_ms: int, upto_ms: int
    ) -> list[tuple[int, float, float, float, float]]:
        c = self.base[symbol]
        lo = int(np.searchsorted(c.ts, after_ms, side="left"))
        hi = int(np.searchsorted(c.ts, upto_ms - self.base_interval_ms, side="right"))
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
        c = self.base[symbol]
        n = int(np.searchsorted(c.ts, now_ms - self.base_interval_ms, side="right"))
        return float(c.close[n - 1]) if n else float(c.open[0])

    def direction(self, symbol: str, ts_ms: int) -> int:
        """+1/-1/0 from the venue's signal on the candles closed at `ts_ms`."""
        n = self._closed_count(symbol, self.direction_interval, ts_ms)
        if n == 0:
            return 0
        return int(self._series[symbol, self.direction_interval].signals.signal[n - 1])

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
        candles = self._series[symbol, interval].candles
        hi = self._closed_count(symbol, interval, now_ms)
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
        entry = self._series[symbol, interval]
        n = self._closed_count(symbol, interval, now_ms)
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
