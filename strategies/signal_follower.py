"""signal_follower: trade in the direction of the indicator signal (EMA, RSI, MACD combined).

Trades when the signal for the last closed candle is BUY (or SELL, with allow_short) with at
least `min_strength`; exits when the signal turns against the position (or to NEUTRAL with
`exit_on_neutral`). The signal is recomputed from the candles by `bot.market.signals`, the code
the simulator serves its signals from, so a backtest and the daemon decide alike; the backend's
own signal only feeds the stale-data guard and the tick record.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from bot.market.data import Candles
from bot.market.signals import SignalStream, compute_signal_series
from strategies.base import FloatArray, IndicatorStream, Signals, Strategy, StrategyParams


class SignalFollowerParams(StrategyParams):
    min_strength: float = Field(default=0.3, ge=0, le=1)
    exit_on_neutral: bool = False


class SignalFollower(Strategy[SignalFollowerParams]):
    name = "signal_follower"
    Params = SignalFollowerParams

    @property
    def warmup(self) -> int:
        return 120

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        series = compute_signal_series(candles)
        return {"signal": series.signal.astype(np.float64), "strength": series.strength}

    def stream(self) -> IndicatorStream:
        return _SignalColumns()

    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        sig, strength = columns["signal"], columns["strength"]
        strong = strength >= self.params.min_strength
        buy, sell = sig > 0, sig < 0
        enter_long = buy & strong
        exit_long = sell | ((sig == 0) if self.params.exit_on_neutral else np.zeros_like(buy))
        if not self.params.allow_short:
            return Signals.long_only(enter_long, exit_long)
        exit_short = buy | ((sig == 0) if self.params.exit_on_neutral else np.zeros_like(buy))
        return Signals(enter_long, exit_long, sell & strong, exit_short)


class _SignalColumns:
    """`SignalFollower.indicators` one candle at a time."""

    def __init__(self) -> None:
        self._signal = SignalStream()

    def push(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> dict[str, float]:
        code, strength = self._signal.push(high, low, close)
        return {"signal": float(code), "strength": strength}
