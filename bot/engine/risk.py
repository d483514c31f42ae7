"""RiskGate: every opening decision passes these rules, in this order, or is vetoed with a reason.

The numeric core (`allows_open`) is a pure function over numbers that numba can compile, so the
backtester's loop calls the very same rules the daemon applies. Closing is never vetoed (it
reduces risk), except that nothing is done twice for an asset with an unresolved intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain import (
    AccountView,
    ClosePosition,
    CloseSession,
    Decision,
    Hold,
    OpenAdvanced,
    OpenQuick,
)

OK = 0
PAUSED = 1
UNRESOLVED_INTENT = 2
ASSET_HAS_SESSION = 3
MAX_OPEN_SESSIONS = 4
BUDGET_PER_SESSION = 5
TOTAL_BUDGET = 6
DAILY_LOSS_STOP = 7
COOLDOWN = 8
STALE_DATA = 9
MIN_FREE_BALANCE = 10

REASONS = {
    OK: "ok",
    PAUSED: "paused",
    UNRESOLVED_INTENT: "asset_has_unresolved_intent",
    ASSET_HAS_SESSION: "asset_has_session",
    MAX_OPEN_SESSIONS: "max_open_sessions",
    BUDGET_PER_SESSION: "budget_per_session",
    TOTAL_BUDGET: "total_budget",
    DAILY_LOSS_STOP: "daily_loss_stop",
    COOLDOWN: "cooldown",
    STALE_DATA: "stale_data",
    MIN_FREE_BALANCE: "min_free_balance",
}


def allows_open(
    paused: bool,
    asset_unresolved: bool,
    asset_busy: bool,
    open_count: int,
    max_open: int,
    budget: float,
    max_budget: float,
    budget_in_use: float,
    max_total: float,
    realized_today: float,
    daily_loss_limit: float,
    since_last_close_s: float,
    cooldown_s: float,
    data_age_s: float,
    stale_after_s: float,
    free_balance: float,
    min_free: float,
) -> int:
    """The reason code (0 = allowed) of an opening decision; rules in a fixed order."""
    if paused:
        return PAUSED
    if asset_unresolved:
        return UNRESOLVED_INTENT
    if asset_busy:
        return ASSET_HAS_SESSION
    if open_count >= max_open:
        return MAX_OPEN_SESSIONS
    if budget > max_budget:
        return BUDGET_PER_SESSION
    if budget_in_use + budget > max_total:
        return TOTAL_BUDGET
    if realized_today <= -daily_loss_limit:
        return DAILY_LOSS_STOP
    if since_last_close_s < cooldown_s:
        return COOLDOWN
    if data_age_s > stale_after_s:
        return STALE_DATA
    if free_balance - budget < min_free:
        return MIN_FREE_BALANCE
    return OK


@dataclass(frozen=True)
class RiskLimits:
    max_open_sessions: int = 3
    max_budget_per_session: Decimal = Decimal(250)
    max_total_budget: Decimal = Decimal(1000)
    daily_loss_limit: Decimal = Decimal(100)
    cooldown_s: int = 3600
    stale_after_intervals: int = 2
    min_free_balance: Decimal = Decimal(20)

    def __post_init__(self) -> None:
        problems = []
        if self.max_open_sessions < 1:
            problems.append("max_open_sessions must be >= 1")
        if self.max_budget_per_session < 10:
            problems.append("max_budget_per_session must be >= 10 (the API minimum)")
        if self.max_total_budget < self.max_budget_per_session:
            problems.append("max_total_budget must be >= max_budget_per_session")
        if self.daily_loss_limit <= 0:
            problems.append("daily_loss_limit must be > 0")
        if self.cooldown_s < 0 or self.stale_after_intervals < 1 or self.min_free_balance < 0:
            problems.append("cooldown_s >= 0, stale_after_intervals >= 1, min_free_balance >= 0")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str
    detail: str = ""


def _budget(decision: OpenQuick | OpenAdvanced) -> Decimal:
    return decision.budget if isinstance(decision, OpenQuick) else decision.amount


class RiskGate:
    """Applies `allows_open` to decisions, cumulatively within one tick."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits

    def check_batch(
        self,
        decisions: list[Decision],
        *,
        account: AccountView,
        now_ms: int,
        signal_times: dict[str, int | None],
        interval_ms: int,
        pending_assets: set[str],
    ) -> list[Verdict]:
        lim = self.limits
        busy = {s.asset for s in account.open_sessions}
        open_count = len(account.open_sessions)
        in_use = sum((s.budget for s in account.open_sessions), Decimal(0))
        free = account.free_balance
        closing: set[str] = set()
        verdicts: list[Verdict] = []
        for d in decisions:
            if isinstance(d, Hold):
                verdicts.append(Verdict(True, "hold"))
                continue
            if isinstance(d, CloseSession | ClosePosition):
                key = d.asset if isinstance(d, CloseSession) else f"position:{d.position_id}"
                if key in closing or (isinstance(d, CloseSession) and d.asset in pending_assets):
                    verdicts.append(
                        Verdict(False, "duplicate_close", "a close is already under way for it")
                    )
                    continue
                closing.add(key or "")
                verdicts.append(Verdict(True, "close"))
                continue
            budget = _budget(d)
            signal_time = signal_times.get(d.asset)
            # a signal is about the candle that opened at signal_time; it is fresh until that
            # candle has been closed for stale_after_intervals intervals
            age_s = (
                (now_ms - (signal_time + interval_ms)) / 1000
                if signal_time is not None
                else float("inf")
            )
            last = account.last_close_ms.get(d.asset)
            since = (now_ms - last) / 1000 if last is not None else float("inf")
            code = allows_open(
                account.paused,
                d.asset in pending_assets,
                d.asset in busy,
                open_count,
                lim.max_open_sessions,
                float(budget),
                float(lim.max_budget_per_session),
                float(in_use),
                float(lim.max_total_budget),
                float(account.realized_pnl_today),
                float(lim.daily_loss_limit),
                since,
                float(lim.cooldown_s),
                age_s,
                lim.stale_after_intervals * interval_ms / 1000,
                float(free),
                float(lim.min_free_balance),
            )
            if code != OK:
                verdicts.append(Verdict(False, REASONS[code], _detail(code, d, lim, account)))
                continue
            busy.add(d.asset)
            open_count += 1
            in_use += budget
            free -= budget
            verdicts.append(Verdict(True, "ok"))
        return verdicts


def _detail(code: int, d: OpenQuick | OpenAdvanced, lim: RiskLimits, acc: AccountView) -> str:
    return {
        PAUSED: "kill switch is on",
        UNRESOLVED_INTENT: f"{d.asset} has an intent awaiting reconciliation",
        ASSET_HAS_SESSION: f"{d.asset} already has an open session",
        MAX_OPEN_SESSIONS: f"{lim.max_open_sessions} sessions already open",
        BUDGET_PER_SESSION: f"budget {_budget(d)} > {lim.max_budget_per_session}",
        TOTAL_BUDGET: f"total budget would exceed {lim.max_total_budget}",
        DAILY_LOSS_STOP: (
            f"today's realised PnL {acc.realized_pnl_today} <= -{lim.daily_loss_limit}"
        ),
        COOLDOWN: f"{d.asset} closed or failed less than {lim.cooldown_s} s ago",
        STALE_DATA: f"newest {d.asset} data older than {lim.stale_after_intervals} intervals",
        MIN_FREE_BALANCE: (
            f"free balance {acc.free_balance} - {_budget(d)} < {lim.min_free_balance}"
        ),
    }.get(code, "")
