"""Fixtures for the backtest tests: hand-made candles and a strategy that fires where told."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from pydantic import Field

from bot.backtest.engine import BacktestConfig
from bot.engine.risk import RiskLimits
from bot.market.data import Candles
from strategies.base import FloatArray, Signals, Strategy, StrategyParams

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


class FlagParams(StrategyParams):
    """Row indices where each flag is set; `warmup_rows` stands in for a real warm-up."""

    enter_long: list[int] = Field(default_factory=list)
    exit_long: list[int] = Field(default_factory=list)
    enter_short: list[int] = Field(default_factory=list)
    exit_short: list[int] = Field(default_factory=list)
    warmup_rows: int = 1


class FlagStrategy(Strategy[FlagParams]):
    """Fires exactly on the given rows (per asset when `rows_by_asset` is set on the instance)."""

    name = "flags"
    Params = FlagParams

    @property
    def warmup(self) -> int:
        return self.params.warmup_rows

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        n = len(candles)
        p = self.params
        by_asset: dict[str, dict[str, list[int]]] = getattr(self, "rows_by_asset", {})
        rows = by_asset.get(candles.symbol, {})

        def mask(key: str, default: list[int]) -> Any:
            out = np.zeros(n, dtype=np.bool_)
            for i in rows.get(key, default):
                if 0 <= i < n:
                    out[i] = True
            return out

        return Signals(
            mask("enter_long", p.enter_long),
            mask("exit_long", p.exit_long),
            mask("enter_short", p.enter_short),
            mask("exit_short", p.exit_short),
        )


def flags(name: str = "flags", **params: Any) -> FlagStrategy:
    st = FlagStrategy(params)
    if name != "flags":
        st.name = name  # type: ignore[misc]
    return st


def bars(
    rows: Sequence[tuple[float, float, float, float]],
    symbol: str = "BTC",
    start: int = T0,
    step: int = HOUR,
    interval: str = "1h",
) -> Candles:
    """Candles from (open, high, low, close) rows, hourly from 2024-01-01 00:00 UTC."""
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    n = len(arr)
    ts = start + np.arange(n, dtype=np.int64) * step
    return Candles(symbol, interval, ts, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.ones(n))


def flat(
    n: int, price: float = 100.0, symbol: str = "BTC"
) -> list[tuple[float, float, float, float]]:
    """n quiet bars that touch neither a +2 % target nor a -1 % stop."""
    del symbol
    return [(price, price * 1.001, price * 0.999, price)] * n


LOOSE = RiskLimits(
    max_open_sessions=100,
    max_budget_per_session=Decimal(10_000),
    max_total_budget=Decimal(1_000_000),
    daily_loss_limit=Decimal(1_000_000),
    cooldown_s=0,
    min_free_balance=Decimal(0),
)
"""Limits that never veto, for tests about the money rather than the RiskGate."""


@pytest.fixture
def loose() -> Callable[..., BacktestConfig]:
    def make(**kw: Any) -> BacktestConfig:
        kw.setdefault("limits", LOOSE)
        kw.setdefault("balance", 1000.0)
        return BacktestConfig(**kw)

    return make
