"""A slow portfolio loop over session_model's object API (`SessionState`), for cross-checks.

The compiled kernel replays `SessionState` with arrays; this drives real `SessionState` objects
the way the paper executor does (open at the next bar's open while the session may, then
`on_bar`, then the time stop), with the RiskGate's `allows_open`, so any drift between the two
shows up as a different trade list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.backtest.engine import BacktestConfig, Market, session_row
from bot.backtest.kernel import (
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    SP_DURATION_MS,
    SP_MAX_WALLET,
    SP_REENTRY,
)
from bot.engine.risk import allows_open
from bot.market import session_model as sm

DAY = 86_400_000
REASON = {
    "take_profit": 1,
    "stop_loss": 2,
    "session_close": 3,
    "time_stop": 4,
    "manual": 5,
}


@dataclass
class _Slot:
    state: sm.SessionState
    owner: int
    side: int
    session_id: int
    nominal: float
    entry_pending: bool = True
    exit_pending: bool = False
    exit_at: float = 0.0


@dataclass
class OracleResult:
    trades: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)


def run_oracle(
    market: Market, flags: np.ndarray, strategies: list[Any], cfg: BacktestConfig
) -> OracleResult:
    rows = [session_row(s, cfg) for s in strategies]
    step = market.interval_ms
    delay = cfg.decision_delay_ms
    lim = cfg.limits
    fees = cfg.fees
    wallet = cfg.balance
    slots: dict[int, _Slot] = {}
    last_close: dict[int, float] = {}
    booked: list[tuple[float, float]] = []  # (time, net) of closed sessions
    last_price = [math.nan] * len(market.symbols)
    last_seen = [0] * len(market.symbols)
    out = OracleResult()
    t0, t1 = market.window(cfg.start_ms, cfg.end_ms)
    n_decisions = 0

    def record(
        fills: list[sm.Fill], slot: _Slot, a: int, reason_override: int | None = None
    ) -> None:
        for f in fills:
            out.trades.append(
                (
                    a,
                    slot.owner,
                    f.side,
                    slot.session_id,
                    f.seq,
                    f.opened_at_ms,
                    f.entry_price,
                    f.closed_at_ms,
                    f.exit_price,
                    f.qty,
                    f.margin,
                    f.gross_pnl,
                    f.entry_fee,
                    f.exit_fee,
                    reason_override or REASON[f.reason],
                )
            )

    def finish(a: int, at: float) -> None:
        nonlocal wallet
        slot = slots.pop(a)
        wallet += slot.state.cash
        booked.append((at, slot.state.net_realised))
        last_close[a] = at

    for t in range(t0, t1):
        bar_open = int(market.ts[t])
        bar_close = bar_open + step
        for a in range(len(market.symbols)):
            o = market.open[t, a]
            if math.isnan(o):
                continue
            h, lo, c = market.high[t, a], market.low[t, a], market.close[t, a]
            last_price[a] = c
            last_seen[a] = bar_close
            slot = slots.get(a)
            if slot is None:
                continue
            st = slot.state
            if slot.exit_pending:
                fills = st.close_session(o, bar_open, "session_close")
                record(fills, slot, a)
                finish(a, slot.exit_at)
                continue
            if (
                st.is_active
                and len(st.positions) < st.spec.max_positions
                and (slot.entry_pending or st.spec.reentry)
            ):
                try:
                    st.open_position(slot.side, o, bar_open)
                    slot.entry_pending = False
                except sm.SessionModelError:
                    pass
            record(st.on_bar(bar_close, o, h, lo, c), slot, a)
            if not st.is_active:
                finish(a, bar_close + delay)

        now = bar_close + delay
        day = now - now % DAY
        today = sum(net for when, net in booked if day <= when <= now)
        for s, row in enumerate(rows):
            for a in range(len(market.symbols)):
                f = int(flags[t, s, a])
                if f == 0 or math.isnan(market.open[t, a]):
                    continue
                slot = slots.get(a)
                if slot is not None and slot.owner == s:
                    if f & (EXIT_LONG | EXIT_SHORT) and not slot.exit_pending:
                        out.decisions.append((now, a, s, 0, 0))
                        n_decisions += 1
                        slot.exit_pending = True
                        slot.exit_at = now
                    continue
                if f & ENTER_LONG:
                    side = 1
                elif f & ENTER_SHORT:
                    side = -1
                else:
                    continue
                nominal = float(row[0])
                since = (now - last_close[a]) / 1000 if a in last_close else math.inf
                code = allows_open(
                    False,
                    False,
                    slot is not None,
                    len(slots),
                    lim.max_open_sessions,
                    nominal,
                    float(lim.max_budget_per_session),
                    sum(sl.state.spec.budget for sl in slots.values()),
                    float(lim.max_total_budget),
                    today,
                    float(lim.daily_loss_limit),
                    since,
                    float(lim.cooldown_s),
                    0.0,
                    math.inf,
                    wallet,
                    float(lim.min_free_balance),
                )
                out.decisions.append((now, a, s, side, code))
                n_decisions += 1
                if code != 0:
                    continue
                budget = wallet if row[SP_MAX_WALLET] else nominal
                spec = sm.SessionSpec(
                    kind="quick",
                    asset_index=a,
                    budget=budget,
                    tp_pct=float(row[1]),
                    sl_pct=float(row[2]),
                    max_positions=int(row[4]),
                    leverage=float(row[3]),
                    duration_s=int(row[SP_DURATION_MS] // 1000) or None,
                    opened_at_ms=int(now),
                    reentry=bool(row[SP_REENTRY]),
                )
                wallet -= budget
                slots[a] = _Slot(sm.SessionState(spec, fees), s, side, n_decisions - 1, nominal)
        total = wallet + sum(sl.state.equity(last_price[a]) for a, sl in slots.items())
        out.equity.append(total)

    for a in sorted(slots):
        slot = slots[a]
        fills = slot.state.close_session(last_price[a], last_seen[a], "manual")
        record(fills, slot, a, reason_override=5)
        wallet += slot.state.cash
    slots.clear()
    if out.equity:
        out.equity[-1] = wallet
    return out
