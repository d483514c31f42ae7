"""The backtest core against the plain numba loop: warm calls in one process, medians.

The issue's target is "backtest core within 2x of the plain numba loop". Three things are timed,
called alternately (other work on a shared machine moves single timings by 2x), each warm
(compiled and loaded before timing), on inputs prepared before timing:

- core: `bot.backtest.engine.simulate` with its Python wrapper, as the CLI calls it: the whole
  compiled portfolio loop (sessions, RiskGate, equity marked every candle, decision, session and
  trade records) on the strategy's entry/exit flags, computed beforehand (the strategy step, not
  timed here: `strategy_flags`).
- loop: `numba_loop_run.run` as the peer benchmark runs it and the issue quotes it ("its work
  itself"): one asset at a time, its two SMAs computed inside the call, no equity curve, no
  records.
- core with its signal step: the strategy's vectorised SMAs and crosses (`strategy_flags`) and
  then `simulate`, against the loop with its SMAs inside: the like-for-like figure end to end.
  Loading the compiled module routes the strategy's `sma`/`crossover`/`crossunder` through their
  compiled twins, as `alura-bot backtest` does; before timing, the script checks that the flags
  are the same bytes as with numpy's indicators (the code path the live daemon runs).
- signal step: `strategy_flags` alone, so the end-to-end figure's two parts show.
- loop, trading part: the same loop without its SMA passes, given the SMAs computed beforehand:
  the same inputs precomputed as the core's, so this is the like-for-like figure. It is a copy of
  `run` split in two (`smas`, `trade`); the script checks that the two halves give exactly
  `run`'s trades and PnL on every file before timing, so the copy cannot drift unnoticed.

Both loops take each file's columns as strided views of the loaded array, as `run`'s own
benchmark does; every call includes numba's argument checks, as the core includes its wrapper.

    python bench/peers/core_vs_loop.py [--data DIR] [--calls W1=200,W2=100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from backtest_vs_peers import DEFAULT_DATA, workload_files  # noqa: E402
from common import FAST, FEE, SL, SLOW, STAKE, TP  # noqa: E402


@njit(cache=False)
def smas(c, fast_n, slow_n):  # type: ignore[no-untyped-def]
    """`numba_loop_run.run`'s first half, verbatim: its two running-sum SMAs."""
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
    return fast, slow


@njit(cache=False)
def trade(o, h, lo, c, fast, slow, tp, sl, fee, stake):  # type: ignore[no-untyped-def]
    """`numba_loop_run.run`'s second half, verbatim: crosses, fills, TP/SL, fees."""
    n = len(c)
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


def forget_running_sums() -> None:
    """For trees from 4a2b2cf to 68a3a73, measured for comparison: drop the compiled SMA's kept
    running sum (`indicators._running_sum`), untimed, before each call. It served the slow
    average of the close the fast one summed within one backtest, but a timed call repeating
    the last one on the same close would find both sums already made, which no real backtest
    does. Later trees keep no sum between calls (`indicators.smas` shares it within one); on
    those, and on trees without the twins, this changes nothing."""
    from bot.market import indicators

    if hasattr(indicators, "use_compiled"):
        indicators.use_compiled(indicators.compiled_twins())


def alternated_ms(fns: dict[str, Callable[[], None]], calls: int) -> dict[str, float]:
    """Median ms of each function, called in turn ``calls`` times so all see the same machine."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            forget_running_sums()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}


def flags_with_numpy_indicators(strategy: Any, market: Any) -> np.ndarray | None:
    """`strategy_flags` with the compiled indicator twins switched off (None when this tree's
    `bot` has no twins, e.g. an older commit measured for comparison)."""
    from bot.backtest.engine import strategy_flags
    from bot.market import indicators

    if not hasattr(indicators, "use_compiled"):
        return None
    twins = indicators.compiled_twins()
    indicators.use_compiled(None)
    try:
        out: np.ndarray = strategy_flags(strategy, market)
    finally:
        indicators.use_compiled(twins)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--calls", default="W1=200,W2=100")
    args = ap.parse_args()

    from decimal import Decimal

    from numba_loop_run import load, run

    from bot.backtest import compiled
    from bot.backtest.engine import BacktestConfig, Market, session_row, simulate, strategy_flags
    from bot.engine.risk import RiskLimits
    from bot.market.data import load_csv
    from strategies.ema_cross import EmaCross

    big = Decimal(10**9)
    cfg = BacktestConfig(
        balance=10_000.0,
        limits=RiskLimits(
            max_open_sessions=6, cooldown_s=0, daily_loss_limit=big, max_total_budget=big
        ),
        reentry=False,
    )
    compiled.load()
    for item in args.calls.split(","):
        name, calls = item.split("=")
        files = workload_files(args.data, name)
        candles = {}
        for f in files:
            c = load_csv(f)
            candles[c.symbol] = c
        interval = next(iter(candles.values())).interval
        strategy = EmaCross({"fast": FAST, "slow": SLOW, "kind": "sma", "interval": interval})
        market = Market.from_candles(candles)
        flags = strategy_flags(strategy, market)[:, None, :]
        numpy_flags = flags_with_numpy_indicators(strategy, market)
        if numpy_flags is not None and not np.array_equal(flags[:, 0, :], numpy_flags):
            raise SystemExit(f"{name}: the compiled signal step's flags differ from numpy's")
        sessions = np.stack([session_row(strategy, cfg)])
        raw = simulate(market, flags, sessions, cfg)
        cols = [load(str(f)) for f in files]
        averages = [smas(m[:, 4], FAST, SLOW) for m in cols]
        for f, m, (fast, slow) in zip(files, cols, averages, strict=True):
            whole = run(m[:, 1], m[:, 2], m[:, 3], m[:, 4], FAST, SLOW, TP, SL, FEE, STAKE)
            halves = trade(m[:, 1], m[:, 2], m[:, 3], m[:, 4], fast, slow, TP, SL, FEE, STAKE)
            if whole != halves:
                raise SystemExit(f"{f.name}: smas + trade {halves} != run {whole}: update the copy")

        def loop(cols: list[np.ndarray] = cols) -> None:
            for m in cols:
                run(m[:, 1], m[:, 2], m[:, 3], m[:, 4], FAST, SLOW, TP, SL, FEE, STAKE)

        def trading(
            cols: list[np.ndarray] = cols, averages: list[tuple[np.ndarray, np.ndarray]] = averages
        ) -> None:
            for m, (fast, slow) in zip(cols, averages, strict=True):
                trade(m[:, 1], m[:, 2], m[:, 3], m[:, 4], fast, slow, TP, SL, FEE, STAKE)

        def core(
            market: Market = market, flags: np.ndarray = flags, s: np.ndarray = sessions
        ) -> None:
            simulate(market, flags, s, cfg)

        def end_to_end(
            market: Market = market, s: np.ndarray = sessions, strategy: EmaCross = strategy
        ) -> None:
            simulate(market, strategy_flags(strategy, market)[:, None, :], s, cfg)

        def signal_step(market: Market = market, strategy: EmaCross = strategy) -> None:
            strategy_flags(strategy, market)

        ms = alternated_ms(
            {
                "core": core,
                "loop": loop,
                "trading": trading,
                "both": end_to_end,
                "signals": signal_step,
            },
            int(calls),
        )
        print(
            f"{name}: {len(market):,} rows x {len(market.symbols)} assets, {len(raw.trades)} "
            f"trades; core (simulate) {ms['core']:.3f} ms; plain numba loop {ms['loop']:.3f} ms "
            f"(SMAs inside): {ms['core'] / ms['loop']:.2f}x; its trading part "
            f"{ms['trading']:.3f} ms (SMAs given, like the core's flags): "
            f"{ms['core'] / ms['trading']:.2f}x; core with the strategy's own signal step "
            f"{ms['both']:.3f} ms against the loop with its SMAs: {ms['both'] / ms['loop']:.2f}x "
            f"(the signal step alone {ms['signals']:.3f} ms; medians of {calls} warm calls each, "
            f"alternated; load average {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    main()
