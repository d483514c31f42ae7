"""The backtest core against the plain numba loop: warm calls in one process, medians.

The issue's target is "backtest core within 2x of the plain numba loop". The core is
`bot.backtest.engine.simulate`: the whole compiled portfolio loop (sessions, RiskGate, equity
marked every candle, decision and trade records) with its Python wrapper, on flags computed
beforehand. The loop (numba_loop_run.run) does far less: one asset at a time, SMAs included, no
equity curve, no records. Both are called warm (compiled and loaded before timing), alternately.

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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from backtest_vs_peers import DEFAULT_DATA, workload_files  # noqa: E402
from common import FAST, FEE, SL, SLOW, STAKE, TP  # noqa: E402


def paired_ms(a: Callable[[], None], b: Callable[[], None], calls: int) -> tuple[float, float]:
    """Median ms of ``a`` and of ``b``, called alternately so both see the same machine (other
    work on a shared machine moves single timings by 2x)."""
    ta, tb = [], []
    for _ in range(calls):
        t = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t)
    return 1000 * statistics.median(ta), 1000 * statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--calls", default="W1=200,W2=100")
    args = ap.parse_args()

    from decimal import Decimal

    import numpy as np
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
        sessions = np.stack([session_row(strategy, cfg)])
        raw = simulate(market, flags, sessions, cfg)
        cols = [load(str(f)) for f in files]

        def loop(cols: list[np.ndarray] = cols) -> None:
            for m in cols:
                run(m[:, 1], m[:, 2], m[:, 3], m[:, 4], FAST, SLOW, TP, SL, FEE, STAKE)

        def core(
            market: Market = market, flags: np.ndarray = flags, s: np.ndarray = sessions
        ) -> None:
            simulate(market, flags, s, cfg)

        loop()  # compile
        core_ms, loop_ms = paired_ms(core, loop, int(calls))
        print(
            f"{name}: {len(market):,} rows x {len(market.symbols)} assets, {len(raw.trades)} "
            f"trades; core (simulate) {core_ms:.2f} ms, plain numba loop {loop_ms:.2f} ms, "
            f"ratio {core_ms / loop_ms:.2f}x (medians of {calls} warm calls each, alternated; "
            f"load average {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    main()
