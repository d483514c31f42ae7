"""Compiled twins of `bot.market.indicators`' `sma`, `crossover` and `crossunder`, and the
packing of a strategy's signals into the loop's flag bytes (`pack_flags_into`).

A backtest's signal step was ~3x its trading loop: numpy's SMA makes five passes and as many
temporaries over the array, where a compiled loop makes one running sum. These functions are
plain Python over numpy arrays so the backtest's compiled module (`bot.backtest.compiled`) can
export them; once it is loaded, `indicators` routes those three calls here and `strategy_flags`
packs with `pack_flags_into`. The live daemon never loads that module, never imports numba, and
keeps the numpy path.

Each twin does the very floating-point operations of its numpy original in the same order (the
deviations from the first valid value, one sequential running sum, window differences, ``/ n``,
``+ x0``; no reassociation, no fused multiply-add: numba compiles without fastmath), so results
are the same bit for bit, NaNs included (tests/unit/backtest/test_indicator_kernel.py holds them
to it). Callers pass C-contiguous arrays of the dtypes in `SIGNATURES`: the ahead-of-time
module does not check.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bot.backtest.kernel import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT

F8 = NDArray[np.float64]
B1 = NDArray[np.bool_]
U1 = NDArray[np.uint8]


def running_sum_into(x: F8, cs: F8) -> int:
    """`indicators.sma`'s running sum of ``x``, whatever the window: ``cs`` is filled from the
    first valid row f on (cs[j] for row f + j) and ``2 * f + (1 if a NaN follows)`` returned,
    for `sma_from_sum_into`. One chain of dependent additions: the cost floor of an SMA, paid
    once for every window over the same series (`indicators.smas`).
    """
    size = x.shape[0]
    f = 0
    while f < size and math.isnan(x[f]):
        f += 1
    if f == size:
        return 2 * f
    x0 = x[f]
    # numpy: dev = y - y0, cumsum(dev); cs[0] is dev[0] itself, as numpy's cumsum starts from it
    # rather than from 0.0 + dev[0]. First the plain chain: a NaN deviation would leave the sum
    # NaN to the end, so a sum that ends a number saw none and is numpy's.
    y = x[f:]
    acc = y[0] - x0
    cs[0] = acc
    for j in range(1, size - f):
        acc = acc + (y[j] - x0)
        cs[j] = acc
    if acc == acc:
        return 2 * f
    # numpy zeroes NaN deviations (and sets their windows NaN later, see `sma_from_sum_into`)
    has_nan = False
    d = y[0] - x0
    if d != d:
        d = 0.0
        has_nan = True
    acc = d
    cs[0] = acc
    for j in range(1, size - f):
        d = y[j] - x0
        bad = d != d
        has_nan |= bad
        acc = acc + (0.0 if bad else d)
        cs[j] = acc
    return 2 * f + (1 if has_nan else 0)


def sma_from_sum_into(x: F8, n: int, cs: F8, code: int, out: F8) -> None:
    """`indicators.sma(x, n)` written into ``out``, from `running_sum_into`'s ``cs`` and code.

    The window differences are free of the running sum's chain, so the compiler vectorises them
    (over slices: an index like ``j - n`` could be negative to the compiler, which then checks
    every access for wrap-around and does not vectorise).
    """
    size = x.shape[0]
    f = code // 2
    m = size - f
    if m < n:
        for i in range(size):
            out[i] = math.nan
        return
    for i in range(f + n - 1):
        out[i] = math.nan
    x0 = x[f]
    # numpy: window = cs[n-1:], window[1:] -= cs[:-n]; mean = y0 + window / n
    out[f + n - 1] = x0 + cs[n - 1] / n
    ahead = cs[n:m]
    behind = cs[: m - n]
    tail = out[f + n : size]
    for i in range(m - n):
        tail[i] = x0 + (ahead[i] - behind[i]) / n
    if code % 2:
        # numpy: a window holding a NaN deviation is NaN
        last = -1
        for j in range(m):
            d = x[f + j] - x0
            if d != d:
                last = j
            if j >= n - 1 and last > j - n:
                out[f + j] = math.nan


def crossover_into(x: F8, y: F8, out: B1) -> None:
    """`indicators.crossover(x, y)` for two arrays of one length, written into ``out`` (and
    `crossunder(x, y)` as ``crossover_into(y, x)``)."""
    size = x.shape[0]
    if size == 0:
        return
    out[0] = False
    for i in range(1, size):
        out[i] = (x[i] > y[i]) & (x[i - 1] <= y[i - 1])


def pack_flags_into(
    enter_long: U1, exit_long: U1, enter_short: U1, exit_short: U1, warm: int, out: U1
) -> None:
    """`strategy_flags`' bits of four boolean arrays (viewed as bytes, 0 or 1) as long as
    ``out``, rows before ``warm`` zero: one pass, where numpy makes one per array and operation.
    Bytes rather than booleans: numba's booleans in arithmetic cost ~30x more here."""
    n = out.shape[0]
    for i in range(n):
        out[i] = (
            enter_long[i] * ENTER_LONG
            | exit_long[i] * EXIT_LONG
            | enter_short[i] * ENTER_SHORT
            | exit_short[i] * EXIT_SHORT
        )
    for i in range(min(max(warm, 0), n)):
        out[i] = 0


SIGNATURES = {
    "running_sum_into": "i8(f8[::1], f8[::1])",
    "sma_from_sum_into": "void(f8[::1], i8, f8[::1], i8, f8[::1])",
    "crossover_into": "void(f8[::1], f8[::1], b1[::1])",
    "pack_flags_into": "void(u1[::1], u1[::1], u1[::1], u1[::1], i8, u1[::1])",
}
"""What the compiled module exports, by name: the one signature each is compiled for."""

TWINS = (
    running_sum_into,
    sma_from_sum_into,
    crossover_into,
    pack_flags_into,
)
