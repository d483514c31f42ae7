"""Vectorised technical indicators over float64 arrays, free of look-ahead by construction.

Every function returns an array as long as its input, NaN during warm-up, and obeys one rule the
backtester and the live daemon rely on: row t depends only on rows <= t, and computing on a
prefix x[:m] gives bit-for-bit the first m values of computing on the whole x (so a backtest
sees exactly what the live bot would have seen at each candle). To keep that exact, every value
is produced by the same sequence of floating-point operations wherever it sits in the array;
summations are sequential, never pairwise.

Leading NaNs (another indicator's warm-up) are skipped: the indicator starts at the first valid
value. NaNs after that propagate (windowed indicators recover once the NaN leaves the window;
recursive ones stay NaN).

Recursive filters (EMA, Wilder) are evaluated block-wise in pure numpy: within a block of B rows
y[s+j] = q**(j+1) y[s-1] + a * q**j * cumsum(q**-k x[s+k]), so only one scalar carry per block
runs in Python. Blocks are aligned to the filter's first row, never to the array's end. About
40x faster than a Python loop; agrees with the plain recursion to ~1e-15 relative.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "atr",
    "bollinger",
    "crossover",
    "crossunder",
    "ema",
    "macd",
    "rma",
    "rsi",
    "sma",
    "smas",
    "true_range",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_MAX_BLOCK = 512
_SLICE = 16_384
_MAX_GROWTH_LOG = 100.0 * math.log(10.0)  # q**-k stays below 1e100 inside a block

_twins: dict[str, Callable[..., Any]] = {}
"""Compiled twins in use (`bot.backtest.indicator_kernel.SIGNATURES`), empty by default."""


def use_compiled(twins: Mapping[str, Callable[..., Any]] | None) -> None:
    """Route `sma`, `crossover` and `crossunder` through compiled twins, or back to numpy (None).

    The backtest's compiled module registers `bot.backtest.indicator_kernel`'s functions when it
    loads, so a backtest's signal step costs about what its trading loop does; they give the
    same bits as the numpy code below (tests hold them to it). The daemon registers none.
    """
    global _twins
    _twins = dict(twins or {})  # a new dict: a call under way keeps the one it started with


def compiled_twins() -> dict[str, Callable[..., Any]]:
    """The twins in use (a copy; empty when the numpy code runs), e.g. to restore them later."""
    return dict(_twins)


def compiled_twin(name: str) -> Callable[..., Any] | None:
    """The compiled twin ``name`` in use (e.g. the backtest's flag packer), or None when the
    numpy code runs."""
    return _twins.get(name)


def _as_float(x: ArrayLike, name: str = "x") -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    return arr


def _check_period(n: int, name: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def _first_valid(x: FloatArray) -> int:
    nan = np.isnan(x)
    i = int(np.argmin(nan)) if x.size else 0
    return i if x.size and not nan[i] else x.size


def sma(x: ArrayLike, n: int) -> FloatArray:
    """Simple moving average of the last n values (first value at row n-1 of the valid part).

    Window sums are differences of one running sum of (x - x0), x0 the first valid value, which
    keeps the running sum small and the result within ~1e-13 of the direct mean.
    """
    return smas(x, n)[0]


def smas(x: ArrayLike, *periods: int) -> tuple[FloatArray, ...]:
    """`sma(x, n)` for each period, bit for bit, from one running sum: the chain of dependent
    additions that is ~40 % of an SMA, paid once for a strategy's fast and slow averages."""
    if not periods:
        raise ValueError("smas needs at least one period")
    for n in periods:
        _check_period(n)
    arr = _as_float(x)
    twins = _twins
    twin = twins.get("sma_from_sum_into")
    if twin is not None:
        arr = np.ascontiguousarray(arr)
        cs = np.empty(arr.size)
        code = int(twins["running_sum_into"](arr, cs))
        compiled = []
        for n in periods:
            out = np.empty(arr.size)
            twin(arr, int(n), cs, code, out)
            compiled.append(out)
        return tuple(compiled)
    outs = tuple(np.full(arr.size, np.nan) for _ in periods)
    f = _first_valid(arr)
    y = arr[f:]
    if all(y.size < n for n in periods):
        return outs
    dev = y - y[0]
    nan = np.isnan(dev)
    has_nan = bool(nan.any())
    if has_nan:
        dev = np.where(nan, 0.0, dev)
    cs = np.cumsum(dev)
    nan_cs = np.cumsum(nan) if has_nan else None
    for out, n in zip(outs, periods, strict=True):
        if y.size < n:
            continue
        window = cs[n - 1 :].copy()
        window[1:] -= cs[: cs.size - n]
        mean = y[0] + window / n
        if nan_cs is not None:
            nan_in = nan_cs[n - 1 :].copy()
            nan_in[1:] -= nan_cs[: nan_cs.size - n]
            mean[nan_in > 0] = np.nan
        out[f + n - 1 :] = mean
    return outs


@functools.lru_cache(maxsize=64)
def block_constants(q: float) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """(grow, decay, carry_decay, q**block) of the blocked recursion for decay factor q; cached,
    since a daemon asks for the same few periods every tick, and shared with the streaming
    continuation (`bot.market.streaming`), which must use the very same numbers."""
    block = int(min(_MAX_BLOCK, max(1, math.floor(_MAX_GROWTH_LOG / -math.log(q)) + 1)))
    k = np.arange(block, dtype=np.float64)
    grow = q**-k
    decay = q**k
    carry_decay = decay * q
    for arr in (grow, decay, carry_decay):
        arr.flags.writeable = False
    return grow, decay, carry_decay, float(q**block)


def _recursive_into(x: FloatArray, alpha: float, y0: float, out: FloatArray) -> None:
    """out[i] = (1 - alpha) * out[i-1] + alpha * x[i], with out[-1] = y0, block by block.

    Runs on deviations from y0 (smaller sums, and a constant input stays exactly constant), in
    slices of whole blocks so temporaries stay small: the allocator reuses them instead of
    page-faulting fresh memory, which otherwise costs more than the arithmetic.
    """
    q = 1.0 - alpha
    if q == 0.0:
        out[:] = x
        return
    grow, decay, carry_decay, q_block = block_constants(q)
    block = grow.size
    step = max(1, _SLICE // block) * block
    c = 0.0
    for pos in range(0, x.size, step):
        part = x[pos : pos + step]
        rows = -(-part.size // block)
        buf = np.zeros(rows * block)
        np.subtract(part, y0, out=buf[: part.size])
        blocks = buf.reshape(rows, block)
        blocks *= grow
        local = np.cumsum(blocks, axis=1)
        local *= alpha
        local *= decay
        carries = np.empty(rows)
        for b, last in enumerate(local[:, -1].tolist()):
            carries[b] = c
            c = q_block * c + last
        local += carry_decay * carries[:, None]
        np.add(local.reshape(-1)[: part.size], y0, out=out[pos : pos + part.size])


def _smoothed(arr: FloatArray, n: int, alpha: float, out: FloatArray | None = None) -> FloatArray:
    """Exponential smoothing seeded with the mean of the first n valid values."""
    if out is None:
        out = np.empty(arr.size)
    f = _first_valid(arr)
    start = min(f + n - 1, arr.size)
    out[:start] = np.nan
    if start == arr.size:
        return out
    seed = 0.0
    for v in arr[f : start + 1].tolist():
        seed += v
    seed /= n
    out[start] = seed
    _recursive_into(arr[start + 1 :], alpha, seed, out[start + 1 :])
    return out


def ema(x: ArrayLike, n: int) -> FloatArray:
    """Exponential moving average, alpha = 2 / (n + 1).

    Seeded with the SMA of the first n valid values (at row n-1), then
    y[t] = y[t-1] + alpha * (x[t] - y[t-1]); same convention as TA-Lib's EMA.
    """
    _check_period(n)
    return _smoothed(_as_float(x), n, 2.0 / (n + 1))


def rma(x: ArrayLike, n: int) -> FloatArray:
    """Wilder's smoothing (RMA / SMMA), alpha = 1 / n, seeded with the SMA of the first n."""
    _check_period(n)
    return _smoothed(_as_float(x), n, 1.0 / n)


def rsi(close: ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's RSI in [0, 100]; first value at row n (n price changes), as in TA-Lib.

    100 * avg_gain / (avg_gain + avg_loss); a perfectly flat window (no gains, no losses)
    gives 50.
    """
    _check_period(n)
    c = _as_float(close, "close")
    out = np.empty(c.size)
    out[:1] = np.nan
    if c.size < 2:
        return out
    change = np.diff(c)
    up = np.maximum(change, 0.0)
    down = np.subtract(up, change, out=change)
    gain = _smoothed(up, n, 1.0 / n, out[1:])
    total = _smoothed(down, n, 1.0 / n, up)
    total += gain
    flat = total == 0.0
    np.divide(gain, total, out=gain, where=~flat)
    gain *= 100.0
    gain[flat] = 50.0
    return out


def macd(
    close: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line (EMA fast - EMA slow), its signal line (EMA of the line) and the histogram.

    The line starts at row slow-1; the signal EMA is seeded from the line's first `signal`
    values, so it and the histogram start at row slow+signal-2.
    """
    _check_period(fast, "fast")
    _check_period(slow, "slow")
    _check_period(signal, "signal")
    if fast >= slow:
        raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")
    c = _as_float(close, "close")
    line = ema(c, fast) - ema(c, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> FloatArray:
    """max(high - low, |high - prev close|, |low - prev close|); row 0 is high - low."""
    h, lo, c = _same_length(high, low, close)
    tr = h - lo
    if tr.size > 1:
        prev = c[:-1]
        up = np.subtract(h[1:], prev)
        np.abs(up, out=up)
        down = np.subtract(lo[1:], prev)
        np.abs(down, out=down)
        np.maximum(up, down, out=up)
        np.maximum(tr[1:], up, out=tr[1:])
    return tr


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's average true range; seeded with the mean of the true ranges of rows 1..n (those
    with a previous close), so the first value is at row n, as in TA-Lib."""
    _check_period(n)
    tr = true_range(high, low, close)
    out = np.empty(tr.size)
    out[:1] = np.nan
    if tr.size > 1:
        _smoothed(tr[1:], n, 1.0 / n, out[1:])
    return out


def bollinger(
    close: ArrayLike, n: int = 20, k: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands: SMA(n) and SMA +/- k population standard deviations of the window.

    The variance is summed from the window's squared deviations, oldest first (n passes over
    the array): never E[x^2] - E[x]^2, which loses every digit on prices in the tens of
    thousands.
    """
    _check_period(n)
    c = _as_float(close, "close")
    mid = sma(c, n)
    std = np.full(c.size, np.nan)
    f = _first_valid(c)
    y = c[f:]
    if y.size >= n:
        m = mid[f + n - 1 :]
        rows = m.size
        acc = np.zeros(rows)
        for j in range(n):
            dev = y[j : j + rows] - m
            acc += dev * dev
        std[f + n - 1 :] = np.sqrt(acc / n)
    width = k * std
    return mid, mid + width, mid - width


def _same_length(*arrays: ArrayLike) -> list[FloatArray]:
    out = [_as_float(a) for a in arrays]
    if len({a.size for a in out}) > 1:
        raise ValueError(f"arrays must have the same length, got {[a.size for a in out]}")
    return out


def _pair(a: ArrayLike, b: ArrayLike | float) -> tuple[FloatArray, FloatArray]:
    x = _as_float(a, "a")
    y = np.asarray(b, dtype=np.float64)
    if y.shape != x.shape:  # a scalar level (broadcast_to costs more than the compare itself)
        y = np.broadcast_to(y, x.shape)
    return x, y


def crossover(a: ArrayLike, b: ArrayLike | float) -> BoolArray:
    """True at t when a crosses above b: a[t] > b[t] and a[t-1] <= b[t-1].

    False at row 0 and wherever either side is NaN at t or t-1; b may be a scalar level.
    """
    x, y = _pair(a, b)
    return _rises_above(x, y)


def crossunder(a: ArrayLike, b: ArrayLike | float) -> BoolArray:
    """True at t when a crosses below b: a[t] < b[t] and a[t-1] >= b[t-1] (NaN: False)."""
    x, y = _pair(a, b)
    return _rises_above(y, x)  # a falls below b exactly where b rises above a


def _rises_above(x: FloatArray, y: FloatArray) -> BoolArray:
    """x[t] > y[t] and x[t-1] <= y[t-1], False at row 0: compiled when the twins are in use."""
    twin = _twins.get("crossover_into")
    if twin is not None and x.flags.c_contiguous and y.flags.c_contiguous:
        out = np.empty(x.size, dtype=bool)
        twin(x, y, out)
        return out
    out = np.zeros(x.size, dtype=bool)
    out[1:] = (x[1:] > y[1:]) & (x[:-1] <= y[:-1])
    return out
    out = np.zeros(x.size, dtype=bool)
    out[1:] = (x[1:] < y[1:]) & (x[:-1] >= y[:-1])
    return out
