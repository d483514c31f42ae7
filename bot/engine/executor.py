"""Executors: where accepted decisions turn into sessions. Live sends them to the venue; paper
simulates every fill with the shared session model over the same candles and sends nothing.

Both answer the same questions (open, close, account state), so the engine cannot tell them apart
and a paper run is a faithful rehearsal of a live one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from bot.api.alura import AluraClient
from bot.api.models import AdvancedSessionRequest, QuickSessionRequest, applied_amounts
from bot.api.positions import Position, PositionsClient
from bot.domain import INTERVAL_SECONDS, AssetRegistry, OpenAdvanced, OpenQuick, Side
from bot.engine.market import MarketSnapshot
from bot.market import session_model as sm

ZERO = Decimal(0)


@dataclass(frozen=True)
class Opened:
    session_id: str
    trade_id: str | None
    budget: Decimal
    raw: dict[str, Any]


@dataclass(frozen=True)
class Closed:
    session_id: str
    realized_pnl: Decimal
    fees: Decimal
    raw: dict[str, Any]


@dataclass(frozen=True)
class VenueSession:
    """An open session as the venue (or the paper book) reports it."""

    session_id: str
    asset: str
    kind: str
    budget: Decimal
    trade_id: str | None
    unrealized_pnl: Decimal
    raw: dict[str, Any]


@dataclass(frozen=True)
class AccountState:
    free_balance: Decimal
    sessions: dict[str, VenueSession]

    @property
    def unrealized_pnl(self) -> Decimal:
        return sum((v.unrealized_pnl for v in self.sessions.values()), Decimal(0))

    @property
    def equity(self) -> Decimal:
        """Free balance + budgets locked in open sessions + their unrealised PnL."""
        locked = sum((v.budget for v in self.sessions.values()), Decimal(0))
        return self.free_balance + locked + self.unrealized_pnl


def open_request(
    decision: OpenQuick | OpenAdvanced, assets: AssetRegistry
) -> QuickSessionRequest | AdvancedSessionRequest:
    """The API request a decision stands for; validated before anything is journaled or sent."""
    index = assets.by_symbol(decision.asset).index
    if isinstance(decision, OpenQuick):
        return QuickSessionRequest(
            budget=decision.budget,
            profit_target=decision.profit_target,
            loss_threshold=decision.loss_threshold,
            max_positions=decision.max_positions,
            asset_index=index,
        )
    return AdvancedSessionRequest(
        amount=decision.amount,
        execution_strategy=decision.execution_strategy,
        strategy_duration=decision.strategy_duration,
        asset_index=index,
        max_wallet_budget=decision.max_wallet_budget,
    )


class Executor(Protocol):
    mode: str
    account_follows_snapshot: bool
    """True when `account` reflects fills `on_snapshot` makes (paper), so it must wait for it;
    the live venue's account does not, and the tick asks for both at once."""

    async def open(
        self, decision: OpenQuick | OpenAdvanced, now_ms: int, interval: str
    ) -> Opened: ...

    async def close(
        self, session_id: str, trade_id: str | None, asset: str, now_ms: int
    ) -> Closed: ...

    async def account(self, now_ms: int) -> AccountState: ...

    async def on_snapshot(self, snapshot: MarketSnapshot) -> list[Closed]: ...

    async def close_position(self, positions: PositionsClient, position_id: int) -> Position | None:
        """Close a user position; None when nothing was sent (paper)."""
        ...


class LiveExecutor:
    """Sends decisions through the AluraClient. Errors propagate; the engine journals them."""

    mode = "live"
    account_follows_snapshot = False

    def __init__(
        self,
        client: AluraClient,
        *,
        balance_max_age_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.balance_max_age_s = balance_max_age_s
        self._monotonic = monotonic
        self._balance: Decimal | None = None
        self._balance_at = 0.0

    @property
    def assets(self) -> AssetRegistry:
        """The client's table: the built-in assets plus any the venue listed at start-up."""
        return self.client.assets

    def invalidate_balance(self) -> None:
        """An open or close changed the balance: read it again on the next account()."""
        self._balance = None

    async def _free_balance(self) -> Decimal:
        """The profile's balance, cached: between refreshes the venue can only have returned
        money (a session it closed), so the cached figure errs on the safe side."""
        now = self._monotonic()
        if self._balance is None or now - self._balance_at > self.balance_max_age_s:
            profile = await self.client.profile()
            self._balance, self._balance_at = profile.usdc_balance or ZERO, now
        return self._balance

    async def open(self, decision: OpenQuick | OpenAdvanced, now_ms: int, interval: str) -> Opened:
        request = open_request(decision, self.client.assets)
        self.invalidate_balance()
        if isinstance(request, QuickSessionRequest):
            session = await self.client.create_quick_session(request)
        else:
            session = await self.client.create_advanced_session(request)
        return Opened(
            session.id,
            session.trade_id,
            session.budget or ZERO,
            session.model_dump(mode="json", by_alias=True),
        )

    async def close(self, session_id: str, trade_id: str | None, asset: str, now_ms: int) -> Closed:
        self.invalidate_balance()
        if trade_id:
            result = await self.client.close_trade(trade_id)
        else:
            result = await self.client.close_position_by_asset(
                self.client.assets.by_symbol(asset).index
            )
        raw = result.model_dump(mode="json")
        endpoint = "/user/close-position"
        if trade_id:
            endpoint = "/trading-sessions/trades/{trade_id}/close"
        realized, fees = applied_amounts(raw, endpoint)
        return Closed(session_id, realized, fees, raw)

    async def close_position(self, positions: PositionsClient, position_id: int) -> Position | None:
        return await positions.close_position(position_id)

    async def account(self, now_ms: int) -> AccountState:
        balance = await self._free_balance()
        active = await self.client.active_sessions()
        sessions = {}
        for s in active.sessions:
            try:
                asset = self.client.assets.by_index(s.asset_index).symbol
            except ValueError:
                asset = f"#{s.asset_index}"
            raw = s.model_dump(mode="json", by_alias=True)
            sessions[s.id] = VenueSession(
                s.id,
                asset,
                s.kind or "quick",
                s.budget or ZERO,
                s.trade_id,
                Decimal(str((s.model_extra or {}).get("unrealizedPnl", 0))),
                raw,
            )
        return AccountState(balance, sessions)

    async def on_snapshot(self, snapshot: MarketSnapshot) -> list[Closed]:
        return []


@dataclass
class PaperSession:
    session_id: str
    asset: str
    side: int
    state: sm.SessionState
    interval: str
    entry_pending: bool = True
    processed_upto_ms: int = 0
    last_price: float = 0.0


@dataclass
class PaperExecutor:
    """Simulated fills from the session model over the live (or replayed) candles.

    Entry happens at the open of the first candle that opens after the decision, TP/SL intrabar,
    stop first — the same rules and the same functions as the backtest and the simulator.
    """

    balance: Decimal
    fees: sm.FeeSchedule = field(default_factory=sm.FeeSchedule)
    sessions: dict[str, PaperSession] = field(default_factory=dict)
    assets: AssetRegistry = field(default_factory=AssetRegistry)
    mode: str = "paper"
    account_follows_snapshot: bool = True

    async def open(self, decision: OpenQuick | OpenAdvanced, now_ms: int, interval: str) -> Opened:
        """Lock the budget now; the first position opens at the open of the next candle."""
        request = open_request(decision, self.assets)
        index = self.assets.by_symbol(decision.asset).index
        if isinstance(decision, OpenQuick):
            spec = sm.quick_spec(
                float(decision.budget),
                float(decision.profit_target),
                float(decision.loss_threshold),
                decision.max_positions,
                index,
                now_ms,
            )
        else:
            spec = sm.advanced_spec(
                float(decision.amount),
                decision.execution_strategy,
                decision.strategy_duration,
                index,
                now_ms,
                free_balance=float(self.balance),
                max_wallet_budget=decision.max_wallet_budget,
            )
        budget = sm.to_decimal(spec.budget)
        if budget > self.balance:
            raise sm.InsufficientBalance(float(budget), float(self.balance))
        self.balance -= budget
        sid = f"paper-{uuid.uuid4().hex[:12]}"
        side = 1 if decision.side is Side.LONG else -1
        step = INTERVAL_SECONDS[interval] * 1000
        self.sessions[sid] = PaperSession(
            sid,
            decision.asset,
            side,
            sm.SessionState(spec, self.fees),
            interval,
            processed_upto_ms=now_ms - now_ms % step,
        )
        return Opened(sid, None, budget, {"id": sid, "request": request.wire(), "paper": True})

    def _finish(self, ps: PaperSession) -> Closed:
        self.balance += sm.to_decimal(ps.state.cash)
        del self.sessions[ps.session_id]
        return Closed(
            ps.session_id,
            sm.to_decimal(ps.state.net_realised),
            sm.to_decimal(ps.state.fees_paid),
            {"paper": True, "reason": ps.state.close_reason},
        )

    async def close(self, session_id: str, trade_id: str | None, asset: str, now_ms: int) -> Closed:
        ps = self.sessions[session_id]
        price = ps.last_price or (ps.state.positions[0].entry_price if ps.state.positions else 0.0)
        if ps.state.is_active:
            if price > 0:
                ps.state.close_session(price, now_ms, "session_close")
            else:
                ps.state.close_session(1.0, now_ms, "session_close")
        return self._finish(ps)

    async def close_position(self, positions: PositionsClient, position_id: int) -> Position | None:
        """Paper mode closes no user position: the positions service has no paper twin."""
        return None

    async def account(self, now_ms: int) -> AccountState:
        out = {}
        for ps in self.sessions.values():
            unreal = (
                ps.state.unrealised(ps.last_price) if ps.state.positions and ps.last_price else 0.0
            )
            out[ps.session_id] = VenueSession(
                ps.session_id,
                ps.asset,
                ps.state.spec.kind,
                sm.to_decimal(ps.state.spec.budget),
                None,
                sm.to_decimal(unreal),
                {"paper": True},
            )
        return AccountState(self.balance, out)

    async def on_snapshot(self, snapshot: MarketSnapshot) -> list[Closed]:
        """Feed newly closed candles to every paper session on the snapshot's interval."""
        closed: list[Closed] = []
        for ps in list(self.sessions.values()):
            candles = snapshot.candles.get(ps.asset)
            if candles is None or candles.interval != ps.interval:
                continue
            step = candles.interval_ms
            for i in range(candles.index_at(ps.processed_upto_ms - 1) + 1, len(candles)):
                t = int(candles.ts[i])
                if t < ps.processed_upto_ms:
                    continue
                o, h, lo, c = (
                    float(candles.open[i]),
                    float(candles.high[i]),
                    float(candles.low[i]),
                    float(candles.close[i]),
                )
                st = ps.state
                if (
                    st.is_active
                    and len(st.positions) < st.spec.max_positions
                    and (ps.entry_pending or st.spec.reentry)
                ):
                    try:
                        st.open_position(ps.side, o, t)
                        ps.entry_pending = False
                    except sm.SessionModelError:
                        pass
                st.on_bar(t + step, o, h, lo, c)
                ps.processed_upto_ms = t + step
                ps.last_price = c
                if not st.is_active:
                    closed.append(self._finish(ps))
                    break
        return closed

    def to_json(self) -> dict[str, Any]:
        return {
            "balance": str(self.balance),
            "sessions": [
                {
                    "session_id": p.session_id,
                    "asset": p.asset,
                    "side": p.side,
                    "interval": p.interval,
                    "entry_pending": p.entry_pending,
                    "processed_upto_ms": p.processed_upto_ms,
                    "last_price": p.last_price,
                    **sm.state_to_json(p.state),
                }
                for p in self.sessions.values()
            ],
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self.balance = Decimal(data["balance"])
        self.sessions = {
            s["session_id"]: PaperSession(
                s["session_id"],
                s["asset"],
                s["side"],
                sm.state_from_json(s, self.fees),
                s["interval"],
                s["entry_pending"],
                s["processed_upto_ms"],
                s["last_price"],
            )
            for s in data["sessions"]
        }
