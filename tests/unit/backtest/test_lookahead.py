"""The look-ahead check: every shipped strategy passes, strategies that peek are caught."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import strategies
from bot.backtest.lookahead import check_strategy, cut_points
from bot.market.data import Candles, synthetic_market
from bot.market.indicators import sma
from strategies.base import FloatArray, Signals, Strategy, StrategyParams


@pytest.fixture(scope="module")
def market() -> dict[str, Candles]:
    return synthetic_market(
        3, start_ms=1_704_067_200_000, n=3000, interval="1h", symbols=["BTC", "DOGE"]
    )


SHIPPED = [
    ("ema_cross", {}),
    ("ema_cross", {"fast": 10, "slow": 30, "kind": "sma"}),
    ("ema_cross", {"allow_short": True}),
    ("rsi_reversion", {}),
    ("rsi_reversion", {"trend_filter": False, "allow_short": True}),
    ("signal_follower", {}),
    ("signal_follower", {"allow_short": True, "exit_on_neutral": True}),
]


@pytest.mark.parametrize(("name", "params"), SHIPPED)
def test_shipped_strategies_never_read_later_candles(
    market: dict[str, Candles], name: str, params: dict[str, Any]
) -> None:
    st = strategies.create(name, params)
    assert isinstance(st, Strategy)
    for candles in market.values():
        assert check_strategy(st, candles) == []


def test_every_shipped_candle_strategy_is_covered() -> None:
    candle_strategies = {
        n for n, cls in strategies.available().items() if issubclass(cls, Strategy)
    }
    assert candle_strategies <= {n for n, _ in SHIPPED}


class PeekParams(StrategyParams):
    how: str = "next_close"


class Peek(Strategy[PeekParams]):
    """Deliberately biased: three classic ways of reading the future."""

    name = "peek"
    Params = PeekParams

    @property
    def warmup(self) -> int:
        return 30

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        close = np.asarray(candles.close, dtype=np.float64)
        if self.params.how == "next_close":  # shift(-1): tomorrow's close today
            nxt = np.append(close[1:], np.nan)
            return {"next": nxt}
        if self.params.how == "normalised":  # scaled by the whole history's maximum
            return {"level": close / close.max()}
        # a centred moving average: half its window lies in the future
        centred = np.full(len(close), np.nan)
        centred[:-10] = sma(close, 21)[10:] if len(close) > 10 else np.nan
        return {"centred": centred}

    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        col = next(iter(columns.values()))
        close = np.asarray(candles.close)
        if self.params.how == "normalised":
            up = col > 0.99
        else:
            with np.errstate(invalid="ignore"):
                up = col > close
        return Signals.long_only(up, ~up)


@pytest.mark.parametrize("how", ["next_close", "normalised", "centred"])
def test_a_strategy_that_peeks_is_caught(market: dict[str, Candles], how: str) -> None:
    findings = check_strategy(Peek({"how": how}), market["BTC"])
    assert findings, how
    columns = {f.column for f in findings}
    assert any(c.startswith("indicator ") for c in columns)
    first = findings[0]
    assert first.row < first.prefix_len <= len(market["BTC"])
    assert "reads later candles" in str(first)


def test_cut_points_cover_the_start_and_the_end() -> None:
    cuts = cut_points(5000, 100)
    assert cuts[0] == 101 and cuts[-1] == 4999 and len(cuts) >= 10
    assert cut_points(3, 100) == [2]
