"""position_guard: closes what is open when a rule says so, whoever opened it.

Sessions: a time stop (`max_age_h`), a profit target and a stop on unrealised PnL as a percentage
of the session budget, and close-all while the kill switch is on. User positions (positions API):
take profit / stop loss on `close_pnl` (else `pnl`) relative to `amount`, a time stop, closing
when the market leaves the open state, and close-all on the kill switch. Never reads
`payout_expected`. Pure: state in, decisions out.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from bot.domain import ClosePosition, CloseSession, Decision
from strategies.base import GuardState, PositionManager

MARKET_OPEN = 1


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


class PositionGuard(PositionManager):
    name = "position_guard"
    Params = PositionGuardParams

    def manage(self, state: GuardState) -> list[Decision]:
        p: PositionGuardParams = self.params  # type: ignore[assignment]
        out: list[Decision] = []
        for s in state.sessions:
            reason = self._session_reason(p, s, state)
            if reason:
                out.append(CloseSession(strategy=self.name, asset=s.asset, reason=reason))
        for pos in state.positions:
            reason = self._position_reason(p, pos, state)
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

    @staticmethod
    def _session_reason(p: PositionGuardParams, s: object, state: GuardState) -> str | None:
        from bot.domain import SessionView

        assert isinstance(s, SessionView)
        if state.paused and p.close_all_when_paused:
            return "kill switch"
        if p.max_age_h is not None and state.now_ms - s.opened_at_ms >= p.max_age_h * 3_600_000:
            return f"time stop ({p.max_age_h:g} h)"
        pct = s.unrealized_pnl / s.budget * 100 if s.budget else Decimal(0)
        if p.take_profit_pct is not None and pct >= p.take_profit_pct:
            return f"profit target ({pct:.2f} % >= {p.take_profit_pct} %)"
        if p.stop_loss_pct is not None and pct <= -p.stop_loss_pct:
            return f"adverse move ({pct:.2f} % <= -{p.stop_loss_pct} %)"
        return None

    @staticmethod
    def _position_reason(p: PositionGuardParams, pos: object, state: GuardState) -> str | None:
        from strategies.base import ManagedPosition

        assert isinstance(pos, ManagedPosition)
        if state.paused and p.close_all_when_paused:
            return "kill switch"
        if p.positions_max_age_h is not None and (
            state.now_ms - pos.opened_at_ms >= p.positions_max_age_h * 3_600_000
        ):
            return f"time stop ({p.positions_max_age_h:g} h)"
        if p.close_on_market_change and pos.market_status not in (None, MARKET_OPEN):
            return f"market status changed to {pos.market_status}"
        if pos.amount > 0:
            pnl = pos.close_pnl if pos.close_pnl is not None else pos.pnl
            pct = Decimal(pnl) / Decimal(pos.amount) * 100
            if p.positions_take_profit_pct is not None and pct >= p.positions_take_profit_pct:
                return f"profit target ({pct:.2f} %)"
            if p.positions_stop_loss_pct is not None and pct <= -p.positions_stop_loss_pct:
                return f"stop loss ({pct:.2f} %)"
        return None
