"""The served signal: its rule, its warm-up, and series/point agreement."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bot.domain import SignalKind
from bot.market.data import Candles, load_csv, synthetic_candles
from bot.market.signals import (
    INDICATOR_KEYS,
    SignalParams,
    SignalSeries,
    compute_signal,
    compute_signal_series,
)

from .conftest import MakeCandles

START = 1_700_000_000_000 - 1_700_000_000_000 % 60_000


def expected_row(s: SignalSeries, i: int, p: SignalParams) -> tuple[SignalKind, float]:
    """The documented rule, written out for one row."""
    line, hist, r, a = float(s.macd[i]), float(s.macd_hist[i]), float(s.rsi[i]), float(s.atr[i])
    flat = 1e-9 * abs(float(s.close[i]))
    if any(math.isnan(v) for v in (line, hist, r)):
        return SignalKind.NEUTRAL, 0.0
    if line > flat and hist > flat and r < p.overbought:
        kind, room = SignalKind.BUY, (p.overbought - r) / 20.0
    elif line < -flat and hist < -flat and r > p.oversold:
        kind, room = SignalKind.SELL, (r - p.oversold) / 20.0
    else:
        return SignalKind.NEUTRAL, 0.0
    momentum = math.tanh(4.0 * abs(hist) / a) if a > 0 else 0.0
    return kind, momentum * (0.5 + 0.5 * min(1.0, max(0.0, room)))


def test_rule_and_strength_row_by_row() -> None:
    candles = synthetic_candles(4, "ETH", start_ms=START, n=4000)
    series = compute_signal_series(candles)
    params = SignalParams()
    kinds: Counter[SignalKind] = Counter()
    for i in range(len(series)):
        kind, strength = expected_row(series, i, params)
        assert series.kind(i) == kind, i
        assert series.strength[i] == pytest.approx(strength, abs=1e-12), i
        kinds[kind] += 1
    assert all(kinds[k] > 200 for k in SignalKind), kinds
    assert np.all((series.strength >= 0) & (series.strength < 1))
    assert np.all(series.strength[series.signal == 0] == 0)
    assert np.mean(series.strength[series.signal != 0] > 0) > 0.99
    # the EMA trend and the MACD line are the same thing, as documented
    assert np.array_equal(series.macd, series.ema_fast - series.ema_slow, equal_nan=True)


@pytest.mark.parametrize("rows", [1, 2, 12, 26, 33, 34, 35, 100, 511, 512, 513, 1999])
def test_point_signal_equals_the_series_row(rows: int) -> None:
    candles = synthetic_candles(5, "BTC", start_ms=START, n=2000)
    series = compute_signal_series(candles)
    assert compute_signal(candles[:rows]) == series.at(rows - 1)


def test_too_few_candles_are_neutral_without_nan(make_candles: MakeCandles) -> None:
    c = make_candles(n=20)
    result = compute_signal(c[:5])
    assert result.signal is SignalKind.NEUTRAL
    assert result.strength == 0.0
    assert result.indicators == {"close": float(c.close[4])}
    assert result.candle_time == int(c.ts[4])
    result = compute_signal(c)
    assert set(result.indicators) == {"close", "ema_fast", "rsi", "atr"}
    assert all(math.isfinite(v) for v in result.indicators.values())
    full = compute_signal(make_candles(n=SignalParams().warmup))
    assert set(full.indicators) == set(INDICATOR_KEYS)
    empty = compute_signal(Candles.empty("BTC", "5m"))
    assert (empty.signal, empty.strength, empty.indicators, empty.candle_time) == (
        SignalKind.NEUTRAL,
        0.0,
        {},
        None,
    )


def test_warm_up_is_always_neutral(make_candles: MakeCandles) -> None:
    params = SignalParams()
    assert params.warmup == 34
    for seed in range(20):
        series = compute_signal_series(make_candles(seed=seed, n=200))
        assert not series.signal[: params.warmup - 1].any()


def test_now_ms_drops_the_forming_candle(make_candles: MakeCandles) -> None:
    c = make_candles(n=100)
    last = int(c.ts[-1])
    assert compute_signal(c, now_ms=last + c.interval_ms - 1).candle_time == int(c.ts[-2])
    assert compute_signal(c, now_ms=last + c.interval_ms).candle_time == last
    assert compute_signal(c, now_ms=int(c.ts[0])).candle_time is None


def test_a_flat_market_gives_no_signal() -> None:
    n = 300
    flat = np.full(n, 123.45)
    ts = START + np.arange(n, dtype=np.int64) * 60_000
    c = Candles("BTC", "1m", ts, flat, flat, flat, flat, np.ones(n))
    series = compute_signal_series(c)
    assert not series.signal.any()
    assert compute_signal(c).signal is SignalKind.NEUTRAL
    assert series.rsi[-1] == 50.0


def test_trends_lean_the_right_way() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    for drift, favoured in ((0.0015, SignalKind.BUY), (-0.0015, SignalKind.SELL)):
        close = 100 * np.exp(np.cumsum(drift + rng.normal(0, 0.004, n)))
        open_ = np.concatenate(([100.0], close[:-1]))
        high = np.maximum(open_, close) * 1.001
        low = np.minimum(open_, close) * 0.999
        ts = START + np.arange(n, dtype=np.int64) * 60_000
        series = compute_signal_series(Candles("X", "1m", ts, open_, high, low, close, np.ones(n)))
        counts = Counter(series.kind(i) for i in range(n))
        other = SignalKind.SELL if favoured is SignalKind.BUY else SignalKind.BUY
        assert counts[favoured] > 3 * counts[other], counts


def test_series_exposes_indicator_columns(make_candles: MakeCandles) -> None:
    c = make_candles(n=60)
    series = compute_signal_series(c)
    assert list(series.indicators) == list(INDICATOR_KEYS)
    assert np.array_equal(series.indicators["close"], c.close)
    assert len(series) == 60
    row = series.at(-1)
    assert row.symbol == "BTC" and row.interval == "5m" and row.candle_time == int(c.ts[-1])


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="shorter than slow"):
        SignalParams(fast=26, slow=12)
    with pytest.raises(ValueError, match="positive integer"):
        SignalParams(rsi_period=0)
    with pytest.raises(ValueError, match="oversold < overbought"):
        SignalParams(overbought=20.0, oversold=80.0)
    custom = SignalParams(fast=5, slow=10, signal=3)
    assert custom.warmup == 15


@pytest.mark.shared_data
def test_real_candles_give_every_kind(shared_candles_dir: Path) -> None:
    candles = load_csv(shared_candles_dir / "BTC-USDC_hyperliquid_5m.csv")
    series = compute_signal_series(candles)
    counts = Counter(int(v) for v in series.signal)
    assert all(counts[k] > 1000 for k in (-1, 0, 1)), counts
    for rows in (50, 5000, len(candles)):
        assert compute_signal(candles[:rows]) == series.at(rows - 1)
