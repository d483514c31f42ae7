"""`Strategy.last_row`, what the daemon acts on, gives the flags `run` gives at the last row,
whether the strategy streams its indicators or recomputes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import strategies
from bot.market.data import Candles, synthetic_market
from strategies.base import LastRow, Strategy

START_MS = 1_699_999_980_000
CASES: list[tuple[str, dict[str, Any]]] = [
    ("signal_follower", {}),
    ("signal_follower", {"allow_short": True, "exit_on_neutral": True, "min_strength": 0.5}),
    ("ema_cross", {"fast": 5, "slow": 20}),
    ("ema_cross", {"allow_short": True}),
    ("ema_cross", {"kind": "sma", "fast": 10, "slow": 30}),
    ("rsi_reversion", {"period": 7, "trend_period": 50}),
]


def _make(name: str, params: dict[str, Any]) -> Strategy[Any]:
    cls = strategies.resolve(name)
    assert issubclass(cls, Strategy)
    return cls({"interval": "1m", **params})


def _rows(flags: Any) -> list[LastRow]:
    cols = (flags.enter_long, flags.exit_long, flags.enter_short, flags.exit_short)
    return [LastRow(*(bool(c[i]) for c in cols)) for i in range(len(flags.enter_long))]


@pytest.fixture(scope="module")
def market() -> dict[str, Candles]:
    return synthetic_market(5, start_ms=START_MS, n=900, symbols=["BTC", "DOGE"])


@pytest.mark.parametrize(("name", "params"), CASES)
def test_last_row_equals_run_at_every_row_of_a_growing_series(
    name: str, params: dict[str, Any], market: dict[str, Candles]
) -> None:
    for asset, candles in market.items():
        strategy = _make(name, params)
        want = _rows(strategy.run(candles))
        got = [strategy.last_row(asset, candles[:t]) for t in range(1, len(candles) + 1)]
        assert got == want, asset
        assert any(r.enter_long or r.enter_short for r in want)  # the test sees real entries


def test_signal_follower_and_ema_cross_stream_their_indicators() -> None:
    assert _make("signal_follower", {}).stream() is not None
    assert _make("ema_cross", {}).stream() is not None
    assert _make("ema_cross", {"kind": "sma"}).stream() is None


def test_a_stream_computes_only_the_candles_it_has_not_seen(
    market: dict[str, Candles], monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = _make("signal_follower", {})
    candles = market["BTC"]
    strategy.last_row("BTC", candles[:500])
    pushed = 0
    real = strategy._follow["BTC"].stream.push

    def counting(*row: float) -> dict[str, float]:
        nonlocal pushed
        pushed += 1
        return real(*row)

    monkeypatch.setattr(strategy._follow["BTC"].stream, "push", counting)
    strategy.last_row("BTC", candles[:503])
    assert pushed == 3
    strategy.last_row("BTC", candles[:503])  # no new candle: nothing to compute
    assert pushed == 3


def test_a_series_that_does_not_continue_the_last_one_starts_over(
    market: dict[str, Candles],
) -> None:
    candles = market["BTC"]
    strategy = _make("signal_follower", {})
    for t in range(400, 700):
        strategy.last_row("BTC", candles[:t])
    cut = candles[300:700]  # the daemon's history cut back to its lookback: a new first candle
    fresh = _make("signal_follower", {})
    assert strategy.last_row("BTC", cut) == LastRow.of(fresh.run(cut))
    assert strategy._follow["BTC"].first_ts == int(cut.ts[0])


def test_a_changed_candle_at_the_join_starts_over(market: dict[str, Candles]) -> None:
    candles = market["DOGE"]
    strategy = _make("ema_cross", {"fast": 5, "slow": 20})
    strategy.last_row("DOGE", candles[:600])
    close = candles.close.copy()
    close[599] *= 1.5  # a refetch that revised the last candle seen
    high = np.maximum(candles.high, close)
    revised = Candles("DOGE", "1m", candles.ts, candles.open, high, candles.low, close,
                      candles.volume)[:650]  # fmt: skip
    assert not strategy._follow["DOGE"].continues(revised)
    assert strategy.last_row("DOGE", revised) == LastRow.of(strategy.run(revised))


def test_assets_keep_separate_streams(market: dict[str, Candles]) -> None:
    strategy = _make("signal_follower", {})
    for t in range(200, 400):
        for asset, candles in market.items():
            assert strategy.last_row(asset, candles[:t]) == LastRow.of(strategy.run(candles[:t]))
    assert set(strategy._follow) == {"BTC", "DOGE"}


def test_no_candles_means_no_flags() -> None:
    assert _make("signal_follower", {}).last_row("BTC", Candles.empty("BTC", "1m")) == LastRow(
        False, False, False, False
    )
