"""Indicators against plain-loop reference implementations, and the no-look-ahead rule."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from bot.market import indicators as ind
from bot.market.data import Candles

from .conftest import MakeCandles

NAN = float("nan")
Arrays = tuple[np.ndarray, ...]


# --------------------------------------------------------------------------------------------
# reference implementations: the textbook definitions as simple loops


def first_valid(x: list[float]) -> int:
    return next((i for i, v in enumerate(x) if not math.isnan(v)), len(x))


def ref_sma(x: list[float], n: int) -> list[float]:
    out = [NAN] * len(x)
    for t in range(n - 1, len(x)):
        window = x[t - n + 1 : t + 1]
        out[t] = sum(window) / n
    return out


def ref_smooth(x: list[float], alpha: float, n: int) -> list[float]:
    out = [NAN] * len(x)
    f = first_valid(x)
    if f + n > len(x):
        return out
    y = sum(x[f : f + n]) / n
    out[f + n - 1] = y
    for t in range(f + n, len(x)):
        y = y + alpha * (x[t] - y)
        out[t] = y
    return out


def ref_ema(x: list[float], n: int) -> list[float]:
    return ref_smooth(x, 2 / (n + 1), n)


def ref_rsi(close: list[float], n: int) -> list[float]:
    out = [NAN] * len(close)
    if len(close) <= n:
        return out
    gains = [max(close[i] - close[i - 1], 0.0) for i in range(1, len(close))]
    losses = [max(close[i - 1] - close[i], 0.0) for i in range(1, len(close))]
    avg_gain = sum(gains[:n]) / n
    avg_loss = sum(losses[:n]) / n
    for t in range(n, len(close)):
        if t > n:
            avg_gain = (avg_gain * (n - 1) + gains[t - 1]) / n
            avg_loss = (avg_loss * (n - 1) + losses[t - 1]) / n
        if avg_gain + avg_loss == 0:
            out[t] = 50.0
        elif avg_loss == 0:
            out[t] = 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def ref_macd(close: list[float], fast: int, slow: int, signal: int) -> Arrays:
    line = [a - b for a, b in zip(ref_ema(close, fast), ref_ema(close, slow), strict=True)]
    sig = ref_ema(line, signal)  # ref_smooth skips the line's leading NaNs
    hist = [a - b for a, b in zip(line, sig, strict=True)]
    return np.array(line), np.array(sig), np.array(hist)


def ref_true_range(h: list[float], lo: list[float], c: list[float]) -> list[float]:
    out = [h[0] - lo[0]]
    for t in range(1, len(h)):
        out.append(max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])))
    return out


def ref_atr(h: list[float], lo: list[float], c: list[float], n: int) -> list[float]:
    tr = ref_true_range(h, lo, c)
    out = [NAN] * len(h)
    if len(h) <= n:
        return out
    value = sum(tr[1 : n + 1]) / n
    out[n] = value
    for t in range(n + 1, len(h)):
        value = (value * (n - 1) + tr[t]) / n
        out[t] = value
    return out


def ref_bollinger(x: list[float], n: int, k: float) -> Arrays:
    mid, up, low = [NAN] * len(x), [NAN] * len(x), [NAN] * len(x)
    for t in range(n - 1, len(x)):
        window = x[t - n + 1 : t + 1]
        mean = sum(window) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in window) / n)
        mid[t], up[t], low[t] = mean, mean + k * std, mean - k * std
    return np.array(mid), np.array(up), np.array(low)


def ref_cross(a: list[float], b: list[float], above: bool) -> list[bool]:
    out = [False]
    for t in range(1, len(a)):
        if above:
            out.append(a[t] > b[t] and a[t - 1] <= b[t - 1])
        else:
            out.append(a[t] < b[t] and a[t - 1] >= b[t - 1])
    return out


def close_to(got: np.ndarray, want: list[float] | np.ndarray, scale: float = 1.0) -> None:
    np.testing.assert_allclose(got, np.asarray(want, dtype=float), rtol=1e-9, atol=1e-9 * scale)


# --------------------------------------------------------------------------------------------
# values


@pytest.fixture(params=[(0, 100.0), (1, 60_000.0), (2, 0.15)], ids=["p100", "btc", "doge"])
def series(request: pytest.FixtureRequest, make_candles: MakeCandles) -> Candles:
    seed, price = request.param
    return make_candles(seed=seed, n=1200, price=price)


@pytest.mark.parametrize("n", [1, 2, 5, 20, 200])
def test_sma_and_ema_match_the_loops(series: Candles, n: int) -> None:
    x = series.close.tolist()
    scale = float(np.max(series.close))
    close_to(ind.sma(series.close, n), ref_sma(x, n), scale)
    close_to(ind.ema(series.close, n), ref_ema(x, n), scale)
    close_to(ind.rma(series.close, n), ref_smooth(x, 1 / n, n), scale)


@pytest.mark.parametrize("n", [2, 14, 30])
def test_rsi_matches_wilder(series: Candles, n: int) -> None:
    close_to(ind.rsi(series.close, n), ref_rsi(series.close.tolist(), n), 100.0)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (3, 10, 16), (1, 2, 1)])
def test_macd_matches(series: Candles, fast: int, slow: int, signal: int) -> None:
    got = ind.macd(series.close, fast, slow, signal)
    want = ref_macd(series.close.tolist(), fast, slow, signal)
    for g, w in zip(got, want, strict=True):
        close_to(g, w, float(np.max(series.close)))


@pytest.mark.parametrize("n", [1, 14, 50])
def test_atr_and_true_range_match(series: Candles, n: int) -> None:
    h, lo, c = series.high.tolist(), series.low.tolist(), series.close.tolist()
    scale = float(np.max(series.close))
    close_to(ind.true_range(series.high, series.low, series.close), ref_true_range(h, lo, c), scale)
    close_to(ind.atr(series.high, series.low, series.close, n), ref_atr(h, lo, c, n), scale)


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (5, 1.5), (1, 2.0)])
def test_bollinger_matches(series: Candles, n: int, k: float) -> None:
    got = ind.bollinger(series.close, n, k)
    want = ref_bollinger(series.close.tolist(), n, k)
    for g, w in zip(got, want, strict=True):
        close_to(g, w, float(np.max(series.close)))


def test_crossings_match(series: Candles) -> None:
    fast, slow = ind.ema(series.close, 5), ind.ema(series.close, 20)
    a, b = fast.tolist(), slow.tolist()
    over = ind.crossover(fast, slow)
    under = ind.crossunder(fast, slow)
    assert over.tolist() == ref_cross(a, b, above=True)
    assert under.tolist() == ref_cross(a, b, above=False)
    assert over.any() and under.any()
    assert not (over & under).any()
    assert not over[:20].any()  # slow EMA is NaN until row 19, so no crossing can be seen there
    level = float(np.median(series.close))
    assert ind.crossover(series.close, level).tolist() == ref_cross(
        series.close.tolist(), [level] * len(series), above=True
    )


def test_warm_up_lengths(make_candles: MakeCandles) -> None:
    c = make_candles(n=100)

    def first(a: np.ndarray) -> int:
        return int(np.argmax(~np.isnan(a)))

    assert first(ind.sma(c.close, 20)) == 19
    assert first(ind.ema(c.close, 12)) == 11
    assert first(ind.rsi(c.close, 14)) == 14
    assert first(ind.atr(c.high, c.low, c.close, 14)) == 14
    line, sig, hist = ind.macd(c.close)
    assert (first(line), first(sig), first(hist)) == (25, 33, 33)
    assert first(ind.bollinger(c.close)[1]) == 19
    assert np.isnan(ind.ema(c.close[:11], 12)).all()
    assert np.isnan(ind.rsi(c.close[:14], 14)).all()
    assert ind.rsi(c.close[:1]).shape == (1,)
    assert ind.ema(np.array([]), 3).shape == (0,)


def test_special_inputs() -> None:
    up = np.linspace(1.0, 2.0, 50)
    assert np.all(ind.rsi(up, 14)[14:] == 100.0)
    assert np.all(ind.rsi(up[::-1], 14)[14:] == 0.0)
    assert np.all(ind.rsi(np.full(50, 3.0), 14)[14:] == 50.0)
    assert np.array_equal(ind.ema(up, 1), up)
    np.testing.assert_allclose(ind.ema(np.full(2000, 7.25), 30)[29:], 7.25, rtol=1e-15)
    shifted = np.concatenate((np.full(5, np.nan), up))
    assert np.array_equal(ind.ema(shifted, 10)[5:], ind.ema(up, 10), equal_nan=True)
    assert np.array_equal(ind.sma(shifted, 10)[5:], ind.sma(up, 10), equal_nan=True)
    assert np.isnan(ind.ema(np.full(10, np.nan), 3)).all()
    holed = up.copy()
    holed[20] = np.nan
    s = ind.sma(holed, 5)
    assert np.isnan(s[20:25]).all() and not np.isnan(s[25:]).any() and not np.isnan(s[4:20]).any()
    assert not ind.crossover(np.array([np.nan, 2.0]), np.array([1.0, 1.0])).any()


def test_bad_arguments() -> None:
    x = np.arange(10.0)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            ind.ema(x, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        ind.sma(np.ones((3, 3)), 2)
    with pytest.raises(ValueError, match="same length"):
        ind.atr(x, x, x[:5])
    with pytest.raises(ValueError, match="shorter than slow"):
        ind.macd(x, 26, 12)


def test_smas_refuses_no_period_and_bad_periods() -> None:
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="at least one period"):
        ind.smas(x)
    with pytest.raises(ValueError, match="positive integer"):
        ind.smas(x, 3, 0)


# --------------------------------------------------------------------------------------------
# no look-ahead: a prefix gives bit-for-bit the same values, whatever comes after it

INDICATORS: dict[str, Callable[[Candles], Arrays]] = {
    "sma": lambda c: (ind.sma(c.close, 20), ind.sma(c.close, 200)),
    "ema": lambda c: (ind.ema(c.close, 2), ind.ema(c.close, 12), ind.ema(c.close, 200)),
    "rma": lambda c: (ind.rma(c.close, 14), ind.rma(c.volume, 3)),
    "rsi": lambda c: (ind.rsi(c.close), ind.rsi(c.close, 2)),
    "macd": lambda c: ind.macd(c.close),
    "true_range": lambda c: (ind.true_range(c.high, c.low, c.close),),
    "atr": lambda c: (ind.atr(c.high, c.low, c.close), ind.atr(c.high, c.low, c.close, 1)),
    "bollinger": lambda c: ind.bollinger(c.close),
    "crossover": lambda c: (ind.crossover(ind.ema(c.close, 5), ind.ema(c.close, 20)),),
    "crossunder": lambda c: (ind.crossunder(ind.rsi(c.close), 50.0),),
    "chained": lambda c: (
        ind.ema(ind.rsi(c.close), 9),
        ind.sma(ind.atr(c.high, c.low, c.close), 5),
    ),
}
PREFIXES = [0, 1, 2, 13, 14, 15, 33, 34, 209, 210, 211, 511, 512, 513, 514, 1025, 4095, 4999]


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint8)


@pytest.mark.parametrize("name", sorted(INDICATORS))
@pytest.mark.parametrize("seed", [0, 1])
def test_prefix_gives_exactly_the_same_values(
    make_candles: MakeCandles, name: str, seed: int
) -> None:
    fn = INDICATORS[name]
    full = make_candles(seed=seed, n=5000, price=[100.0, 60_000.0][seed])
    whole = fn(full)
    rng = np.random.default_rng(seed + 100)
    for m in PREFIXES:
        for got, want in zip(fn(full[:m]), whole, strict=True):
            assert got.shape == (m,)
            assert np.array_equal(bits(got), bits(want[:m])), f"{name} differs on prefix {m}"
        # a different future must not change the past either
        future = make_candles(seed=int(rng.integers(1_000)), n=5000 - m, price=200.0)
        spliced = Candles(
            full.symbol,
            full.interval,
            full.ts,
            *(
                np.concatenate((getattr(full, k)[:m], getattr(future, k)))
                for k in ("open", "high", "low", "close", "volume")
            ),
        )
        for got, want in zip(fn(spliced), whole, strict=True):
            assert np.array_equal(bits(got[:m]), bits(want[:m])), f"{name} looks ahead at {m}"


def test_long_series_stay_accurate() -> None:
    rng = np.random.default_rng(9)
    x = 60_000.0 * np.exp(np.cumsum(rng.normal(0, 0.002, 60_000)))
    close_to(ind.ema(x, 26), ref_ema(x.tolist(), 26), 1e5)
    close_to(ind.rma(x, 14), ref_smooth(x.tolist(), 1 / 14, 14), 1e5)
    close_to(ind.sma(x, 50)[-1000:], ref_sma(x.tolist(), 50)[-1000:], 1e5)
