"""The indicator signal the simulator serves (our stand-in for the backend's own signals).

Rule, per closed candle t (defaults in `SignalParams`):

- trend: EMA(12) above EMA(26) is up, below is down;
- momentum: MACD(12, 26, 9) histogram above 0 is up, below is down;
- over-extension: RSI(14).

BUY when trend and momentum are both up and RSI < 70; SELL when both are down and RSI > 30;
otherwise NEUTRAL (including during warm-up, when any of them is still NaN). EMA gaps and
histograms smaller than 1e-9 of the price count as zero, so floating-point dust in a flat market
never makes a signal.

Strength, in [0, 1), is 0 for NEUTRAL, else momentum * (0.5 + 0.5 * room):
momentum = tanh(4 * |MACD hist| / ATR(14)) (median |hist|/ATR on Hyperliquid candles is ~0.16,
giving ~0.6), and room = how far RSI still is from the over-extension level, as a fraction of half
the 30..70 band (1 at RSI 50 or beyond on the right side, 0 at 70 for a BUY / 30 for a SELL).

`compute_signal_series` computes every row at once for the backtester and the look-ahead
checker; since every indicator is prefix-invariant, `compute_signal(candles[: t + 1])` equals row
t of the series exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bot.domain import SignalKind
from bot.market.data import Candles
from bot.market.indicators import atr, ema, rsi
from bot.market.streaming import AtrStream, RsiStream, ema_stream, tanh

__all__ = [
    "INDICATOR_KEYS",
    "SignalParams",
    "SignalResult",
    "SignalSeries",
    "SignalStream",
    "compute_signal",
    "compute_signal_series",
]

FloatArray = NDArray[np.float64]

INDICATOR_KEYS: tuple[str, ...] = (
    "ema_fast",
    "ema_slow",
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "atr",
    "close",
)
_KIND_BY_CODE = {1: SignalKind.BUY, -1: SignalKind.SELL, 0: SignalKind.NEUTRAL}
_MOMENTUM_GAIN = 4.0
_FLAT = 1e-9


@dataclass(frozen=True)
class SignalParams:
    fast: int = 12
    slow: int = 26
    signal: int = 9
    rsi_period: int = 14
    atr_period: int = 14
    overbought: float = 70.0
    oversold: float = 30.0

    def __post_init__(self) -> None:
        for name in ("fast", "slow", "signal", "rsi_period", "atr_period"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        if not 0.0 <= self.oversold < self.overbought <= 100.0:
            raise ValueError(
                f"need 0 <= oversold < overbought <= 100, got {self.oversold}, {self.overbought}"
            )

    @property
    def warmup(self) -> int:
        """Candles needed before the first non-NEUTRAL signal is possible."""
        return max(self.slow + self.signal - 1, self.rsi_period + 1, self.atr_period + 1)


DEFAULT_PARAMS = SignalParams()


@dataclass(frozen=True)
class SignalResult:
    """The signal at one closed candle; `indicators` holds only values past their warm-up."""

    symbol: str
    interval: str
    signal: SignalKind
    strength: float
    indicators: dict[str, float]
    candle_time: int | None
    """Open time (ms, UTC) of the last closed candle used; None when there was none."""


@dataclass(frozen=True, eq=False)
class SignalSeries:
    """Indicators and signals for every row; `signal` is +1 BUY, -1 SELL, 0 NEUTRAL."""

    symbol: str
    interval: str
    ts: NDArray[np.int64]
    close: FloatArray
    ema_fast: FloatArray
    ema_slow: FloatArray
    rsi: FloatArray
    macd: FloatArray
    macd_signal: FloatArray
    macd_hist: FloatArray
    atr: FloatArray
    signal: NDArray[np.int8]
    strength: FloatArray

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def indicators(self) -> dict[str, FloatArray]:
        """The indicator columns by the names `SignalResult.indicators` uses."""
        return {key: getattr(self, key) for key in INDICATOR_KEYS}

    def kind(self, i: int) -> SignalKind:
        return _KIND_BY_CODE[int(self.signal[i])]

    def at(self, i: int) -> SignalResult:
        """Row i (negative counts from the end) as a SignalResult."""
        values = {key: float(getattr(self, key)[i]) for key in INDICATOR_KEYS}
        return SignalResult(
            symbol=self.symbol,
            interval=self.interval,
            signal=self.kind(i),
            strength=float(self.strength[i]),
            indicators={k: v for k, v in values.items() if math.isfinite(v)},
            candle_time=int(self.ts[i]),
        )


def compute_signal_series(candles: Candles, params: SignalParams = DEFAULT_PARAMS) -> SignalSeries:
    """Signal and indicators for every candle, each row using only candles up to it."""
    close = candles.close
    ema_fast = ema(close, params.fast)
    ema_slow = ema(close, params.slow)
    line = ema_fast - ema_slow
    sig = ema(line, params.signal)
    hist = line - sig
    rsi_v = rsi(close, params.rsi_period)
    atr_v = atr(candles.high, candles.low, close, params.atr_period)

    flat = _FLAT * np.abs(close)
    buy = (line > flat) & (hist > flat) & (rsi_v < params.overbought)
    sell = (line < -flat) & (hist < -flat) & (rsi_v > params.oversold)
    code = buy.astype(np.int8) - sell.astype(np.int8)

    ratio = np.zeros(len(close))
    np.divide(np.abs(hist), atr_v, out=ratio, where=atr_v > 0)
    momentum = np.tanh(_MOMENTUM_GAIN * ratio)
    half_band = (params.overbought - params.oversold) / 2.0
    room = np.zeros(len(close))
    room[buy] = (params.overbought - rsi_v[buy]) / half_band
    room[sell] = (rsi_v[sell] - params.oversold) / half_band
    np.clip(room, 0.0, 1.0, out=room)
    strength = np.where(code != 0, momentum * (0.5 + 0.5 * room), 0.0)

    return SignalSeries(
        symbol=candles.symbol,
        interval=candles.interval,
        ts=np.asarray(candles.ts),
        close=np.asarray(close),
        ema_fast=ema_fast,
        ema_slow=ema_slow,
        rsi=rsi_v,
        macd=line,
        macd_signal=sig,
        macd_hist=hist,
        atr=atr_v,
        signal=code,
        strength=strength,
    )


def compute_signal(
    candles: Candles, *, now_ms: int | None = None, params: SignalParams = DEFAULT_PARAMS
) -> SignalResult:
    """The signal at the last closed candle.

    All given candles are taken as closed unless `now_ms` is given, in which case candles still
    forming at that time are dropped first. Too few candles give NEUTRAL with strength 0 and
    only the indicators already past their warm-up.
    """
    if now_ms is not None:
        candles = candles.upto(now_ms)
    if len(candles) == 0:
        return SignalResult(candles.symbol, candles.interval, SignalKind.NEUTRAL, 0.0, {}, None)
    return compute_signal_series(candles, params).at(-1)


class SignalStream:
    """`compute_signal_series` one candle at a time (the daemon's newest row): the same rule,
    bit-identical values, no recomputation of the history."""

    def __init__(self, params: SignalParams = DEFAULT_PARAMS) -> None:
        self.params = params
        self._fast = ema_stream(params.fast)
        self._slow = ema_stream(params.slow)
        self._signal = ema_stream(params.signal)
        self._rsi = RsiStream(params.rsi_period)
        self._atr = AtrStream(params.atr_period)

    def push(self, high: float, low: float, close: float) -> tuple[int, float]:
        """(signal code +1/-1/0, strength) for the candle just closed."""
        p = self.params
        line = self._fast.push(close) - self._slow.push(close)
        hist = line - self._signal.push(line)
        rsi_v = self._rsi.push(close)
        atr_v = self._atr.push(high, low, close)
        flat = _FLAT * abs(close)
        if line > flat and hist > flat and rsi_v < p.overbought:
            code, room = 1, (p.overbought - rsi_v) / ((p.overbought - p.oversold) / 2.0)
        elif line < -flat and hist < -flat and rsi_v > p.oversold:
            code, room = -1, (rsi_v - p.oversold) / ((p.overbought - p.oversold) / 2.0)
        else:
            return 0, 0.0
        ratio = abs(hist) / atr_v if atr_v > 0 else 0.0
        room = min(max(room, 0.0), 1.0)
        return code, tanh(_MOMENTUM_GAIN * ratio) * (0.5 + 0.5 * room)
