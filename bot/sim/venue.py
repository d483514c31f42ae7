"""The simulated Alura trading venue: sessions, positions, fills and PnL over the market clock.

Money semantics come only from `bot.market.session_model`; this module adds what a venue does
around it: validation with the backend's messages, one active session per asset, wallet balance
checks, session and trade logs, and processing the market bar by bar up to the clock.

Direction: the live API takes no direction, so the venue chooses it like the backend would, from
its own signal for the asset at the bar where a position opens (BUY long, SELL short, NEUTRAL
waits). Entries happen at the open of the first base bar after the session was created.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from bot.domain import DEFAULT_ASSETS
from bot.market import session_model as sm
from bot.sim.accounts import Accounts, Wallet
from bot.sim.clock import ms_to_iso


class VenueError(Exception):
    """Answered with `status` and a NestJS-style body `{statusCode, message, error}`."""

    def __init__(self, status: int, message: str | list[str]) -> None:
        self.status = status
        self.message = message
        super().__init__(message if isinstance(message, str) else "; ".join(message))


class MarketView(Protocol):
    """What the venue needs of the market: base bars, the current price, the signal direction."""

    base_interval_ms: int

    def bars(
        self, symbol: str, after_ms: int, upto_ms: int
    ) -> list[tuple[int, float, float, float, float]]:
        """Base bars (open_ts, o, h, l, c) with open_ts >= after_ms and close time <= upto_ms."""
        ...

    def price(self, symbol: str, now_ms: int) -> float: ...

    def direction(self, symbol: str, ts_ms: int) -> int: ...


@dataclass
class SimSession:
    id: str
    trade_id: str
    wallet: str
    asset: str
    state: sm.SessionState
    created_at_ms: int
    request: dict[str, Any]
    processed_upto_ms: int
    logs: list[dict[str, Any]] = field(default_factory=list)
    settled: bool = False

    @property
    def kind(self) -> str:
        return self.state.spec.kind

    def log(self, ts_ms: int, kind: str, message: str, **data: Any) -> None:
        self.logs.append(
            {
                "time": ms_to_iso(ts_ms),
                "type": kind,
                "message": message,
                "sessionId": self.id,
                **data,
            }
        )


def _decimal(body: dict[str, Any], key: str, *, required: bool) -> Decimal | None:
    value = body.get(key)
    if value is None:
        if required:
            raise VenueError(400, [f"{key} should not be empty", f"{key} must be a number"])
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise VenueError(400, [f"{key} must be a number conforming to the specified constraints"])
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise VenueError(
            400, [f"{key} must be a number conforming to the specified constraints"]
        ) from None
    if not number.is_finite():
        raise VenueError(400, [f"{key} must be a number conforming to the specified constraints"])
    return number


def _asset(body: dict[str, Any], assets: dict[int, str]) -> tuple[int, str]:
    value = body.get("assetIndex")
    if isinstance(value, bool) or not isinstance(value, int):
        raise VenueError(400, ["assetIndex must be an integer number"])
    if value not in assets:
        raise VenueError(400, [f"assetIndex must be a supported asset index (got {value})"])
    return value, assets[value]


def _money(x: float) -> float:
    return float(sm.to_decimal(x))


class TradingVenue:
    """All sessions of all wallets; every method takes the wallet the JWT identified."""

    def __init__(
        self,
        market: MarketView,
        accounts: Accounts,
        *,
        fees: sm.FeeSchedule | None = None,
        presets: dict[Any, sm.AdvancedPreset] | None = None,
        assets: dict[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        self.market = market
        self.accounts = accounts
        self.fees = fees or sm.FeeSchedule()
        self.presets = presets or dict(sm.DEFAULT_PRESETS)
        self.assets = {i: s for s, i in (assets or DEFAULT_ASSETS).items()}
        self.sessions: dict[str, SimSession] = {}
        self._seed = seed
        self._counter = 0

    def asset_index(self, symbol: str) -> int | None:
        return next((i for i, s in self.assets.items() if s == symbol), None)

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"{self._seed}:{self._counter}".encode()).hexdigest()[:10]
        return f"{prefix}{self._counter:06d}-{digest}"

    # -- creation ---------------------------------------------------------------------------

    def _check_duplicate(self, wallet: Wallet, asset_index: int) -> None:
        for s in self.sessions.values():
            if (
                s.wallet == wallet.address
                and s.state.is_active
                and s.state.spec.asset_index == asset_index
            ):
                raise VenueError(
                    400,
                    f"Duplicate asset index: you already have an active trading session for "
                    f"this asset ({s.asset}, session {s.id})",
                )

    def _open(
        self, wallet: Wallet, spec: sm.SessionSpec, asset: str, body: dict[str, Any], now_ms: int
    ) -> dict[str, Any]:
        try:
            budget = sm.to_decimal(spec.budget)
        except ValueError as exc:  # more digits than an amount is written with (1e300)
            raise VenueError(400, [f"budget: {exc}"]) from None
        if budget > wallet.balance:
            raise VenueError(
                400, f"Insufficient balance: need {budget} USDC, available {wallet.balance} USDC"
            )
        wallet.balance -= budget
        sid = self._new_id("s")
        session = SimSession(
            id=sid,
            trade_id="t" + sid[1:],
            wallet=wallet.address,
            asset=asset,
            state=sm.SessionState(spec, self.fees),
            created_at_ms=now_ms,
            request=dict(body),
            processed_upto_ms=now_ms
            - now_ms % self.market.base_interval_ms
            + self.market.base_interval_ms,
        )
        session.log(
            now_ms, "session_opened", f"{spec.kind} session opened on {asset} with {budget} USDC"
        )
        self.sessions[sid] = session
        return self.session_json(session, now_ms)

    def create_quick(self, wallet: Wallet, body: dict[str, Any], now_ms: int) -> dict[str, Any]:
        self.process(now_ms)
        budget = _decimal(body, "budget", required=True)
        target = _decimal(body, "profitTarget", required=True)
        threshold = _decimal(body, "lossThreshold", required=False)
        errors = []
        if budget is not None and budget < 10:
            errors.append("budget must not be less than 10")
        if target is not None and target > 500:
            errors.append("profitTarget must not be greater than 500")
        if target is not None and target <= 0:
            errors.append("profitTarget must be a positive number")
        if threshold is not None and not 0 < threshold <= 100:
            errors.append("lossThreshold must be between 0 and 100")
        max_positions = body.get("maxPositions", 1)
        if (
            isinstance(max_positions, bool)
            or not isinstance(max_positions, int)
            or not 1 <= max_positions <= 50
        ):
            errors.append("maxPositions must be an integer between 1 and 50")
        if errors:
            raise VenueError(400, errors)
        index, asset = _asset(body, self.assets)
        self._check_duplicate(wallet, index)
        assert budget is not None and target is not None
        try:
            spec = sm.quick_spec(
                float(budget),
                float(target),
                None if threshold is None else float(threshold),
                max_positions,
                index,
                now_ms,
            )
        except (ValueError, sm.SessionModelError) as exc:
            raise VenueError(400, str(exc)) from None
        return self._open(wallet, spec, asset, body, now_ms)

    def create_advanced(self, wallet: Wallet, body: dict[str, Any], now_ms: int) -> dict[str, Any]:
        self.process(now_ms)
        errors = []
        amount = _decimal(body, "amount", required=not body.get("maxWalletBudget"))
        if amount is not None and amount < 10:
            errors.append("amount must not be less than 10")
        strategy = body.get("executionStrategy")
        if strategy not in ("Conservative", "Aggressive", "Degen"):
            errors.append(
                "executionStrategy must be one of the following values: "
                "Conservative, Aggressive, Degen"
            )
        duration = body.get("strategyDuration")
        if duration not in ("1D", "3D", "7D", "30D", "90D", "365D"):
            errors.append(
                "strategyDuration must be one of the following values: 1D, 3D, 7D, 30D, 90D, 365D"
            )
        max_wallet = body.get("maxWalletBudget", False)
        if not isinstance(max_wallet, bool):
            errors.append("maxWalletBudget must be a boolean value")
        if errors:
            raise VenueError(400, errors)
        index, asset = _asset(body, self.assets)
        self._check_duplicate(wallet, index)
        try:
            spec = sm.advanced_spec(
                float(amount or 0),
                str(strategy),
                str(duration),
                index,
                now_ms,
                presets=self.presets,
                free_balance=float(wallet.balance),
                max_wallet_budget=max_wallet,
            )
        except sm.InsufficientBalance:
            raise VenueError(
                400, f"Insufficient balance: need {amount} USDC, available {wallet.balance} USDC"
            ) from None
        except (ValueError, sm.SessionModelError) as exc:
            raise VenueError(400, str(exc)) from None
        return self._open(wallet, spec, asset, body, now_ms)

    # -- processing -------------------------------------------------------------------------

    def process(self, now_ms: int) -> int:
        """Advance every active session through the base bars closed by `now_ms`; returns fills."""
        fills = 0
        for session in self.sessions.values():
            if session.state.is_active:
                fills += self._advance(session, now_ms)
        return fills

    def _advance(self, session: SimSession, now_ms: int) -> int:
        state = session.state
        step = self.market.base_interval_ms
        fills = 0
        for open_ts, o, h, low, c in self.market.bars(
            session.asset, session.processed_upto_ms, now_ms
        ):
            close_ts = open_ts + step
            session.processed_upto_ms = close_ts
            if len(state.positions) < state.spec.max_positions:
                side = self.market.direction(session.asset, open_ts)
                if side != 0:
                    try:
                        pos = state.open_position(side, o, open_ts)
                    except sm.SessionModelError:
                        pass
                    else:
                        session.log(
                            open_ts,
                            "position_opened",
                            f"{'long' if side > 0 else 'short'} {pos.qty:.6g} "
                            f"{session.asset} at {o}",
                            positionId=f"{session.id}-p{pos.seq}",
                            side="long" if side > 0 else "short",
                            price=o,
                            qty=pos.qty,
                        )
            for fill in state.on_bar(close_ts, o, h, low, c):
                fills += 1
                session.log(
                    close_ts,
                    "position_closed",
                    f"{fill.reason} at {fill.exit_price:.6g}: pnl {fill.net_pnl:+.4f} USDC",
                    positionId=f"{session.id}-p{fill.seq}",
                    reason=fill.reason,
                    price=fill.exit_price,
                    pnl=_money(fill.net_pnl),
                    fees=_money(fill.fees),
                )
            if not state.is_active:
                break
        if not state.is_active:
            self._settle(session, session.processed_upto_ms)
        return fills

    def _settle(self, session: SimSession, ts_ms: int) -> None:
        """Return what is left of the budget to the wallet, exactly once."""
        if session.settled:
            return
        session.settled = True
        self.accounts.wallets[session.wallet].balance += sm.to_decimal(session.state.cash)
        session.log(
            ts_ms,
            "session_closed",
            f"session closed ({session.state.close_reason}); "
            f"realised {session.state.net_realised:+.4f} USDC",
            reason=session.state.close_reason,
        )

    # -- queries ----------------------------------------------------------------------------

    def _owned(self, wallet: Wallet) -> list[SimSession]:
        return [s for s in self.sessions.values() if s.wallet == wallet.address]

    def session_json(self, s: SimSession, now_ms: int) -> dict[str, Any]:
        st = s.state
        price = self.market.price(s.asset, now_ms)
        return {
            "id": s.id,
            "tradeId": s.trade_id,
            "assetIndex": st.spec.asset_index,
            "asset": s.asset,
            "kind": st.spec.kind,
            "status": st.status,
            "closeReason": st.close_reason,
            "budget": _money(st.spec.budget),
            "leverage": st.spec.leverage,
            "maxPositions": st.spec.max_positions,
            "profitTarget": st.spec.tp_pct,
            "lossThreshold": st.spec.sl_pct,
            "executionStrategy": st.spec.execution_strategy.value
            if st.spec.execution_strategy
            else None,
            "strategyDuration": st.spec.strategy_duration.value
            if st.spec.strategy_duration
            else None,
            "openPositions": len(st.positions),
            "realizedPnl": _money(st.net_realised),
            "unrealizedPnl": _money(st.unrealised(price)) if st.positions else 0.0,
            "feesPaid": _money(st.fees_paid),
            "createdAt": ms_to_iso(s.created_at_ms),
            "closedAt": ms_to_iso(st.closed_at_ms) if st.closed_at_ms else None,
        }

    def active(self, wallet: Wallet, now_ms: int) -> list[dict[str, Any]]:
        self.process(now_ms)
        return [self.session_json(s, now_ms) for s in self._owned(wallet) if s.state.is_active]

    def all_sessions(self, wallet: Wallet, now_ms: int) -> list[dict[str, Any]]:
        self.process(now_ms)
        return [self.session_json(s, now_ms) for s in self._owned(wallet)]

    def current_trade(self, wallet: Wallet, now_ms: int) -> dict[str, Any]:
        self.process(now_ms)
        trades = []
        for s in self._owned(wallet):
            if not s.state.is_active:
                continue
            price = self.market.price(s.asset, now_ms)
            positions = []
            for p in s.state.positions:
                gross, _, _ = sm.settle(
                    p.side, p.qty, p.entry_price, price, p.margin, p.entry_fee, self.fees.rate
                )
                positions.append(
                    {
                        "id": f"{s.id}-p{p.seq}",
                        "assetIndex": s.state.spec.asset_index,
                        "asset": s.asset,
                        "side": "long" if p.side > 0 else "short",
                        "size": p.qty,
                        "entryPrice": p.entry_price,
                        "markPrice": price,
                        "takeProfitPrice": p.tp_price,
                        "stopLossPrice": p.sl_price,
                        "margin": _money(p.margin),
                        "unrealizedPnl": _money(gross),
                        "openedAt": ms_to_iso(p.opened_at_ms),
                    }
                )
            trades.append(
                {
                    "id": s.trade_id,
                    "sessionId": s.id,
                    "assetIndex": s.state.spec.asset_index,
                    "status": "open",
                    "positions": positions,
                }
            )
        return {"trades": trades}

    def find_session(self, wallet: Wallet, session_id: str) -> SimSession:
        s = self.sessions.get(session_id)
        if s is None or s.wallet != wallet.address:
            raise VenueError(404, f"Trading session {session_id} not found")
        return s

    def find_trade(self, wallet: Wallet, trade_id: str) -> SimSession:
        for s in self._owned(wallet):
            if s.trade_id == trade_id:
                return s
        raise VenueError(404, f"Trade {trade_id} not found")

    def session_logs(self, wallet: Wallet, session_id: str, now_ms: int) -> dict[str, Any]:
        self.process(now_ms)
        s = self.find_session(wallet, session_id)
        return {"sessionId": s.id, "logs": list(s.logs)}

    def trade_logs(
        self, wallet: Wallet, trade_id: str, page: int, limit: int, now_ms: int
    ) -> dict[str, Any]:
        self.process(now_ms)
        s = self.find_trade(wallet, trade_id)
        entries = [e for e in s.logs if e["type"].startswith("position")]
        start = (page - 1) * limit
        return {
            "tradeId": trade_id,
            "logs": entries[start : start + limit],
            "page": page,
            "limit": limit,
            "total": len(entries),
            "totalPages": max(1, -(-len(entries) // limit)),
        }

    # -- closing ----------------------------------------------------------------------------

    def _position_index(self, wallet: Wallet, position_id: str) -> tuple[SimSession, int]:
        sid, _, seq = position_id.rpartition("-p")
        s = self.sessions.get(sid)
        if s is not None and s.wallet == wallet.address and seq.isdigit():
            for i, p in enumerate(s.state.positions):
                if p.seq == int(seq):
                    return s, i
        raise VenueError(404, f"Position {position_id} not found or already closed")

    def close_position(self, wallet: Wallet, position_id: str, now_ms: int) -> dict[str, Any]:
        self.process(now_ms)
        s, i = self._position_index(wallet, position_id)
        price = self.market.price(s.asset, now_ms)
        fill = s.state.close_position(i, price, now_ms, "manual")
        s.log(
            now_ms,
            "position_closed",
            f"manual close at {price:.6g}: pnl {fill.net_pnl:+.4f} USDC",
            positionId=position_id,
            reason="manual",
            price=price,
            pnl=_money(fill.net_pnl),
            fees=_money(fill.fees),
        )
        return {
            "ok": True,
            "positionId": position_id,
            "closePrice": price,
            "realizedPnl": _money(fill.net_pnl),
            "fees": _money(fill.fees),
        }

    def close_signature(
        self, wallet: Wallet, position_id: str, now_ms: int, signer: Any
    ) -> dict[str, Any]:
        """A signed reduce-only close for the frontend to submit. The session is processed up
        to now first, so a position TP/SL has already closed is 404, never signed."""
        self.process(now_ms)
        s, i = self._position_index(wallet, position_id)
        p = s.state.positions[i]
        payload = {
            "positionId": position_id,
            "assetIndex": s.state.spec.asset_index,
            "isBuy": p.side < 0,
            "size": p.qty,
            "reduceOnly": True,
            "nonce": now_ms,
        }
        return {"payload": payload, **signer(payload)}

    def close_session(
        self, wallet: Wallet, s: SimSession, now_ms: int, reason: str = "session_close"
    ) -> dict[str, Any]:
        self.process(now_ms)
        if not s.state.is_active:
            raise VenueError(400, f"Trading session {s.id} is already closed")
        price = self.market.price(s.asset, now_ms)
        fills = s.state.close_session(price, now_ms, reason)  # type: ignore[arg-type]
        for fill in fills:
            s.log(
                now_ms,
                "position_closed",
                f"{reason} at {price:.6g}: pnl {fill.net_pnl:+.4f} USDC",
                positionId=f"{s.id}-p{fill.seq}",
                reason=reason,
                price=price,
                pnl=_money(fill.net_pnl),
                fees=_money(fill.fees),
            )
        self._settle(s, now_ms)
        return {
            "ok": True,
            "sessionId": s.id,
            "tradeId": s.trade_id,
            "closedPositions": len(fills),
            "realizedPnl": _money(s.state.net_realised),
            "feesPaid": _money(s.state.fees_paid),
        }

    def close_trade(self, wallet: Wallet, trade_id: str, now_ms: int) -> dict[str, Any]:
        return self.close_session(wallet, self.find_trade(wallet, trade_id), now_ms)

    def close_by_asset(self, wallet: Wallet, asset_index: Any, now_ms: int) -> dict[str, Any]:
        index, _ = _asset({"assetIndex": asset_index}, self.assets)
        for s in self._owned(wallet):
            if s.state.is_active and s.state.spec.asset_index == index:
                return self.close_session(wallet, s, now_ms)
        raise VenueError(404, f"No active session for assetIndex {index}")

    def close_all(self, wallet: Wallet, now_ms: int) -> dict[str, Any]:
        closed = [
            self.close_session(wallet, s, now_ms) for s in self._owned(wallet) if s.state.is_active
        ]
        return {"ok": True, "closedSessions": len(closed), "sessions": closed}

    # -- accounting -------------------------------------------------------------------------

    def locked(self, wallet: Wallet) -> Decimal:
        """Budget of sessions not yet returned to the wallet."""
        return sum(
            (sm.to_decimal(s.state.spec.budget) for s in self._owned(wallet) if not s.settled),
            Decimal(0),
        )

    def realized(self, wallet: Wallet) -> Decimal:
        return sum((sm.to_decimal(s.state.net_realised) for s in self._owned(wallet)), Decimal(0))

    # -- persistence ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "counter": self._counter,
            "sessions": [_session_to_json(s) for s in self.sessions.values()],
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self._counter = data["counter"]
        self.sessions = {s["id"]: _session_from_json(s, self.fees) for s in data["sessions"]}


def _session_to_json(s: SimSession) -> dict[str, Any]:
    return {
        "id": s.id,
        "trade_id": s.trade_id,
        "wallet": s.wallet,
        "asset": s.asset,
        "created_at_ms": s.created_at_ms,
        "request": s.request,
        "processed_upto_ms": s.processed_upto_ms,
        "logs": s.logs,
        "settled": s.settled,
        **sm.state_to_json(s.state),
    }


def _session_from_json(data: dict[str, Any], fees: sm.FeeSchedule) -> SimSession:
    return SimSession(
        id=data["id"],
        trade_id=data["trade_id"],
        wallet=data["wallet"],
        asset=data["asset"],
        state=sm.state_from_json(data, fees),
        created_at_ms=data["created_at_ms"],
        request=data["request"],
        processed_upto_ms=data["processed_upto_ms"],
        logs=data["logs"],
        settled=data["settled"],
    )
