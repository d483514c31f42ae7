"""rsi_reversion: mean reversion on RSI extremes, optionally only with the longer trend.

Enters long when RSI crosses back up through `oversold` (and, with `trend_filter`, the close is
above its SMA(trend_period)); exits when RSI reaches `exit_level`. Shorts mirror it with
allow_short. Suits ranging markets; loses in strong trends, which the trend filter limits.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from bot.market.data import Candles
from bot.market.indicators import crossover, crossunder, rsi, sma
from strategies.base import FloatArray, Signals, Strategy, StrategyParams


class RsiReversionParams(StrategyParams):
    period: int = Field(default=14, ge=2, le=200)
    oversold: float = Field(default=30, gt=0, lt=50)
    overbought: float = Field(default=70, gt=50, lt=100)
    exit_level: float = Field(default=55, gt=0, lt=100)
    trend_filter: bool = True
    trend_period: int = Field(default=200, ge=10, le=2000)

    @model_validator(mode="after")
    def _levels(self) -> RsiReversionParams:
        if not self.oversold < self.exit_level < self.overbought:
            raise ValueError("need oversold < exit_level < overbought")
        return self


class RsiReversion(Strategy[RsiReversionParams]):
    name = "rsi_reversion"
    Params = RsiReversionParams

    @property
    def warmup(self) -> int:
        return (
            max(self.params.period * 5, self.params.trend_period if self.params.trend_filter else 0)
            + 1
        )

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        cols = {"rsi": rsi(candles.close, self.params.period)}
        if self.params.trend_filter:
            cols["trend"] = sma(candles.close, self.params.trend_period)
        return cols

    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        p = self.params
        r = columns["rsi"]
        close = candles.close
        up_ok = close > columns["trend"] if p.trend_filter else np.ones(len(r), dtype=np.bool_)
        enter_long = crossover(r, p.oversold) & up_ok
        exit_long = r >= p.exit_level
        if not p.allow_short:
            return Signals.long_only(enter_long, exit_long)
        down_ok = close < columns["trend"] if p.trend_filter else np.ones(len(r), dtype=np.bool_)
        enter_short = crossunder(r, p.overbought) & down_ok
        exit_short = r <= 100 - p.exit_level
        return Signals(enter_long, exit_long, enter_short, exit_short)
