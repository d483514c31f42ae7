"""RiskGate: every opening decision passes these rules, in this order, or is vetoed with a reason.

Rule order for an opening decision (the first failing rule names the veto):

 1. ``paused``                       the kill switch is on
 2. ``asset_has_unresolved_intent``  an intent on the asset awaits reconciliation
 3. ``asset_has_session``            the asset already has an open session (safety rule 3)
 4. ``max_open_sessions``            as many sessions open as allowed
 5. ``budget_per_session``           this session's budget is above the per-session limit
 6. ``total_budget``                 open budgets plus this one would exceed the total limit
 7. ``daily_loss_stop``              today's realised PnL <= -daily_loss_limit
 8. ``cooldown``                     the asset closed a session or failed an open too recently
 9. ``stale_data``                   the newest signal for the asset is too old (or missing)
10. ``min_free_balance``             opening would leave less than the minimum free balance

Hold is never vetoed. Closing reduces risk, so the kill switch and the limits never stop it; only
a second close of the same thing in one tick, or a close on an asset whose last request is still
unresolved, is held back. An advanced session with ``max_wallet_budget`` spends the whole free
balance, so that is its budget for every rule.

The numeric core (`allows_open`) is a pure function over plain numbers that numba can compile,
so the backtester's loop calls the very rules the daemon applies. The daemon passes Decimals
(exact money), the compiled loop floats: one definition, no second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

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

REASONS: dict[int, str] = {
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
# Reasons of verdicts that are not opening vetoes.
HOLD = "hold"
CLOSE = "close"
DUPLICATE_CLOSE = "duplicate_close"

Money = TypeVar("Money", float, Decimal)


def allows_open(
    paused: bool,
    asset_unresolved: bool,
    asset_busy: bool,
    open_count: int,
    max_open: int,
    budget: Money,
    max_budget: Money,
    budget_in_use: Money,
    max_total: Money,
    realized_today: Money,
    daily_loss_limit: Money,
    since_last_close_s: float,
    cooldown_s: float,
    data_age_s: float,
    stale_after_s: float,
    free_balance: Money,
    min_free: Money,
) -> int:
    """The reason code (0 = allowed) of an opening decision; rules in the module's fixed order.

    Money arguments are all Decimal (live, exact) or all float (compiled backtest loop).
    """
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


def data_age_s(signal_time_ms: int | None, interval_ms: int, now_ms: int) -> float:
    """Seconds since the signal's candle closed (`signal_time_ms` is the candle's open time, as
    the backend stamps it); no signal at all counts as infinitely old."""
    if signal_time_ms is None:
        return float("inf")
    return (now_ms - (signal_time_ms + interval_ms)) / 1000


_MONEY_FIELDS = (
    "max_budget_per_session",
    "max_total_budget",
    "daily_loss_limit",
    "min_free_balance",
)
_INT_FIELDS = ("max_open_sessions", "cooldown_s", "stale_after_intervals")


@dataclass(frozen=True)
class RiskLimits:
    """The limits, from config; money fields accept Decimal, int, float or numeric text and are
    stored as Decimal."""

    max_open_sessions: int = 3
    max_budget_per_session: Decimal = Decimal(250)
    max_total_budget: Decimal = Decimal(1000)
    daily_loss_limit: Decimal = Decimal(100)
    cooldown_s: int = 3600
    stale_after_intervals: int = 2
    min_free_balance: Decimal = Decimal(20)
    one_per_asset: bool = True

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in _MONEY_FIELDS:
            value = getattr(self, name)
            try:
                if isinstance(value, bool):
                    raise TypeError
                amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
                if not amount.is_finite():
                    raise InvalidOperation
            except (TypeError, ValueError, InvalidOperation):
                problems.append(f"{name} must be a finite decimal amount, got {value!r}")
                continue
            object.__setattr__(self, name, amount)
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name} must be an integer, got {value!r}")
        if not problems:
            problems = [
                f"{name} {rule}, got {getattr(self, name)!r}"
                for ok, name, rule in (
                    (self.max_open_sessions >= 1, "max_open_sessions", "must be >= 1"),
                    (
                        self.max_budget_per_session >= 10,
                        "max_budget_per_session",
                        "must be >= 10 (the API's minimum budget)",
                    ),
                    (
                        self.max_total_budget >= self.max_budget_per_session,
                        "max_total_budget",
                        "must be >= max_budget_per_session",
                    ),
                    (
                        self.daily_loss_limit > 0,
                        "daily_loss_limit",
                        "must be > 0 (a positive amount: opening stops at -limit)",
                    ),
                    (self.cooldown_s >= 0, "cooldown_s", "must be >= 0"),
                    (self.stale_after_intervals >= 1, "stale_after_intervals", "must be >= 1"),
                    (self.min_free_balance >= 0, "min_free_balance", "must be >= 0"),
                    (
                        self.one_per_asset is True,
                        "one_per_asset",
                        "cannot be turned off: the backend allows one active session per "
                        "asset (safety rule 3)",
                    ),
                )
                if not ok
            ]
        if problems:
            raise ValueError("invalid risk limits: " + "; ".join(problems))


@dataclass(frozen=True)
class Verdict:
    """`reason` is a short stable code (metrics label, journal `veto_reason`); `detail` is for
    humans."""

    accepted: bool
    reason: str
    detail: str = ""


def effective_budget(decision: OpenQuick | OpenAdvanced, free_balance: Decimal) -> Decimal:
    """What the session puts at risk: `max_wallet_budget` spends the whole free balance."""
    if isinstance(decision, OpenQuick):
        return decision.budget
    return free_balance if decision.max_wallet_budget else decision.amount


class RiskGate:
    """Applies `allows_open` to decisions, cumulatively within one tick. Pure: no clock, no I/O."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits

    def check(
        self,
        decision: Decision,
        *,
        account: AccountView,
        now_ms: int,
        signal_time_ms: int | None,
        interval_ms: int,
        pending_assets: set[str],
    ) -> Verdict:
        """One decision on its own (the batch form is what a tick uses)."""
        asset = getattr(decision, "asset", None) or ""
        (verdict,) = self.check_batch(
            [decision],
            account=account,
            now_ms=now_ms,
            signal_times={asset: signal_time_ms},
            interval_ms=interval_ms,
            pending_assets=pending_assets,
        )
        return verdict

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
        """Verdicts in order; each accepted open counts against the limits of the ones after it.

        `signal_times` maps an asset to the open time of the candle its newest signal is about;
        `pending_assets` are assets, and `position:<id>` keys of user positions, with an
        unresolved intent.
        """
        lim = self.limits
        busy = {s.asset for s in account.open_sessions}
        open_count = len(account.open_sessions)
        in_use = sum((s.budget for s in account.open_sessions), Decimal(0))
        free = account.free_balance
        closing: set[str] = set()
        verdicts: list[Verdict] = []
        for d in decisions:
            if isinstance(d, Hold):
                verdicts.append(Verdict(True, HOLD))
                continue
            if isinstance(d, CloseSession | ClosePosition):
                verdicts.append(self._close(d, closing, pending_assets))
                continue
            budget = effective_budget(d, free)
            last = account.last_close_ms.get(d.asset)
            code = allows_open(
                account.paused,
                d.asset in pending_assets,
                d.asset in busy,
                open_count,
                lim.max_open_sessions,
                budget,
                lim.max_budget_per_session,
                in_use,
                lim.max_total_budget,
                account.realized_pnl_today,
                lim.daily_loss_limit,
                float("inf") if last is None else (now_ms - last) / 1000,
                float(lim.cooldown_s),
                data_age_s(signal_times.get(d.asset), interval_ms, now_ms),
                lim.stale_after_intervals * interval_ms / 1000,
                free,
                lim.min_free_balance,
            )
            if code != OK:
                verdicts.append(
                    Verdict(False, REASONS[code], _detail(code, d, budget, lim, account, free))
                )
                continue
            busy.add(d.asset)
            open_count += 1
            in_use += budget
            free -= budget
            verdicts.append(Verdict(True, REASONS[OK]))
        return verdicts

    @staticmethod
    def _close(
        d: CloseSession | ClosePosition, closing: set[str], pending_assets: set[str]
    ) -> Verdict:
        key = f"asset:{d.asset}" if isinstance(d, CloseSession) else f"position:{d.position_id}"
        if key in closing:
            return Verdict(False, DUPLICATE_CLOSE, "a close of it is already in this tick")
        if (d.asset if isinstance(d, CloseSession) else key) in pending_assets:
            what = d.asset if isinstance(d, CloseSession) else f"position {d.position_id}"
            return Verdict(
                False,
                REASONS[UNRESOLVED_INTENT],
                f"{what} has an intent awaiting reconciliation; not closing twice",
            )
        closing.add(key)
        return Verdict(True, CLOSE)


def _detail(
    code: int,
    d: OpenQuick | OpenAdvanced,
    budget: Decimal,
    lim: RiskLimits,
    acc: AccountView,
    free: Decimal,
) -> str:
    return {
        PAUSED: "kill switch is on",
        UNRESOLVED_INTENT: f"{d.asset} has an intent awaiting reconciliation",
        ASSET_HAS_SESSION: f"{d.asset} already has an open session",
        MAX_OPEN_SESSIONS: f"{lim.max_open_sessions} sessions already open",
        BUDGET_PER_SESSION: f"budget {budget} > {lim.max_budget_per_session}",
        TOTAL_BUDGET: f"total budget would exceed {lim.max_total_budget}",
        DAILY_LOSS_STOP: (
            f"today's realised PnL {acc.realized_pnl_today} <= -{lim.daily_loss_limit}"
        ),
        COOLDOWN: f"{d.asset} closed or failed less than {lim.cooldown_s} s ago",
        STALE_DATA: f"newest {d.asset} data older than {lim.stale_after_intervals} intervals",
        MIN_FREE_BALANCE: f"free balance {free} - {budget} < {lim.min_free_balance}",
    }.get(code, "")
