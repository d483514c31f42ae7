"""The market as the engine sees it each tick: validated closed candles and backend signals.

Candles are cached per (asset, interval): the first fetch brings `lookback` closed candles, later
ticks append the newly closed ones. Strategies therefore see one continuous history from a fixed
first candle, exactly what a backtest over the same candles sees (recursive indicators such as
EMAs give identical values), until the series reaches `history` candles; it is then cut back to
the last `lookback`, so a daemon left running for months holds bounded memory and spends bounded
time per tick (a recursive indicator re-seeded `lookback` candles back differs negligibly).
Anything malformed is dropped with a reason, so a strategy only ever sees validated data (the
asset simply holds for that tick).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from bot.api.alura import AluraClient
from bot.api.errors import ApiError
from bot.api.models import Candle, Signal
from bot.domain import INTERVAL_SECONDS
from bot.market.data import CandleDataError, Candles, check_candles

log = logging.getLogger(__name__)
REFRESH_CANDLES = 10


@dataclass(frozen=True)
class MarketSnapshot:
    """What one tick decides on; `problems` says why an asset has no data this tick."""

    now_ms: int
    interval: str
    candles: dict[str, Candles]
    signals: dict[str, Signal]
    problems: dict[str, str] = field(default_factory=dict)

    def signal_time_ms(self, asset: str) -> int | None:
        sig = self.signals.get(asset)
        return None if sig is None else sig.candle_time


def candles_from_api(symbol: str, interval: str, rows: list[Candle]) -> Candles:
    """Build and validate; raises CandleDataError naming the row when the venue sent garbage."""
    source = f"venue {symbol} {interval}"
    try:
        ts = np.array([r.time for r in rows], dtype=np.int64)
    except OverflowError:
        bad = next(i for i, r in enumerate(rows) if not -(2**63) <= r.time < 2**63)
        raise CandleDataError(
            source, f"timestamp {rows[bad].time} is not milliseconds", line=bad, unit="index"
        ) from None
    cols = [
        np.array([getattr(r, k) for r in rows], dtype=np.float64)
        for k in ("open", "high", "low", "close", "volume")
    ]
    candles = Candles(symbol, interval, ts, *cols)
    check_candles(candles, allow_gaps=True, source=source)
    return candles


def _append(old: Candles, new: Candles) -> Candles:
    if not len(old):
        return new
    fresh = new.ts > old.ts[-1]
    if not fresh.any():
        return old
    return Candles(
        old.symbol,
        old.interval,
        np.concatenate([old.ts, new.ts[fresh]]),
        *(
            np.concatenate([getattr(old, k), getattr(new, k)[fresh]])
            for k in ("open", "high", "low", "close", "volume")
        ),
    )


class LiveMarket:
    """Fetches candles and signals through the AluraClient, keeping a growing candle cache."""

    def __init__(self, client: AluraClient, *, lookback: int = 1000, history: int = 5000) -> None:
        self.client = client
        self.lookback = lookback
        self.history = max(history, lookback)
        self.cache: dict[tuple[str, str], Candles] = {}

    def _keep(self, key: tuple[str, str], series: Candles) -> Candles:
        """Cache a series, cut back to `lookback` once it holds more than `history` candles."""
        if len(series) > self.history:
            series = series.tail(self.lookback)
        self.cache[key] = series
        return series

    async def _candles(self, asset: str, interval: str, now_ms: int) -> Candles:
        key = (asset, interval)
        have = self.cache.get(key)
        step = INTERVAL_SECONDS[interval] * 1000
        if have is not None and len(have):
            missing = (now_ms - int(have.ts[-1])) // step
            limit = min(self.lookback, int(missing) + REFRESH_CANDLES)
        else:
            limit = self.lookback
        series = await self.client.candles(asset, interval, limit=limit)
        fetched = candles_from_api(asset, interval, series.candles)
        closed = fetched.upto(now_ms)
        if have is not None and len(have) and len(closed) and closed.ts[0] > have.ts[-1] + step:
            log.warning("candle gap for %s %s: refetching history", asset, interval)
            have = None
        return self._keep(key, closed if have is None else _append(have, closed))

    async def _append_latest(
        self, interval: str, assets: list[str], now_ms: int
    ) -> dict[str, Candles]:
        """Steady state: one `candles/latest` request extends every cached series by the candle
        that just closed. Any asset where that is not exactly the case (first tick, a gap, a shape
        we do not expect) is left out and fetched on its own."""
        step = INTERVAL_SECONDS[interval] * 1000
        due = {
            a: c
            for a in assets
            if (c := self.cache.get((a, interval))) is not None
            and len(c)
            and (now_ms - int(c.ts[-1])) // step <= 2
        }
        if not due:
            return {}
        try:
            payload = (await self.client.candles_latest(interval=interval)).model_extra or {}
        except ApiError:
            return {}
        out: dict[str, Candles] = {}
        for asset, have in due.items():
            try:
                row = Candle.model_validate(payload.get(asset))
                new = candles_from_api(asset, interval, [row]).upto(now_ms)
            except (ValidationError, CandleDataError, ValueError):
                continue
            last = int(have.ts[-1])
            if len(new) and int(new.ts[0]) == last + step:
                out[asset] = self._keep((asset, interval), _append(have, new))
            elif len(new) and int(new.ts[0]) == last and last + 2 * step > now_ms:
                out[asset] = have
        return out

    async def snapshot(self, interval: str, assets: list[str], now_ms: int) -> MarketSnapshot:
        candles: dict[str, Candles] = {}
        problems: dict[str, str] = {}
        signals: dict[str, Signal] = {}
        listing, latest = await asyncio.gather(
            self.client.signals_all(interval),
            self._append_latest(interval, assets, now_ms),
            return_exceptions=True,
        )
        if isinstance(listing, ApiError):
            problems["*signals"] = f"signals unavailable: {listing.kind}"
        elif isinstance(listing, BaseException):
            raise listing
        else:
            signals = {s.symbol.upper(): s for s in listing.signals}
            for asset, sig in list(signals.items()):
                if sig.candle_time > now_ms:  # about a candle that has not even opened: garbage
                    del signals[asset]
                    problems[f"*signal {asset}"] = f"signal candle time {sig.candle_time} > now"
        if isinstance(latest, BaseException):
            raise latest
        pending = [a for a in assets if a not in latest]
        fetched = await asyncio.gather(
            *(self._candles(a, interval, now_ms) for a in pending), return_exceptions=True
        )
        by_asset: dict[str, Any] = {**latest, **dict(zip(pending, fetched, strict=True))}
        results = [by_asset[a] for a in assets]
        for asset, result in zip(assets, results, strict=True):
            if isinstance(result, Candles):
                candles[asset] = result
            elif isinstance(result, ApiError | CandleDataError):
                problems[asset] = f"{type(result).__name__}: {result}"[:300]
            elif isinstance(result, BaseException):
                raise result
        return MarketSnapshot(now_ms, interval, candles, signals, problems)
