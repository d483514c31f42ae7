"""`strategy_flags` packs each asset's signals into the loop's bit table exactly as before its
fast paths (the compiled packer, views of boolean arrays, skipped all-False arrays, slices
instead of scatters, the one-asset table returned as is): a frozen copy of the plain packing is
the reference, and every test runs with the compiled packer and without it."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytest

from bot.backtest import compiled
from bot.backtest import kernel as K
from bot.backtest.engine import Market, strategy_flags
from bot.market import indicators
from bot.market.data import Candles
from strategies.base import FloatArray, Signals, Strategy, StrategyParams
from tests.unit.backtest.conftest import HOUR, T0
from tests.unit.backtest.test_kernel import random_market


@pytest.fixture(params=["compiled", "numpy"], autouse=True)
def packer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with the compiled packer routed in, then with numpy's packing only."""
    if request.param == "compiled":
        compiled.load("aot")
        assert indicators.compiled_twin("pack_flags_into") is not None
    else:
        monkeypatch.setattr(indicators, "_twins", {})
    return str(request.param)


def plain_flags(strategy: Strategy[Any], market: Market) -> np.ndarray:
    """`strategy_flags` as it was (commit 4a2b2cf): cast, multiply and or all four, scatter."""
    out = np.zeros((len(market), len(market.symbols)), dtype=np.uint8)
    warm = max(0, strategy.warmup - 1)
    for a, sym in enumerate(market.symbols):
        s = strategy.run(market.candles[sym])
        bits = (
            np.asarray(s.enter_long, dtype=np.uint8) * K.ENTER_LONG
            | np.asarray(s.exit_long, dtype=np.uint8) * K.EXIT_LONG
            | np.asarray(s.enter_short, dtype=np.uint8) * K.ENTER_SHORT
            | np.asarray(s.exit_short, dtype=np.uint8) * K.EXIT_SHORT
        )
        bits[:warm] = 0
        out[market.rows[a], a] = bits
    return out


class NoiseParams(StrategyParams):
    seed: int = 0
    dtype: Literal["bool", "int", "float", "list"] = "bool"
    short: Literal["none", "some"] = "none"
    warm: int = 1


class Noise(Strategy[NoiseParams]):
    """Random signals of a chosen element type, the same ones for every call on an asset."""

    name = "noise"
    Params = NoiseParams

    @property
    def warmup(self) -> int:
        return self.params.warm

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        p = self.params
        rng = np.random.default_rng([p.seed, sum(candles.symbol.encode())])
        n = len(candles)

        def draw(rate: float) -> Any:
            hit = rng.random(n) < rate
            if p.dtype == "bool":
                return hit
            if p.dtype == "int":  # values other than 1 are or-ed in as uint8 arithmetic makes them
                return hit * rng.integers(1, 4, n)
            if p.dtype == "float":
                return hit * 1.0
            return hit.tolist()

        if p.short == "none":
            return Signals(draw(0.1), draw(0.1), np.zeros(n, bool), np.zeros(n, bool))
        return Signals(draw(0.1), draw(0.1), draw(0.05), draw(0.05))


@pytest.mark.parametrize("dtype", ["bool", "int", "float", "list"])
@pytest.mark.parametrize("short", ["none", "some"])
def test_bit_table_equals_the_plain_packing(dtype: str, short: str) -> None:
    market = random_market(4)  # ETH starts late and misses candles: the scatter path
    for seed in range(3):
        st = Noise({"seed": seed, "dtype": dtype, "short": short, "warm": 1 + 20 * seed})
        got = strategy_flags(st, market)
        want = plain_flags(st, market)
        assert got.dtype == np.uint8
        assert got.shape == want.shape
        assert np.array_equal(got, want)
        assert got.any()


def candles(symbol: str, start_row: int, n: int) -> Candles:
    ts = T0 + (start_row + np.arange(n, dtype=np.int64)) * HOUR
    price = np.linspace(100.0, 110.0, n)
    return Candles(symbol, "1h", ts, price, price, price, price, np.ones(n))


def test_an_asset_without_gaps_inside_a_longer_timeline_lands_on_its_rows() -> None:
    # SOL starts 30 candles after BTC and ends 10 before it, with no gap: the slice path
    market = Market.from_candles({"BTC": candles("BTC", 0, 200), "SOL": candles("SOL", 30, 160)})
    st = Noise({"seed": 9, "dtype": "bool", "short": "some"})
    got = strategy_flags(st, market)
    assert np.array_equal(got, plain_flags(st, market))
    assert not got[:30, 1].any() and not got[190:, 1].any()
    assert got[30:190, 1].any()


def test_one_asset_gets_its_own_bits_as_a_writable_table() -> None:
    market = Market.from_candles({"BTC": candles("BTC", 0, 300)})
    st = Noise({"seed": 2, "dtype": "bool", "short": "some", "warm": 50})
    got = strategy_flags(st, market)
    assert got.shape == (300, 1)
    assert np.array_equal(got, plain_flags(st, market))
    assert not got[:49].any()
    got[0, 0] = 1  # the caller owns it (run_backtest and sweeps write and reshape it)


class Short(Noise):
    """Returns one signal row too few."""

    name = "short_rows"

    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        s = super().signals(candles, columns)
        return Signals(s.enter_long[1:], s.exit_long[1:], s.enter_short[1:], s.exit_short[1:])


def test_a_strategy_returning_too_few_rows_is_named() -> None:
    market = Market.from_candles({"BTC": candles("BTC", 0, 40)})
    with pytest.raises(ValueError, match="short_rows returned 39 signal rows for 40 BTC candles"):
        strategy_flags(Short(), market)
