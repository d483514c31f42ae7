"""vectorbt: Portfolio.from_signals with sl_stop / tp_stop on the canonical workload.

Signals on the close are shifted one candle so the order fills at the next open (price=open);
stops are measured from that fill price and checked against high/low from the entry candle on.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import vectorbt as vbt
from common import FAST, FEE, SL, SLOW, STAKE, TP, report

files = sys.argv[1:]
frames = {f: pd.read_csv(f) for f in files}
t0 = time.perf_counter()
trades = 0
pnl = 0.0
for df in frames.values():
    close = df["close"]
    fast = close.rolling(FAST).mean()
    slow = close.rolling(SLOW).mean()
    up = (fast > slow) & (fast.shift(1) <= slow.shift(1))
    down = (fast < slow) & (fast.shift(1) >= slow.shift(1))
    pf = vbt.Portfolio.from_signals(
        close=close,
        entries=up.shift(1, fill_value=False),
        exits=down.shift(1, fill_value=False),
        price=df["open"],
        open=df["open"],
        high=df["high"],
        low=df["low"],
        sl_stop=SL,
        tp_stop=TP,
        stop_entry_price="fillprice",
        fees=FEE,
        size=STAKE,
        size_type="value",
        init_cash=np.inf,
        freq="1h",
    )
    records = pf.trades.records_readable
    trades += len(records)
    pnl += float(records["PnL"].sum())
report(trades, pnl, time.perf_counter() - t0, version=vbt.__version__)
