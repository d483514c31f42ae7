"""A plain numba loop of the canonical workload: the lower bound the issue compares against.

One function, njit without cache (compiled every run, as a user's own script would be): SMA,
crosses, next-open fills, TP/SL intrabar with the stop first, fees per side. `work_ms` is a
second call, after compilation.
"""

from __future__ import annotations

import sys
import time

import numba
import numpy as np
from common import FAST, FEE, SL, SLOW, STAKE, TP, report
from numba import njit


@njit(cache=False)
def run(o, h, lo, c, fast_n, slow_n, tp, sl, fee, stake):  # type: ignore[no-untyped-def]
    n = len(c)
    fast = np.full(n, np.nan)
    slow = np.full(n, np.nan)
    s = 0.0
    for i in range(n):
        s += c[i]
        if i >= fast_n:
            s -= c[i - fast_n]
        if i >= fast_n - 1:
            fast[i] = s / fast_n
    s = 0.0
    for i in range(n):
        s += c[i]
        if i >= slow_n:
            s -= c[i - slow_n]
        if i >= slow_n - 1:
            slow[i] = s / slow_n
    trades = 0
    pnl = 0.0
    holding = False
    pending_in = False
    pending_out = False
    entry = qty = tpp = slp = 0.0
    for i in range(n):
        if pending_out and holding:
            x = o[i]
            pnl += qty * (x - entry) - qty * entry * fee - qty * x * fee
            trades += 1
            holding = False
        elif pending_in:
            entry = o[i]
            qty = stake / entry
            tpp = entry * (1 + tp)
            slp = entry * (1 - sl)
            holding = True
        pending_in = pending_out = False
        if holding:
            x = -1.0
            if o[i] <= slp or o[i] >= tpp:
                x = o[i]
            elif lo[i] <= slp:
                x = slp
            elif h[i] >= tpp:
                x = tpp
            if x > 0:
                pnl += qty * (x - entry) - qty * entry * fee - qty * x * fee
                trades += 1
                holding = False
        if i > 0 and not np.isnan(slow[i - 1]):
            if holding:
                pending_out = fast[i] < slow[i] and fast[i - 1] >= slow[i - 1]
            else:
                pending_in = fast[i] > slow[i] and fast[i - 1] <= slow[i - 1]
    if holding:
        x = c[n - 1]
        pnl += qty * (x - entry) - qty * entry * fee - qty * x * fee
        trades += 1
    return trades, pnl


def load(path: str) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1)


def main() -> None:
    cols = [load(f) for f in sys.argv[1:]]
    t0 = time.perf_counter()
    trades, pnl = 0, 0.0
    for m in cols:
        k, p = run(m[:, 1], m[:, 2], m[:, 3], m[:, 4], FAST, SLOW, TP, SL, FEE, STAKE)
        trades += k
        pnl += p
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    for m in cols:
        run(m[:, 1], m[:, 2], m[:, 3], m[:, 4], FAST, SLOW, TP, SL, FEE, STAKE)
    work = time.perf_counter() - t1
    report(trades, pnl, first, work_ms=1000 * work, version=numba.__version__)


if __name__ == "__main__":  # bench/peers/core_vs_loop.py imports `run`
    main()
