"""An independent reference for the canonical workload, in plain Python, sharing no engine code.

Written from the workload's description alone: long-only SMA(10)/SMA(30) cross on the close;
enter at the next candle's open after the fast average crosses above the slow one, leave at the
next open after it crosses below; take profit +2 %, stop loss -1 % of the entry price, checked
intrabar from high/low, the stop first when a candle touches both, a candle opening beyond a level
filling at its open; 0.045 % fee per side on the notional; 100 USDC per trade; one position at a
time and a new entry signal for every trade; a position still open at the end closes at the last
close. No numpy, no session_model, no strategies: only floats and lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

FEE = 0.00045
STAKE = 100.0
TP = 0.02
SL = 0.01


@dataclass(frozen=True)
class RefTrade:
    entry_ms: int
    entry_price: float
    exit_ms: int
    exit_price: float
    reason: str
    net_pnl: float


def sma(values: list[float], n: int) -> list[float | None]:
    out: list[float | None] = [None] * len(values)
    for i in range(n - 1, len(values)):
        out[i] = sum(values[i - n + 1 : i + 1]) / n
    return out


def crosses(fast: list[float | None], slow: list[float | None]) -> tuple[list[bool], list[bool]]:
    up = [False] * len(fast)
    down = [False] * len(fast)
    for i in range(1, len(fast)):
        f0, s0, f1, s1 = fast[i - 1], slow[i - 1], fast[i], slow[i]
        if f0 is None or s0 is None or f1 is None or s1 is None:
            continue
        up[i] = f1 > s1 and f0 <= s0
        down[i] = f1 < s1 and f0 >= s0
    return up, down


def run(
    ts: list[int],
    open_: list[float],
    high: list[float],
    low: list[float],
    close: list[float],
    interval_ms: int,
    fast: int = 10,
    slow: int = 30,
    averages: Callable[[list[float], int], list[float | None]] = sma,
) -> list[RefTrade]:
    """The trades; ``averages`` computes the SMA (plain sums unless a test passes another)."""
    up, down = crosses(averages(close, fast), averages(close, slow))
    trades: list[RefTrade] = []
    pending_entry = False
    pending_exit = False
    holding = False
    entry = qty = tp = sl = 0.0
    entry_ms = 0

    def book(exit_ms: int, price: float, reason: str) -> None:
        net = qty * (price - entry) - qty * entry * FEE - qty * price * FEE
        trades.append(RefTrade(entry_ms, entry, exit_ms, price, reason, net))

    for i in range(len(ts)):
        o, h, lo = open_[i], high[i], low[i]
        end_of_bar = ts[i] + interval_ms
        if pending_exit:
            if holding:
                book(ts[i], o, "exit_signal")
                holding = False
            pending_exit = pending_entry = False
        elif pending_entry:
            pending_entry = False
            holding = True
            entry, entry_ms = o, ts[i]
            qty = STAKE / o
            tp, sl = o * (1 + TP), o * (1 - SL)
        if holding:
            if o <= sl:
                book(end_of_bar, o, "stop_loss")
                holding = False
            elif o >= tp:
                book(end_of_bar, o, "take_profit")
                holding = False
            elif lo <= sl:
                book(end_of_bar, sl, "stop_loss")
                holding = False
            elif h >= tp:
                book(end_of_bar, tp, "take_profit")
                holding = False
        # the decision at this candle's close, for the next open
        if holding or pending_entry:
            if down[i]:
                pending_exit = True
        elif up[i]:
            pending_entry = True
    if holding:
        book(ts[-1] + interval_ms, close[-1], "end_of_data")
    return trades
