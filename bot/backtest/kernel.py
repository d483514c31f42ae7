"""The backtest's inner loop: sessions, positions and the RiskGate over aligned candle arrays.

Plain Python over numpy arrays and scalars so numba can compile it unchanged (`bot.backtest.
compiled` does, binding the names below to ``numba.njit`` wrappers of the very functions the live
path calls): the money math is `session_model`'s scalar core and the veto rules are
`risk.allows_open`, never a copy. What this file adds is the bookkeeping the object API keeps in
`SessionState` and the paper executor, replayed with arrays: one slot per asset (the RiskGate
allows one session per asset), positions in open order, the wallet, and the risk clocks.

Order of events, the same as the paper daemon's tick: at each timestamp every asset's bar is
applied first (a pending strategy close fills at the bar's open; else a position may open at the
open, then TP/SL intrabar, stop first, then the time stop), then every strategy looks at the row
that just closed (strategy-major, asset-minor, like the daemon's slots) and its decisions pass
the RiskGate cumulatively. An accepted open locks the session budget at once; its first position
opens at the next bar's open.

Inputs and outputs are flat float64/int64 arrays with the column layouts below, so the ahead-of-
time compiled module needs one fixed signature. Before each row the loop checks that the output
arrays have room for the most one row can write, so the helpers below just write; when one is
short the run stops with a STATUS_*_FULL code, and the caller grows it and runs again.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bot.engine.risk import allows_open
from bot.market.session_model import (
    EXIT_NONE,
    EXIT_TAKE_PROFIT,
    entry_qty,
    exit_levels,
    fee,
    intrabar_exit,
    settle,
)

F8 = NDArray[np.float64]
I8 = NDArray[np.int64]
U1 = NDArray[np.uint8]

# signal bits, one byte per (row, strategy, asset); rows before warm-up or outside the window
# carry no bits
ENTER_LONG = 1
EXIT_LONG = 2
ENTER_SHORT = 4
EXIT_SHORT = 8

# per-strategy session parameters (sess[s, k])
SP_BUDGET = 0
SP_TP = 1
SP_SL = 2
SP_LEVERAGE = 3
SP_MAX_POSITIONS = 4
SP_DURATION_MS = 5  # 0: no time stop
SP_REENTRY = 6
SP_MAX_WALLET = 7
N_SP = 8

# run parameters (floats)
RP_BALANCE = 0
RP_FEE_RATE = 1
RP_MAX_OPEN = 2
RP_MAX_BUDGET = 3
RP_MAX_TOTAL = 4
RP_DAILY_LOSS = 5
RP_COOLDOWN_S = 6
RP_MIN_FREE = 7
N_RP = 8

# run parameters (ints)
IP_T0 = 0
IP_T1 = 1
IP_INTERVAL_MS = 2
IP_DELAY_MS = 3
IP_SLOTS = 4
N_IP = 5

# trade record columns
TR_ASSET = 0
TR_STRATEGY = 1
TR_SIDE = 2
TR_SESSION = 3
TR_SEQ = 4
TR_ENTRY_TS = 5
TR_ENTRY_PRICE = 6
TR_EXIT_TS = 7
TR_EXIT_PRICE = 8
TR_QTY = 9
TR_MARGIN = 10
TR_GROSS = 11
TR_ENTRY_FEE = 12
TR_EXIT_FEE = 13
TR_REASON = 14
TR_LIQUIDATED = 15
N_TR = 16

# exit reasons (TR_REASON); 1 and 2 are session_model's EXIT_TAKE_PROFIT / EXIT_STOP_LOSS
R_TAKE_PROFIT = 1
R_STOP_LOSS = 2
R_SIGNAL = 3
R_TIME_STOP = 4
R_END = 5

# decision record columns; action +1 open long, -1 open short, 0 close; code = risk reason
DC_TIME = 0
DC_ASSET = 1
DC_STRATEGY = 2
DC_ACTION = 3
DC_CODE = 4
DC_SESSION = 5
N_DC = 6

# session record columns
SE_ASSET = 0
SE_STRATEGY = 1
SE_SIDE = 2
SE_OPENED = 3
SE_CLOSED = 4
SE_BUDGET = 5
SE_NET = 6
SE_FEES = 7
SE_REASON = 8  # R_* of what ended it, 6 completed, 7 budget exhausted
N_SE = 9
R_COMPLETED = 6
R_EXHAUSTED = 7

# counters (out)
CT_TRADES = 0
CT_DECISIONS = 1
CT_IN_MARKET = 2
CT_STATUS = 3
CT_SESSIONS = 4
N_CT = 5
STATUS_OK = 0
STATUS_TRADES_FULL = 1
STATUS_DECISIONS_FULL = 2
STATUS_SESSIONS_FULL = 3

# session state columns (ss[a, k]); one slot per asset
SS_ACTIVE = 0
SS_OWNER = 1
SS_SIDE = 2
SS_BUDGET = 3
SS_CASH = 4
SS_OPENED_AT = 5
SS_ENDS = 6  # -1: no time stop
SS_N_OPENED = 7
SS_ENTRY_PENDING = 8
SS_REENTRY = 9
SS_MAX_POSITIONS = 10
SS_TP = 11
SS_SL = 12
SS_LEVERAGE = 13
SS_REALISED = 14
SS_FEES = 15
SS_EXIT_PENDING = 16
SS_EXIT_AT = 17
SS_ID = 18
SS_N_POS = 19
SS_NOMINAL = 20
N_SS = 21

# open position columns (ps[a, j, k]), j in open order
PS_QTY = 0
PS_ENTRY = 1
PS_ENTRY_FEE = 2
PS_MARGIN = 3
PS_OPENED = 4
PS_TP = 5
PS_SL = 6
PS_SEQ = 7
N_PS = 8

DAY_MS = 86_400_000
DUST = 1e-9  # session_model._DUST: cash below budget * DUST counts as gone


def close_position(
    ss: F8,
    ps: F8,
    a: int,
    j: int,
    price: float,
    ts: float,
    reason: int,
    fee_rate: float,
    trades: F8,
    nt: int,
) -> int:
    """SessionState._close: settle position j of asset a's session, record it as trade ``nt``;
    returns the next trade's index."""
    side = int(ss[a, SS_SIDE])
    qty = ps[a, j, PS_QTY]
    entry = ps[a, j, PS_ENTRY]
    margin = ps[a, j, PS_MARGIN]
    entry_fee = ps[a, j, PS_ENTRY_FEE]
    gross, exit_fee, liquidated = settle(side, qty, entry, price, margin, entry_fee, fee_rate)
    fees = entry_fee + exit_fee
    if liquidated:
        ss[a, SS_CASH] += 0.0
    else:
        ss[a, SS_CASH] += max(0.0, margin + gross - fees)
    ss[a, SS_REALISED] += gross
    ss[a, SS_FEES] += fees
    rec = trades[nt]
    rec[TR_ASSET] = a
    rec[TR_STRATEGY] = ss[a, SS_OWNER]
    rec[TR_SIDE] = side
    rec[TR_SESSION] = ss[a, SS_ID]
    rec[TR_SEQ] = ps[a, j, PS_SEQ]
    rec[TR_ENTRY_TS] = ps[a, j, PS_OPENED]
    rec[TR_ENTRY_PRICE] = entry
    rec[TR_EXIT_TS] = ts
    rec[TR_EXIT_PRICE] = price
    rec[TR_QTY] = qty
    rec[TR_MARGIN] = margin
    rec[TR_GROSS] = gross
    rec[TR_ENTRY_FEE] = entry_fee
    rec[TR_EXIT_FEE] = exit_fee
    rec[TR_REASON] = reason
    rec[TR_LIQUIDATED] = liquidated
    n = int(ss[a, SS_N_POS])
    for k in range(j, n - 1):
        for f in range(N_PS):
            ps[a, k, f] = ps[a, k + 1, f]
    ss[a, SS_N_POS] = n - 1
    return nt + 1


def close_all(
    ss: F8,
    ps: F8,
    a: int,
    price: float,
    ts: float,
    reason: int,
    fee_rate: float,
    trades: F8,
    nt: int,
) -> int:
    """Close every open position of asset a's session at one price, oldest first."""
    while ss[a, SS_N_POS] > 0:
        nt = close_position(ss, ps, a, 0, price, ts, reason, fee_rate, trades, nt)
    return nt


def entry_margin(
    ends: float,
    ts: float,
    n: int,
    max_positions: int,
    reentry: float,
    n_opened: float,
    budget: float,
    cash: float,
) -> tuple[bool, float]:
    """SessionState.open_position's refusals and the new position's margin: (opens, margin).

    The model refuses past the time stop, with every position slot taken, with every position of
    a session without re-entry already used, and when the margin left is dust.
    """
    opens = not (ends >= 0.0 and ts >= ends)
    if opens:
        opens = n < max_positions and not (reentry == 0.0 and n_opened >= max_positions)
    margin = 0.0
    if opens:
        margin = min(budget / max_positions, cash)
        opens = not (margin <= budget * DUST)
    return opens, margin


def add_position(
    ss: F8,
    ps: F8,
    a: int,
    qty: float,
    price: float,
    entry_fee: float,
    margin: float,
    ts: float,
    tp_price: float,
    sl_price: float,
) -> None:
    """SessionState.open_position once accepted: the position in the next slot, its margin paid.

    The numbers come from the caller (`entry_margin`, `entry_qty`, `exit_levels`, `fee`), so the
    one function handed the state arrays cannot raise (no division): only then does numba pass
    them without reference counting, atomic updates that cost ~5 % of a multi-asset run.
    """
    n = int(ss[a, SS_N_POS])
    ss[a, SS_N_OPENED] += 1.0
    ps[a, n, PS_QTY] = qty
    ps[a, n, PS_ENTRY] = price
    ps[a, n, PS_ENTRY_FEE] = entry_fee
    ps[a, n, PS_MARGIN] = margin
    ps[a, n, PS_OPENED] = ts
    ps[a, n, PS_TP] = tp_price
    ps[a, n, PS_SL] = sl_price
    ps[a, n, PS_SEQ] = ss[a, SS_N_OPENED]
    ss[a, SS_CASH] -= margin
    ss[a, SS_N_POS] = n + 1


def session_equity(ss: F8, ps: F8, a: int, price: float, fee_rate: float) -> float:
    """SessionState.equity: cash plus what closing everything at price would return."""
    total = float(ss[a, SS_CASH])
    side = int(ss[a, SS_SIDE])
    for j in range(int(ss[a, SS_N_POS])):
        margin = ps[a, j, PS_MARGIN]
        entry_fee = ps[a, j, PS_ENTRY_FEE]
        gross, exit_fee, _ = settle(
            side, ps[a, j, PS_QTY], ps[a, j, PS_ENTRY], price, margin, entry_fee, fee_rate
        )
        total += max(0.0, margin + gross - entry_fee - exit_fee)
    return total


def full_status(trades_full: bool, decisions_full: bool, sessions_full: bool) -> int:
    """The STATUS_*_FULL code of the first output array short of room, else STATUS_OK."""
    if trades_full:
        return STATUS_TRADES_FULL
    if decisions_full:
        return STATUS_DECISIONS_FULL
    if sessions_full:
        return STATUS_SESSIONS_FULL
    return STATUS_OK


def quiet_rows(sig: U1, t: int, t1: int, equity: F8, wallet: float) -> int:
    """From row t, the rows where no strategy flags anything get the wallet as their equity;
    returns the first row that has a flag (or t1). Only for when no session is open: then such
    a row changes nothing else. A function of its own so its loop stays small and tight."""
    if sig.shape[1] == 1 and sig.shape[2] == 1:
        # one strategy on one asset (the common single-market run): one byte a row
        while t < t1 and sig[t, 0, 0] == 0:
            equity[t] = wallet
            t += 1
        return t
    while t < t1:
        for s in range(sig.shape[1]):
            for a in range(sig.shape[2]):
                if sig[t, s, a] != 0:
                    return t
        equity[t] = wallet
        t += 1
    return t


def run(
    ts: I8,
    o: F8,
    h: F8,
    lo: F8,
    c: F8,
    sig: U1,
    sess: F8,
    rp: F8,
    ip: I8,
    trades: F8,
    decisions: F8,
    sessions: F8,
    equity: F8,
    counts: I8,
) -> int:
    """Run rows [t0, t1) of the aligned market; fills the output arrays, returns the status.

    ``o/h/lo/c`` are (rows, assets) with NaN where an asset has no candle, ``sig`` is (rows,
    strategies, assets): row-major, so one timestamp's data sits together in memory; ``ts``
    holds the rows' open times (ms). An output array without room for one more row's records
    stops the run with a STATUS_*_FULL code: the caller grows it and runs again.
    """
    n_assets = o.shape[1]
    n_strategies = sig.shape[1]
    t0 = ip[IP_T0]
    t1 = ip[IP_T1]
    step = float(ip[IP_INTERVAL_MS])
    delay = float(ip[IP_DELAY_MS])
    fee_rate = rp[RP_FEE_RATE]
    max_open = int(rp[RP_MAX_OPEN])
    max_budget = rp[RP_MAX_BUDGET]
    max_total = rp[RP_MAX_TOTAL]
    daily_loss = rp[RP_DAILY_LOSS]
    cooldown_s = rp[RP_COOLDOWN_S]
    min_free = rp[RP_MIN_FREE]

    slots = max(1, ip[IP_SLOTS])
    ss = np.zeros((n_assets, N_SS))
    ps = np.zeros((n_assets, slots, N_PS))
    # the latest close and close time of each asset with a session (marks, end-of-data closes)
    last_price = np.full(n_assets, math.nan)
    last_seen = np.zeros(n_assets)
    last_close_at = np.full(n_assets, -1.0)
    wallet = rp[RP_BALANCE]
    open_count = 0
    in_use = 0.0
    day = -1.0  # the UTC day (days since the epoch) realised_day belongs to
    realised_day = 0.0
    nt = 0
    nd = 0
    ns = 0
    in_market = 0
    counts[CT_STATUS] = STATUS_OK
    # the most one row writes: a trade per position, a decision per (strategy, asset), a
    # session end per asset; past these counts the next row might not fit
    trades_limit = trades.shape[0] - n_assets * slots
    decisions_limit = decisions.shape[0] - n_strategies * n_assets
    sessions_limit = sessions.shape[0] - n_assets

    t = t0
    while t < t1:
        if open_count == 0:
            # no session anywhere: rows without a flag change nothing but the equity curve
            t = quiet_rows(sig, t, t1, equity, wallet)
            if t == t1:
                break
        status = full_status(nt > trades_limit, nd > decisions_limit, ns > sessions_limit)
        if status != STATUS_OK:
            counts[CT_STATUS] = status
            return status
        bar_open = float(ts[t])
        bar_close = bar_open + step
        holding = False  # a position was open during this bar (exposure)

        # 1. every asset's bar: pending closes at the open, entries at the open, TP/SL, time stop
        for a in range(n_assets):
            op = o[t, a]
            if ss[a, SS_ACTIVE] == 0.0 or math.isnan(op):
                continue
            last_price[a] = c[t, a]
            last_seen[a] = bar_close
            end_reason = 0
            end_at = bar_close + delay
            if ss[a, SS_EXIT_PENDING] != 0.0:
                nt = close_all(ss, ps, a, op, bar_open, R_SIGNAL, fee_rate, trades, nt)
                end_reason = R_SIGNAL
                end_at = ss[a, SS_EXIT_AT]
            else:
                if int(ss[a, SS_N_POS]) < int(ss[a, SS_MAX_POSITIONS]) and (
                    ss[a, SS_ENTRY_PENDING] != 0.0 or ss[a, SS_REENTRY] != 0.0
                ):
                    opens, margin = entry_margin(
                        ss[a, SS_ENDS],
                        bar_open,
                        int(ss[a, SS_N_POS]),
                        int(ss[a, SS_MAX_POSITIONS]),
                        ss[a, SS_REENTRY],
                        ss[a, SS_N_OPENED],
                        ss[a, SS_BUDGET],
                        ss[a, SS_CASH],
                    )
                    if opens:
                        side = int(ss[a, SS_SIDE])
                        leverage = ss[a, SS_LEVERAGE]
                        qty = entry_qty(margin, leverage, op)
                        tp_price, sl_price = exit_levels(
                            op, side, leverage, ss[a, SS_TP], ss[a, SS_SL]
                        )
                        entry_fee = fee(qty * op, fee_rate)
                        add_position(
                            ss, ps, a, qty, op, entry_fee, margin, bar_open, tp_price, sl_price
                        )
                        ss[a, SS_ENTRY_PENDING] = 0.0
                if ss[a, SS_N_POS] > 0.0:
                    holding = True
                side = int(ss[a, SS_SIDE])
                j = 0
                while j < int(ss[a, SS_N_POS]):
                    if ps[a, j, PS_OPENED] > bar_close:
                        j += 1
                        continue
                    code, px = intrabar_exit(
                        side, op, h[t, a], lo[t, a], ps[a, j, PS_TP], ps[a, j, PS_SL]
                    )
                    if code == EXIT_NONE:
                        j += 1
                        continue
                    reason = R_TAKE_PROFIT if code == EXIT_TAKE_PROFIT else R_STOP_LOSS
                    nt = close_position(ss, ps, a, j, px, bar_close, reason, fee_rate, trades, nt)
                ends = ss[a, SS_ENDS]
                if ends >= 0.0 and bar_close >= ends:
                    nt = close_all(ss, ps, a, c[t, a], bar_close, R_TIME_STOP, fee_rate, trades, nt)
                    end_reason = R_TIME_STOP
                elif ss[a, SS_N_POS] == 0.0:
                    budget = ss[a, SS_BUDGET]
                    if ss[a, SS_REENTRY] == 0.0 and ss[a, SS_N_OPENED] >= ss[a, SS_MAX_POSITIONS]:
                        end_reason = R_COMPLETED
                    elif ss[a, SS_CASH] <= budget * DUST:
                        end_reason = R_EXHAUSTED
            if end_reason != 0:
                # the session is over: its cash returns to the wallet, its PnL books today
                net = ss[a, SS_REALISED] - ss[a, SS_FEES]
                wallet += ss[a, SS_CASH]
                open_count -= 1
                in_use -= ss[a, SS_BUDGET]
                d = float(math.floor(end_at / DAY_MS))
                if d != day:
                    day = d
                    realised_day = 0.0
                realised_day += net
                last_close_at[a] = end_at
                ss[a, SS_ACTIVE] = 0.0
                rec = sessions[ns]
                rec[SE_ASSET] = a
                rec[SE_STRATEGY] = ss[a, SS_OWNER]
                rec[SE_SIDE] = ss[a, SS_SIDE]
                rec[SE_OPENED] = ss[a, SS_OPENED_AT]
                rec[SE_CLOSED] = end_at
                rec[SE_BUDGET] = ss[a, SS_BUDGET]
                rec[SE_NET] = net
                rec[SE_FEES] = ss[a, SS_FEES]
                rec[SE_REASON] = end_reason
                ns += 1

        # 2. decisions on the rows that just closed, checked by the RiskGate in order
        now = bar_close + delay
        for s in range(n_strategies):
            for a in range(n_assets):
                flags = sig[t, s, a]
                if flags == 0 or math.isnan(o[t, a]):
                    continue
                active = ss[a, SS_ACTIVE] != 0.0
                if active and int(ss[a, SS_OWNER]) == s:
                    if (flags & (EXIT_LONG | EXIT_SHORT)) != 0 and ss[a, SS_EXIT_PENDING] == 0.0:
                        rec = decisions[nd]
                        rec[DC_TIME] = now
                        rec[DC_ASSET] = a
                        rec[DC_STRATEGY] = s
                        rec[DC_ACTION] = 0
                        rec[DC_CODE] = 0
                        rec[DC_SESSION] = ss[a, SS_ID]
                        nd += 1
                        ss[a, SS_EXIT_PENDING] = 1.0
                        ss[a, SS_EXIT_AT] = now
                    continue
                if (flags & ENTER_LONG) != 0:
                    side = 1
                elif (flags & ENTER_SHORT) != 0:
                    side = -1
                else:
                    continue
                nominal = sess[s, SP_BUDGET]
                today = realised_day if float(math.floor(now / DAY_MS)) == day else 0.0
                since = math.inf if last_close_at[a] < 0.0 else (now - last_close_at[a]) / 1000.0
                code = allows_open(
                    False,
                    False,
                    active,
                    open_count,
                    max_open,
                    nominal,
                    max_budget,
                    in_use,
                    max_total,
                    today,
                    daily_loss,
                    since,
                    cooldown_s,
                    0.0,
                    math.inf,
                    wallet,
                    min_free,
                )
                rec = decisions[nd]
                rec[DC_TIME] = now
                rec[DC_ASSET] = a
                rec[DC_STRATEGY] = s
                rec[DC_ACTION] = side
                rec[DC_CODE] = code
                rec[DC_SESSION] = -1.0
                nd += 1
                if code != 0:
                    continue
                budget = wallet if sess[s, SP_MAX_WALLET] != 0.0 else nominal
                session_id = float(nd - 1)
                rec[DC_SESSION] = session_id
                wallet -= budget
                open_count += 1
                in_use += budget
                ss[a, SS_ACTIVE] = 1.0
                last_price[a] = c[t, a]
                last_seen[a] = bar_close
                ss[a, SS_OWNER] = s
                ss[a, SS_SIDE] = side
                ss[a, SS_BUDGET] = budget
                ss[a, SS_NOMINAL] = nominal
                ss[a, SS_CASH] = budget
                ss[a, SS_OPENED_AT] = now
                duration = sess[s, SP_DURATION_MS]
                ss[a, SS_ENDS] = now + duration if duration > 0.0 else -1.0
                ss[a, SS_N_OPENED] = 0.0
                ss[a, SS_ENTRY_PENDING] = 1.0
                ss[a, SS_REENTRY] = sess[s, SP_REENTRY]
                ss[a, SS_MAX_POSITIONS] = sess[s, SP_MAX_POSITIONS]
                ss[a, SS_TP] = sess[s, SP_TP]
                ss[a, SS_SL] = sess[s, SP_SL]
                ss[a, SS_LEVERAGE] = sess[s, SP_LEVERAGE]
                ss[a, SS_REALISED] = 0.0
                ss[a, SS_FEES] = 0.0
                ss[a, SS_EXIT_PENDING] = 0.0
                ss[a, SS_EXIT_AT] = 0.0
                ss[a, SS_ID] = session_id
                ss[a, SS_N_POS] = 0.0

        # 3. mark to the close: free wallet cash plus what every session would return
        total = wallet
        for a in range(n_assets):
            if ss[a, SS_ACTIVE] != 0.0:
                total += session_equity(ss, ps, a, last_price[a], fee_rate)
        equity[t] = total
        if holding:
            in_market += 1
        t += 1

    # 4. whatever is still open closes at its asset's last close when the data ends
    status = full_status(nt > trades_limit, False, ns > sessions_limit)
    if status != STATUS_OK:
        counts[CT_STATUS] = status
        return status
    for a in range(n_assets):
        if ss[a, SS_ACTIVE] == 0.0:
            continue
        nt = close_all(ss, ps, a, last_price[a], last_seen[a], R_END, fee_rate, trades, nt)
        net = ss[a, SS_REALISED] - ss[a, SS_FEES]
        wallet += ss[a, SS_CASH]
        ss[a, SS_ACTIVE] = 0.0
        rec = sessions[ns]
        rec[SE_ASSET] = a
        rec[SE_STRATEGY] = ss[a, SS_OWNER]
        rec[SE_SIDE] = ss[a, SS_SIDE]
        rec[SE_OPENED] = ss[a, SS_OPENED_AT]
        rec[SE_CLOSED] = last_seen[a]
        rec[SE_BUDGET] = ss[a, SS_BUDGET]
        rec[SE_NET] = net
        rec[SE_FEES] = ss[a, SS_FEES]
        rec[SE_REASON] = R_END
        ns += 1
    if t1 > t0:
        equity[t1 - 1] = wallet

    counts[CT_TRADES] = nt
    counts[CT_DECISIONS] = nd
    counts[CT_SESSIONS] = ns
    counts[CT_IN_MARKET] = in_market
    return STATUS_OK


KERNEL_FUNCTIONS = (
    close_position,
    close_all,
    entry_margin,
    add_position,
    session_equity,
    full_status,
    quiet_rows,
    run,
)
"""Every function of this module the compiled loop needs, in dependency order."""
