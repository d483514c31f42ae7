"""ema_cross: trend following on a fast/slow moving-average cross of the close.

Enters long when the fast average crosses above the slow one, exits when it crosses back below
(and the mirror for shorts with allow_short). `kind = "sma"` gives the canonical SMA(10)/SMA(30)
workload of the benchmarks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bot.market.data import Candles
from bot.market.indicators import crossover, crossunder, ema, smas
from bot.market.streaming import ema_stream
from strategies.base import FloatArray, IndicatorStream, Signals, Strategy, StrategyParams


class EmaCrossParams(StrategyParams):
    fast: int = Field(default=12, ge=2, le=500)
    slow: int = Field(default=26, ge=3, le=1000)
    kind: Literal["ema", "sma"] = "ema"

    @model_validator(mode="after")
    def _fast_below_slow(self) -> EmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class EmaCross(Strategy[EmaCrossParams]):
    name = "ema_cross"
    Params = EmaCrossParams

    @property
    def warmup(self) -> int:
        return self.params.slow * (4 if self.params.kind == "ema" else 1) + 1

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        p = self.params
        if p.kind == "sma":
            fast, slow = smas(candles.close, p.fast, p.slow)
            return {"fast": fast, "slow": slow}
        return {"fast": ema(candles.close, p.fast), "slow": ema(candles.close, p.slow)}

    def stream(self) -> IndicatorStream | None:
        if self.params.kind != "ema":
            return None
        return _EmaColumns(self.params.fast, self.params.slow)

    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        up = crossover(columns["fast"], columns["slow"])
        down = crossunder(columns["fast"], columns["slow"])
        if not self.params.allow_short:
            return Signals.long_only(up, down)
        return Signals(up, down, down.copy(), up.copy())


class _EmaColumns:
    """`EmaCross.indicators` (EMA kind) one candle at a time."""

    def __init__(self, fast: int, slow: int) -> None:
        self._fast = ema_stream(fast)
        self._slow = ema_stream(slow)

    def push(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> dict[str, float]:
        return {"fast": self._fast.push(close), "slow": self._slow.push(close)}
