"""position_guard: closes what is open when a rule says so, whoever opened it.

Sessions: a time stop (`max_age_h`), a profit target and a stop on unrealised PnL as a percentage
of the session budget, and close-all while the kill switch is on.

User positions (positions API), first matching rule wins:

1. kill switch (`close_all_when_paused`): close every position;
2. time stop (`positions_max_age_h`) since the position's `created_at`;
3. market status change (`close_on_market_change`): the market's status now differs from the one
   first seen for the position (kept in the journal), and the change `first->now` matches one of
   `market_transitions` (`"1->2"`, `"*->4"`; `*` is any status). A position first seen on a market
   that is already live is not a change;
4. take profit / stop loss (`positions_take_profit_pct`, `positions_stop_loss_pct`) on
   `close_pnl`, or `pnl` when the service gives no `close_pnl`, as a percentage of `amount`.

Never reads `payout_expected` (the service computes it inconsistently). Pure: state in, decisions
out.
"""

from __future__ import annotations

import re
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain import ClosePosition, CloseSession, Decision, SessionView
from strategies.base import GuardState, ManagedPosition, PositionManager

HOUR_MS = 3_600_000
_TRANSITION = re.compile(r"^\s*(\*|\d+)\s*->\s*(\*|\d+)\s*$")
Transition = tuple[int | None, int | None]  # None: any status


def parse_transition(text: str) -> Transition:
    """`"1->2"` -> (1, 2), `"*->4"` -> (None, 4); ValueError naming the expected form."""
    match = _TRANSITION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a transition like '1->2' or '*->4'")
    first, now = match.groups()
    return (None if first == "*" else int(first), None if now == "*" else int(now))


class PositionGuardParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_age_h: float | None = Field(default=72, gt=0)
    take_profit_pct: Decimal | None = Field(default=None, gt=0)
    stop_loss_pct: Decimal | None = Field(default=Decimal(5), gt=0)
    close_all_when_paused: bool = True
    positions_take_profit_pct: Decimal | None = Field(default=None, gt=0)
    positions_stop_loss_pct: Decimal | None = Field(default=None, gt=0)
    positions_max_age_h: float | None = Field(default=None, gt=0)
    close_on_market_change: bool = True
    market_transitions: tuple[str, ...] = ("*->*",)

    @field_validator("market_transitions")
    @classmethod
    def _transitions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            parse_transition(text)
        return value

    def transitions(self) -> list[Transition]:
        return [parse_transition(t) for t in self.market_transitions]


def market_change(p: PositionGuardParams, pos: ManagedPosition) -> str | None:
    """The reason to close for a configured change of the market's status, else None.

    The baseline is the status first seen for the position, not "open": a bot started while a
    match is already live must not close every position on it at its first tick.
    """
    first, now = pos.first_market_status, pos.market_status
    if not p.close_on_market_change or first is None or now is None or first == now:
        return None
    for want_first, want_now in p.transitions():
        if want_first in (None, first) and want_now in (None, now):
            return f"market status changed {first} -> {now}"
    return None


def pnl_pct(pos: ManagedPosition) -> Decimal | None:
    """`close_pnl` (else `pnl`) as a percentage of `amount`, exactly; None without a stake."""
    if pos.amount <= 0:
        return None
    pnl = pos.close_pnl if pos.close_pnl is not None else pos.pnl
    return Decimal(pnl) * 100 / Decimal(pos.amount)


class PositionGuard(PositionManager):
    name = "position_guard"
    Params = PositionGuardParams

    @property
    def p(self) -> PositionGuardParams:
        assert isinstance(self.params, PositionGuardParams)
        return self.params

    def manage(self, state: GuardState) -> list[Decision]:
        out: list[Decision] = []
        for s in state.sessions:
            reason = self._session_reason(s, state)
            if reason:
                out.append(CloseSession(strategy=self.name, asset=s.asset, reason=reason))
        for pos in state.positions:
            reason = self._position_reason(pos, state)
            if reason:
                out.append(
                    ClosePosition(
                        strategy=self.name,
                        position_id=pos.position_id,
                        venue="positions",
                        reason=reason,
                    )
                )
        return out

    def _session_reason(self, s: SessionView, state: GuardState) -> str | None:
        p = self.p
        if state.paused and p.close_all_when_paused:
            return "kill switch"
        if p.max_age_h is not None and state.now_ms - s.opened_at_ms >= p.max_age_h * HOUR_MS:
            return f"time stop ({p.max_age_h:g} h)"
        pct = s.unrealized_pnl / s.budget * 100 if s.budget else Decimal(0)
        if p.take_profit_pct is not None and pct >= p.take_profit_pct:
            return f"profit target ({pct:.2f} % >= {p.take_profit_pct} %)"
        if p.stop_loss_pct is not None and pct <= -p.stop_loss_pct:
            return f"adverse move ({pct:.2f} % <= -{p.stop_loss_pct} %)"
        return None

    def _position_reason(self, pos: ManagedPosition, state: GuardState) -> str | None:
        p = self.p
        if state.paused and p.close_all_when_paused:
            return "kill switch"
        if p.positions_max_age_h is not None and (
            state.now_ms - pos.opened_at_ms >= p.positions_max_age_h * HOUR_MS
        ):
            return f"time stop ({p.positions_max_age_h:g} h)"
        changed = market_change(p, pos)
        if changed:
            return changed
        pct = pnl_pct(pos)
        if pct is None:
            return None
        if p.positions_take_profit_pct is not None and pct >= p.positions_take_profit_pct:
            return f"profit target ({pct:.2f} % >= {p.positions_take_profit_pct} %)"
        if p.positions_stop_loss_pct is not None and pct <= -p.positions_stop_loss_pct:
            return f"stop loss ({pct:.2f} % <= -{p.positions_stop_loss_pct} %)"
        return None
