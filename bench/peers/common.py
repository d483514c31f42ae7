"""Shared by the peer runners: read the candle CSVs and print one JSON result line.

Each runner runs in its own virtualenv with only its library installed, so this file uses the
standard library and numpy only (every peer depends on numpy).
"""

from __future__ import annotations

import json
import sys
import time

STARTED = time.perf_counter()
FAST, SLOW = 10, 30
TP, SL = 0.02, 0.01
FEE = 0.00045
STAKE = 100.0


def report(trades: int, pnl: float, backtest_s: float, **extra: object) -> None:
    """The one line the harness reads: trades, net PnL (USDC), backtest-only seconds."""
    line = {"trades": trades, "pnl": pnl, "backtest_s": backtest_s, **extra}
    print("RESULT " + json.dumps(line))
    sys.stdout.flush()
