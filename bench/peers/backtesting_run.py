"""backtesting.py: an SMA cross Strategy, market orders filling at the next open.

sl/tp are absolute prices in backtesting.py, set when the order is placed; the canonical
workload measures them from the fill (the next open), so the runner reads that open from a
precomputed array. FractionalBacktest trades 100 USDC of BTC (fractions of a unit).
"""

from __future__ import annotations

import sys
import time

import backtesting
import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover
from common import FAST, FEE, SL, SLOW, STAKE, TP, report

UNIT = 1e-6


def sma(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n).mean().to_numpy()


files = sys.argv[1:]
frames = {}
for f in files:
    df = pd.read_csv(f)
    df.index = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    frames[f] = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]

t0 = time.perf_counter()
trades = 0
pnl = 0.0
for df in frames.values():
    next_open = df["Open"].shift(-1).to_numpy()

    class SmaCross(Strategy):
        opens = next_open

        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            i = len(self.data) - 1
            if self.position and crossover(self.slow, self.fast):
                self.position.close()
            elif not self.position and crossover(self.fast, self.slow) and i + 1 < len(self.opens):
                o = self.opens[i] * UNIT  # prices are in fractional units inside the backtest
                self.buy(size=int(STAKE / o), sl=o * (1 - SL), tp=o * (1 + TP))

    bt = FractionalBacktest(
        df, SmaCross, cash=1e12, commission=FEE, fractional_unit=UNIT, finalize_trades=True
    )
    stats = bt.run()
    trades += int(stats["# Trades"])
    pnl += float(stats["_trades"]["PnL"].sum())
report(trades, pnl, time.perf_counter() - t0, version=backtesting.__version__)
