"""The venue simulator as a Starlette app: the Alura API and the positions API on one server.

Errors use the backend's NestJS shape `{statusCode, message, error}`. Control endpoints under
`/__sim/` (clock, faults, funding, request log) answer only to loopback clients.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot import __version__, safe_json
from bot.domain import INTERVAL_SECONDS
from bot.sim.accounts import Accounts, AuthFailed, Wallet, normalise_address
from bot.sim.clock import SimClock, ms_to_iso
from bot.sim.faults import FaultConfigError, FaultMiddleware, FaultProfile
from bot.sim.market_feed import MarketFeed
from bot.sim.openapi import openapi_route
from bot.sim.positions_api import market_wire, positions_routes
from bot.sim.positions_venue import PositionsVenue
from bot.sim.venue import TradingVenue, VenueError

MAX_MS = 10**14  # the clock control refuses times past year 5138 (ms_to_iso needs them)
LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}
PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def nest_error(status: int, message: str | list[str]) -> JSONResponse:
    return JSONResponse(
        {"statusCode": status, "message": message, "error": PHRASES.get(status, "Error")},
        status_code=status,
    )


@dataclass
class RequestLog:
    """Recent requests with wall-clock times, so tests can measure how a client paced itself."""

    entries: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50_000))
    in_flight: int = 0
    """Requests being handled right now (a crash harness waits for 0 before it checks)."""

    def add(self, method: str, path: str, status: int, t: float) -> None:
        self.entries.append({"t": t, "method": method, "path": path, "status": status})


@dataclass
class Simulator:
    """Everything the app serves; also what `--state` persists."""

    clock: SimClock
    feed: MarketFeed
    accounts: Accounts
    venue: TradingVenue
    positions: PositionsVenue
    faults: FaultProfile
    agent_key: str
    requests: RequestLog = field(default_factory=RequestLog)
    on_change: Callable[[], None] | None = None
    wall: Callable[[], float] = time.time
    _saved_positions: int = field(default=-1, init=False, repr=False)

    def __post_init__(self) -> None:
        self._saved_positions = self.positions.revision

    @property
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def changed(self) -> None:
        self._saved_positions = self.positions.revision
        if self.on_change is not None:
            self.on_change()

    def positions_touched(self) -> None:
        """After a positions request: save if it moved the venue (reads settle and add markets)."""
        if self.positions.revision != self._saved_positions:
            self.changed()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "clock_ms": self.now_ms,
            "saved_at": self.wall(),
            "clock_paused": self.clock.paused,
            "accounts": self.accounts.to_json(),
            "venue": self.venue.to_json(),
            "positions": json.loads(self.positions.to_json()),
        }

    def load_json(self, data: dict[str, Any]) -> None:
        """Restore a saved venue; an accelerated market kept running while the venue was down.

        State is saved on changes only, so the clock resumes from the save plus the wall time
        since it (at this clock's speed): market time never goes backwards across a restart.
        A restarted venue always runs, even if its clock was paused when it went down.
        """
        clock_ms = int(data["clock_ms"])
        speed = self.clock.speed
        if speed is not None and not data.get("clock_paused", False) and "saved_at" in data:
            clock_ms += int(max(0.0, self.wall() - float(data["saved_at"])) * speed * 1000)
        self.clock.set(clock_ms)
        self.accounts.load_json(data["accounts"])
        self.venue.load_json(data["venue"])
        self.positions = PositionsVenue.from_json(json.dumps(data["positions"]), self.clock)


def agent_key_for(seed: int) -> str:
    """The venue's deterministic agent key: signs close payloads; its address is the trading key."""
    return "0x" + hashlib.sha256(f"alura-sim-agent:{seed}".encode()).hexdigest()


Handler = Callable[[Request], Awaitable[Response]]


def build_app(sim: Simulator) -> Starlette:
    """Routes for every endpoint of both API documents, plus loopback-only `/__sim/` control."""

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            data = safe_json.loads(raw)
        except ValueError:
            raise VenueError(400, "Unexpected token in JSON body: not valid JSON") from None
        if not isinstance(data, dict):
            raise VenueError(400, "Request body must be a JSON object")
        return data

    def public(fn: Callable[[Request], Awaitable[Any]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                result = await fn(request)
            except VenueError as exc:
                return nest_error(exc.status, exc.message)
            except AuthFailed as exc:
                return nest_error(401, str(exc))
            if request.method != "GET":
                sim.changed()
            return result if isinstance(result, Response) else JSONResponse(result)

        return endpoint

    def saving(route: BaseRoute) -> BaseRoute:
        """A positions route that saves the state before answering, if it changed it."""
        assert isinstance(route, Route)
        inner = route.endpoint

        async def endpoint(request: Request) -> Response:
            response: Response = await inner(request)
            sim.positions_touched()
            return response

        endpoint.__name__, endpoint.__doc__ = inner.__name__, inner.__doc__
        return Route(route.path, endpoint, methods=route.methods, name=route.name)

    def authed(fn: Callable[[Request, Wallet], Awaitable[Any]]) -> Handler:
        async def inner(request: Request) -> Any:
            wallet = sim.accounts.authenticate(request.headers.get("authorization"))
            return await fn(request, wallet)

        return public(inner)

    # -- auth ------------------------------------------------------------------------------

    async def challenge(request: Request) -> Any:
        body = await body_of(request)
        try:
            return sim.accounts.challenge(body.get("address"))
        except ValueError as exc:  # the message names the field: "address must be ..."
            raise VenueError(400, [str(exc)]) from None

    async def verify(request: Request) -> Any:
        body = await body_of(request)
        try:
            normalise_address(body.get("address"))
        except ValueError as exc:
            raise VenueError(400, [str(exc)]) from None
        grant = sim.accounts.verify(body.get("address"), body.get("signature"), now_ms=sim.now_ms)
        code = body.get("referralCode")
        wallet = sim.accounts.wallet(body["address"])
        if isinstance(code, str) and wallet.referred_by is None:
            owner = sim.accounts.referral_owner(code)
            if owner is not None and owner != wallet.address:
                wallet.referred_by = owner
        return grant

    async def trading_key(_: Request, wallet: Wallet) -> Any:
        from eth_account import Account

        agent = Account.from_key(sim.agent_key).address
        return {
            "address": agent,
            "agentName": "alura-sim-agent",
            "approved": True,
            "owner": wallet.address,
        }

    # -- trading sessions ---------------------------------------------------------------------

    async def create_quick(request: Request, wallet: Wallet) -> Any:
        return JSONResponse(
            sim.venue.create_quick(wallet, await body_of(request), sim.now_ms), status_code=201
        )

    async def create_advanced(request: Request, wallet: Wallet) -> Any:
        return JSONResponse(
            sim.venue.create_advanced(wallet, await body_of(request), sim.now_ms), status_code=201
        )

    async def active(_: Request, wallet: Wallet) -> Any:
        return sim.venue.active(wallet, sim.now_ms)

    async def current_trade(_: Request, wallet: Wallet) -> Any:
        return sim.venue.current_trade(wallet, sim.now_ms)

    async def session_logs(request: Request, wallet: Wallet) -> Any:
        return sim.venue.session_logs(wallet, request.path_params["session_id"], sim.now_ms)

    def paging(request: Request) -> tuple[int, int]:
        try:
            page = int(request.query_params.get("page", "1"))
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            raise VenueError(400, ["page and limit must be integers"]) from None
        if page < 1 or not 1 <= limit <= 500:
            raise VenueError(400, ["page must be >= 1 and limit between 1 and 500"])
        return page, limit

    async def trade_logs(request: Request, wallet: Wallet) -> Any:
        page, limit = paging(request)
        return sim.venue.trade_logs(
            wallet, request.path_params["trade_id"], page, limit, sim.now_ms
        )

    async def close_position(request: Request, wallet: Wallet) -> Any:
        return sim.venue.close_position(wallet, request.path_params["position_id"], sim.now_ms)

    def sign_payload(payload: dict[str, Any]) -> dict[str, Any]:
        from eth_account import Account
        from eth_account.messages import encode_defunct

        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        signed = Account.sign_message(encode_defunct(text=text), private_key=sim.agent_key)
        return {
            "signature": "0x" + bytes(signed.signature).hex(),
            "signer": Account.from_key(sim.agent_key).address,
        }

    async def close_signature(request: Request, wallet: Wallet) -> Any:
        return sim.venue.close_signature(
            wallet, request.path_params["position_id"], sim.now_ms, sign_payload
        )

    async def close_trade(request: Request, wallet: Wallet) -> Any:
        return sim.venue.close_trade(wallet, request.path_params["trade_id"], sim.now_ms)

    async def trigger_cron(_: Request, __: Wallet) -> Any:
        now = sim.now_ms
        fills = sim.venue.process(now)
        sim.positions.settle(now)
        return {"ok": True, "processedAt": ms_to_iso(now), "fills": fills}

    # -- user ------------------------------------------------------------------------------

    async def profile(_: Request, wallet: Wallet) -> Any:
        sim.venue.process(sim.now_ms)
        return {
            "address": wallet.address,
            "userId": wallet.user_id,
            "usdcBalance": float(wallet.balance),
            "lockedInSessions": float(sim.venue.locked(wallet)),
            "realizedPnl": float(sim.venue.realized(wallet)),
            "referralCodes": wallet.referral_codes,
            "referredBy": wallet.referred_by,
            "createdAt": ms_to_iso(wallet.created_at_ms),
        }

    async def fills_sync(_: Request, wallet: Wallet) -> Any:
        sim.venue.process(sim.now_ms)
        fills = [
            {
                "sessionId": s.id,
                "asset": s.asset,
                "seq": f.seq,
                "side": "long" if f.side > 0 else "short",
                "entryPrice": f.entry_price,
                "exitPrice": f.exit_price,
                "qty": f.qty,
                "reason": f.reason,
                "pnl": round(f.net_pnl, 6),
                "fees": round(f.fees, 6),
                "closedAt": ms_to_iso(f.closed_at_ms),
            }
            for s in sim.venue.sessions.values()
            if s.wallet == wallet.address
            for f in s.state.fills
        ]
        return {"ok": True, "synced": len(fills), "fills": fills}

    def amount_of(body: dict[str, Any]) -> Decimal:
        value = body.get("amount")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise VenueError(400, ["amount must be a positive number"])
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise VenueError(400, ["amount must be a positive number"]) from None
        if not amount.is_finite() or amount <= 0:
            raise VenueError(400, ["amount must be a positive number"])
        return amount

    def debit(wallet: Wallet, amount: Decimal) -> None:
        if amount > wallet.balance:
            raise VenueError(
                400, f"Insufficient balance: need {amount} USDC, available {wallet.balance} USDC"
            )
        wallet.balance -= amount

    async def withdraw(request: Request, wallet: Wallet) -> Any:
        body = await body_of(request)
        amount = amount_of(body)
        debit(wallet, amount)
        wallet.withdrawals.append(
            {
                "amount": str(amount),
                "destination": body.get("destination"),
                "time": ms_to_iso(sim.now_ms),
            }
        )
        return {"ok": True, "amount": float(amount), "balance": float(wallet.balance)}

    async def send_usdc(request: Request, wallet: Wallet) -> Any:
        body = await body_of(request)
        amount = amount_of(body)
        try:
            dest = sim.accounts.wallet(str(body.get("destination")), now_ms=sim.now_ms)
        except ValueError as exc:
            raise VenueError(400, [str(exc).replace("address", "destination", 1)]) from None
        debit(wallet, amount)
        dest.balance += amount
        return {
            "ok": True,
            "amount": float(amount),
            "to": dest.address,
            "balance": float(wallet.balance),
        }

    async def user_close_position(request: Request, wallet: Wallet) -> Any:
        body = await body_of(request)
        return sim.venue.close_by_asset(wallet, body.get("assetIndex"), sim.now_ms)

    async def close_all(_: Request, wallet: Wallet) -> Any:
        return sim.venue.close_all(wallet, sim.now_ms)

    async def claim_reward(_: Request, wallet: Wallet) -> Any:
        referred_fees = sum(
            (
                Decimal(str(round(s.state.fees_paid, 6)))
                for s in sim.venue.sessions.values()
                if sim.accounts.wallets[s.wallet].referred_by == wallet.address
            ),
            Decimal(0),
        )
        due = (referred_fees * Decimal("0.1")).quantize(
            Decimal("0.000001")
        ) - wallet.rewards_claimed
        if due <= 0:
            raise VenueError(400, "No rewards to claim")
        wallet.rewards_claimed += due
        wallet.balance += due
        return {"ok": True, "claimed": float(due), "balance": float(wallet.balance)}

    # -- indicators ------------------------------------------------------------------------

    async def indicators_health(_: Request) -> Any:
        return {"status": "ok", "symbols": len(sim.feed.symbols), "time": ms_to_iso(sim.now_ms)}

    def symbol_of(request: Request) -> str:
        symbol = str(request.path_params["symbol"]).upper()
        if symbol not in sim.feed.symbols:
            raise VenueError(
                404, f"Unknown symbol {symbol}; available: {', '.join(sim.feed.symbols)}"
            )
        return symbol

    def interval_of(value: str) -> str:
        if value not in sim.feed.intervals:
            available = ", ".join(sim.feed.intervals)
            secs = INTERVAL_SECONDS.get(value)
            if secs is not None and secs * 1000 < sim.feed.base_interval_ms:
                raise VenueError(
                    400,
                    [
                        f"interval {value} is finer than the market's {sim.feed.intervals[0]} "
                        f"base candles (a CSV replay serves its files' interval and coarser; "
                        f"replay {value} files for {value} candles); available: {available}"
                    ],
                )
            raise VenueError(400, [f"interval must be one of: {available}"])
        return value

    def limit_of(request: Request, default: int = 200) -> int:
        try:
            limit = int(request.query_params.get("limit", default))
        except ValueError:
            raise VenueError(400, ["limit must be an integer"]) from None
        if not 1 <= limit <= 5000:
            raise VenueError(400, ["limit must be between 1 and 5000"])
        return limit

    async def candles_latest(request: Request) -> Any:
        wanted = request.query_params.get("symbol")
        symbols = [wanted.upper()] if wanted else sim.feed.symbols
        for s in symbols:
            if s not in sim.feed.symbols:
                raise VenueError(404, f"Unknown symbol {s}")
        interval = interval_of(request.query_params.get("interval", sim.feed.intervals[0]))
        now = sim.now_ms  # one moment for every symbol of the answer
        return {s: sim.feed.latest_json(s, interval, now) for s in symbols}

    async def candles_history(request: Request) -> Any:
        symbol = symbol_of(request)
        interval = interval_of(request.query_params.get("interval", "1h"))
        try:
            start = int(request.query_params["start"]) if "start" in request.query_params else None
            end = int(request.query_params["end"]) if "end" in request.query_params else None
        except ValueError:
            raise VenueError(400, ["start and end must be integer milliseconds"]) from None
        return sim.feed.candles_json(
            symbol, interval, sim.now_ms, limit_of(request, 500), start, end
        )

    async def candles_by_interval(request: Request) -> Any:
        symbol = symbol_of(request)
        interval = interval_of(request.path_params["interval"])
        return sim.feed.candles_json(symbol, interval, sim.now_ms, limit_of(request), None, None)

    async def aggregated_symbols(_: Request) -> Any:
        return {
            "symbols": [
                {
                    "symbol": s,
                    "assetIndex": sim.venue.asset_index(s),
                    "intervals": sim.feed.intervals,
                }
                for s in sim.feed.symbols
            ]
        }

    async def signal_one(request: Request) -> Any:
        symbol = symbol_of(request)
        return sim.feed.signal_json(
            symbol, interval_of(request.path_params["interval"]), sim.now_ms
        )

    async def signals_all(request: Request) -> Any:
        interval = interval_of(request.path_params["interval"])
        now = sim.now_ms  # one moment for the answer and every item in it
        return {
            "interval": interval,
            "time": ms_to_iso(now),
            "signals": [sim.feed.signal_json(s, interval, now) for s in sim.feed.symbols],
        }

    # -- leaderboard, referrals, usdc ------------------------------------------------------

    def rankings() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {
                "userId": w.user_id,
                "address": w.address,
                "realizedPnl": float(sim.venue.realized(w)),
                "sessions": sum(1 for s in sim.venue.sessions.values() if s.wallet == w.address),
            }
            for w in sim.accounts.wallets.values()
        ]
        rows.sort(key=lambda r: (-r["realizedPnl"], r["userId"]))
        return [{"rank": i + 1, **r} for i, r in enumerate(rows)]

    async def lb_stats(_: Request) -> Any:
        sim.venue.process(sim.now_ms)
        rows = rankings()
        return {
            "users": len(rows),
            "sessions": len(sim.venue.sessions),
            "totalRealizedPnl": round(sum(r["realizedPnl"] for r in rows), 6),
        }

    async def lb_rankings(request: Request) -> Any:
        sim.venue.process(sim.now_ms)
        page, limit = paging(request)
        rows = rankings()
        return {
            "rankings": rows[(page - 1) * limit : page * limit],
            "page": page,
            "limit": limit,
            "total": len(rows),
        }

    async def lb_user(request: Request) -> Any:
        sim.venue.process(sim.now_ms)
        for row in rankings():
            if row["userId"] == request.path_params["user_id"]:
                return row
        raise VenueError(404, "User not found on the leaderboard")

    async def lb_analytics(_: Request) -> Any:
        now = sim.now_ms
        sim.venue.process(now)
        by_asset: dict[str, dict[str, float]] = {}
        for s in sim.venue.sessions.values():
            row = by_asset.setdefault(s.asset, {"sessions": 0, "realizedPnl": 0.0, "fees": 0.0})
            row["sessions"] += 1
            row["realizedPnl"] = round(row["realizedPnl"] + s.state.net_realised, 6)
            row["fees"] = round(row["fees"] + s.state.fees_paid, 6)
        return {"byAsset": by_asset, "time": ms_to_iso(now)}

    async def ok_health(_: Request) -> Any:
        return {"status": "ok"}

    def own_user(wallet: Wallet, user_id: str) -> None:
        if user_id not in (wallet.user_id, wallet.address):
            raise VenueError(403, "You can only access your own referral data")

    async def referral(request: Request, wallet: Wallet) -> Any:
        own_user(wallet, request.path_params["user_id"])
        referred = [
            w.user_id for w in sim.accounts.wallets.values() if w.referred_by == wallet.address
        ]
        return {
            "userId": wallet.user_id,
            "codes": wallet.referral_codes,
            "referredUsers": referred,
            "referredBy": wallet.referred_by,
        }

    async def referral_stats(request: Request, wallet: Wallet) -> Any:
        own_user(wallet, request.path_params["user_id"])
        referred = [w for w in sim.accounts.wallets.values() if w.referred_by == wallet.address]
        return {
            "userId": wallet.user_id,
            "referred": len(referred),
            "rewardsClaimed": float(wallet.rewards_claimed),
        }

    async def referral_code(request: Request, wallet: Wallet) -> Any:
        own_user(wallet, request.path_params["user_id"])
        body = await body_of(request)
        try:
            code = sim.accounts.create_referral_code(wallet, body.get("code"))
        except ValueError as exc:
            raise VenueError(400, str(exc)) from None
        return JSONResponse({"code": code, "userId": wallet.user_id}, status_code=201)

    async def referral_check(request: Request, _: Wallet) -> Any:
        body = await body_of(request)
        code = body.get("code")
        if not isinstance(code, str) or not code:
            raise VenueError(400, ["code must be a non-empty string"])
        owner = sim.accounts.referral_owner(code)
        return {"code": code.upper(), "valid": owner is not None}

    async def usdc_verify(request: Request, wallet: Wallet) -> Any:
        body = await body_of(request)
        tx = body.get("txHash")
        if not (isinstance(tx, str) and tx.startswith("0x") and len(tx) == 66):
            raise VenueError(400, ["txHash must be a 0x-prefixed 32-byte hash"])
        if any(d["txHash"] == tx for w in sim.accounts.wallets.values() for d in w.deposits):
            raise VenueError(400, "Transaction already verified")
        amount = Decimal(100 + int(tx[2:10], 16) % 901)
        wallet.deposits.append({"txHash": tx, "amount": str(amount), "time": ms_to_iso(sim.now_ms)})
        wallet.balance += amount
        return {"ok": True, "txHash": tx, "amount": float(amount), "balance": float(wallet.balance)}

    async def usdc_transactions(_: Request, wallet: Wallet) -> Any:
        return {
            "transactions": [
                {"txHash": d["txHash"], "amount": float(d["amount"]), "time": d["time"]}
                for d in wallet.deposits
            ]
        }

    async def usdc_total(_: Request, wallet: Wallet) -> Any:
        total = sum((Decimal(d["amount"]) for d in wallet.deposits), Decimal(0))
        return {"total": float(total), "count": len(wallet.deposits)}

    # -- control (loopback only) -------------------------------------------------------------

    def loopback(fn: Callable[[Request], Awaitable[Any]]) -> Handler:
        async def inner(request: Request) -> Any:
            host = request.client.host if request.client else ""
            if host not in LOOPBACK:
                raise VenueError(403, "simulator control answers only on loopback")
            return await fn(request)

        return public(inner)

    async def ctl_state(_: Request) -> Any:
        now = sim.now_ms
        sim.venue.process(now)
        return {
            "version": __version__,
            "time": ms_to_iso(now),
            "clockMs": now,
            "speed": sim.clock.speed,
            "wallets": {
                w.address: {
                    "balance": str(w.balance),
                    "locked": str(sim.venue.locked(w)),
                    "realized": str(sim.venue.realized(w)),
                }
                for w in sim.accounts.wallets.values()
            },
            "sessions": [
                sim.venue.session_json(s, now) | {"wallet": s.wallet}
                for s in sim.venue.sessions.values()
            ],
            "faults": sim.faults.to_json(),
            "inFlight": sim.requests.in_flight,
        }

    def clock_ms(body: dict[str, Any], key: str, base: int) -> int:
        """A whole, non-negative number of ms that keeps the clock within ISO-printable years."""
        value = body[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_MS - base:
            raise VenueError(400, [f"{key} must be an integer number of ms, 0 <= t < 1e14"])
        return value

    async def ctl_clock(request: Request) -> Any:
        if request.method == "POST":
            body = await body_of(request)
            if "advance_ms" in body:
                sim.clock.advance(clock_ms(body, "advance_ms", sim.now_ms))
            elif "set_ms" in body:
                sim.clock.set(clock_ms(body, "set_ms", 0))
            if "paused" in body:
                (sim.clock.pause if body["paused"] else sim.clock.resume)()
        now = sim.now_ms
        return {
            "clockMs": now,
            "time": ms_to_iso(now),
            "speed": sim.clock.speed,
            "paused": sim.clock.paused,
        }

    async def ctl_faults(request: Request) -> Any:
        if request.method == "PUT":
            try:
                sim.faults = FaultProfile.from_mapping(
                    await body_of(request), default_seed=sim.faults.seed
                )
            except FaultConfigError as exc:
                raise VenueError(400, str(exc)) from None
        return sim.faults.to_json()

    async def ctl_fund(request: Request) -> Any:
        body = await body_of(request)
        try:
            wallet = sim.accounts.wallet(str(body.get("address")), now_ms=sim.now_ms)
        except ValueError as exc:
            raise VenueError(400, str(exc)) from None
        wallet.balance += amount_of(body)
        return {"address": wallet.address, "balance": str(wallet.balance)}

    async def ctl_requests(request: Request) -> Any:
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError:
            raise VenueError(400, ["since must be a number (wall-clock seconds)"]) from None
        return {"requests": [e for e in sim.requests.entries if e["t"] >= since]}

    async def ctl_markets(request: Request) -> Any:
        """The positions service's markets: how a user finds one to bet on (`?open=true`: only
        those taking bets now)."""
        now = sim.now_ms
        only_open = request.query_params.get("open", "").lower() in ("1", "true", "yes")
        rows = [market_wire(m, now) for m in sim.positions.markets(now)]
        sim.positions_touched()
        return {
            "time": ms_to_iso(now),
            "markets": [r for r in rows if r["open"] or not only_open],
        }

    async def ctl_expire(_: Request) -> Any:
        sim.accounts.expire_all_tokens()
        return {"ok": True}

    G, P = ["GET"], ["POST"]
    routes: list[BaseRoute] = [
        Route("/auth/evm/challenge", public(challenge), methods=P),
        Route("/auth/evm/verify", public(verify), methods=P),
        Route("/auth/evm/trading-key", authed(trading_key), methods=G),
        Route("/trading-sessions", authed(create_quick), methods=P),
        Route("/trading-sessions/advance", authed(create_advanced), methods=P),
        Route("/trading-sessions/active", authed(active), methods=G),
        Route("/trading-sessions/current-trade", authed(current_trade), methods=G),
        Route("/trading-sessions/trigger-cron", authed(trigger_cron), methods=P),
        Route("/trading-sessions/trades/{trade_id}/logs", authed(trade_logs), methods=G),
        Route("/trading-sessions/trades/{trade_id}/close", authed(close_trade), methods=P),
        Route("/trading-sessions/positions/{position_id}/close", authed(close_position), methods=P),
        Route(
            "/trading-sessions/positions/{position_id}/close-signature",
            authed(close_signature),
            methods=P,
        ),
        Route("/trading-sessions/{session_id}/logs", authed(session_logs), methods=G),
        Route("/user/profile", authed(profile), methods=G),
        Route("/user/fills/sync", authed(fills_sync), methods=P),
        Route("/user/withdraw", authed(withdraw), methods=P),
        Route("/user/close-position", authed(user_close_position), methods=P),
        Route("/user/close-all-positions", authed(close_all), methods=P),
        Route("/user/send-usdc", authed(send_usdc), methods=P),
        Route("/user/claim-reward", authed(claim_reward), methods=P),
        Route("/api/indicators/health", public(indicators_health), methods=G),
        Route("/api/indicators/candles/latest", public(candles_latest), methods=G),
        Route("/api/indicators/candles/aggregated/symbols", public(aggregated_symbols), methods=G),
        Route("/api/indicators/candles/history/{symbol}", public(candles_history), methods=G),
        Route(
            "/api/indicators/candles/{symbol}/{interval}", public(candles_by_interval), methods=G
        ),
        Route("/api/indicators/signals/all/{interval}", public(signals_all), methods=G),
        Route("/api/indicators/signals/{symbol}/{interval}", public(signal_one), methods=G),
        Route("/api/leaderboard/stats", public(lb_stats), methods=G),
        Route("/api/leaderboard/rankings", public(lb_rankings), methods=G),
        Route("/api/leaderboard/user/{user_id}", public(lb_user), methods=G),
        Route("/api/leaderboard/analytics", public(lb_analytics), methods=G),
        Route("/api/leaderboard/health", public(ok_health), methods=G),
        Route("/referrals/check", authed(referral_check), methods=P),
        Route("/referrals/{user_id}", authed(referral), methods=G),
        Route("/referrals/{user_id}/stats", authed(referral_stats), methods=G),
        Route("/referrals/{user_id}/code", authed(referral_code), methods=P),
        Route("/usdc-verification/verify", authed(usdc_verify), methods=P),
        Route("/usdc-verification/my-transactions", authed(usdc_transactions), methods=G),
        Route("/usdc-verification/total-deposited", authed(usdc_total), methods=G),
        Route("/health", public(ok_health), methods=G),
        Route("/health/kafka", public(ok_health), methods=G),
        Route("/__sim/state", loopback(ctl_state), methods=G),
        Route("/__sim/clock", loopback(ctl_clock), methods=["GET", "POST"]),
        Route("/__sim/faults", loopback(ctl_faults), methods=["GET", "PUT"]),
        Route("/__sim/fund", loopback(ctl_fund), methods=P),
        Route("/__sim/requests", loopback(ctl_requests), methods=G),
        Route("/__sim/expire-tokens", loopback(ctl_expire), methods=P),
        Route("/__sim/markets", loopback(ctl_markets), methods=G),
        *map(saving, positions_routes(sim.positions)),
    ]
    routes.append(openapi_route(routes))  # GET /openapi.json, built from this table

    async def not_found(request: Request, exc: Exception) -> Response:
        return nest_error(404, f"Cannot {request.method} {request.url.path}")

    async def crashed(request: Request, exc: Exception) -> Response:
        return nest_error(500, "Internal server error")

    app = Starlette(
        routes=routes, exception_handlers={404: not_found, 405: not_found, 500: crashed}
    )
    return app


class RequestLogMiddleware:
    """Outermost layer: records every request (faulted ones too) with its wall-clock time."""

    def __init__(
        self, app: ASGIApp, log: RequestLog, clock: Callable[[], float] = time.time
    ) -> None:
        self.app = app
        self.log = log
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/__sim"):
            await self.app(scope, receive, send)
            return
        t = self.clock()
        logged = False
        self.log.in_flight += 1

        async def capture(message: Any) -> None:
            nonlocal logged
            if message["type"] == "http.response.start" and not logged:
                # recorded before any byte leaves, so a client that got an answer finds it logged
                self.log.add(scope["method"], scope["path"], message["status"], t)
                logged = True
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.log.in_flight -= 1
            if not logged:
                self.log.add(scope["method"], scope["path"], 0, t)


def asgi(sim: Simulator) -> ASGIApp:
    """The full server stack: request log -> faults -> routes."""

    def authenticated(header: str | None) -> bool:
        try:
            sim.accounts.authenticate(header)
        except AuthFailed:
            return False
        return True

    faulted = FaultMiddleware(
        build_app(sim),
        lambda: sim.faults,
        on_token_expiry=sim.accounts.expire_all_tokens,
        authenticated=authenticated,
    )
    return RequestLogMiddleware(faulted, sim.requests)
