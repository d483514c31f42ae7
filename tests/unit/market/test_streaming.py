"""The one-candle-at-a-time indicators equal the vectorised ones bit for bit, at every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.market import indicators as ind
from bot.market.data import Candles, load_csv
from bot.market.signals import SignalStream, compute_signal_series
from bot.market.streaming import AtrStream, RsiStream, Smoother, ema_stream
from tests.unit.market.conftest import random_candles

PERIODS = (1, 2, 9, 12, 14, 26, 200)
# past one block of the recursion (512 rows at most), and a partial last block
LENGTHS = (1, 3, 15, 511, 512, 513, 1300)


def _pushed(stream: Smoother | RsiStream, values: np.ndarray) -> np.ndarray:
    return np.array([stream.push(v) for v in values.tolist()])


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("period", PERIODS)
def test_ema_stream_equals_ema_at_every_row(n: int, period: int) -> None:
    close = random_candles(seed=n + period, n=n).close
    assert np.array_equal(
        _pushed(ema_stream(period), close), ind.ema(close, period), equal_nan=True
    )


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("period", PERIODS)
def test_rsi_stream_equals_rsi_at_every_row(n: int, period: int) -> None:
    close = random_candles(seed=n * period, n=n).close
    assert np.array_equal(_pushed(RsiStream(period), close), ind.rsi(close, period), equal_nan=True)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("period", PERIODS)
def test_atr_stream_equals_atr_at_every_row(n: int, period: int) -> None:
    c = random_candles(seed=n + 7 * period, n=n)
    stream = AtrStream(period)
    got = np.array(
        [stream.push(h, lo, cl) for h, lo, cl in zip(c.high, c.low, c.close, strict=True)]
    )
    assert np.array_equal(got, ind.atr(c.high, c.low, c.close, period), equal_nan=True)


def test_smoother_skips_leading_nans_like_the_vectorised_one() -> None:
    line = random_candles(seed=3, n=600).close.copy()
    line[:25] = np.nan
    assert np.array_equal(_pushed(ema_stream(9), line), ind.ema(line, 9), equal_nan=True)


def test_flat_prices_give_rsi_50_in_both() -> None:
    close = np.full(40, 123.0)
    assert np.array_equal(_pushed(RsiStream(14), close), ind.rsi(close, 14), equal_nan=True)


def test_smoother_refuses_a_bad_period() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        Smoother(0, 0.5)


def _stream_signal(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    stream = SignalStream()
    rows = [stream.push(h, lo, cl) for h, lo, cl in zip(c.high, c.low, c.close, strict=True)]
    codes, strengths = zip(*rows, strict=True)
    return np.array(codes, dtype=np.int8), np.array(strengths)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_signal_stream_equals_the_signal_series_at_every_row(seed: int) -> None:
    c = random_candles(seed=seed, n=2000)
    series = compute_signal_series(c)
    codes, strengths = _stream_signal(c)
    assert (codes != 0).sum() > 100  # the comparison covers real BUY and SELL rows
    assert np.array_equal(codes, series.signal)
    assert np.array_equal(strengths, series.strength)


def test_signal_stream_equals_the_signal_series_on_real_candles(
    shared_candles_dir: Path,
) -> None:
    files = sorted(shared_candles_dir.glob("*_1h.csv")) + sorted(
        shared_candles_dir.glob("*_1m.csv")
    )
    assert files
    for path in files:
        c = load_csv(path, allow_gaps=True).tail(3000)
        series = compute_signal_series(c)
        codes, strengths = _stream_signal(c)
        assert np.array_equal(codes, series.signal), path.name
        assert np.array_equal(strengths, series.strength), path.name
