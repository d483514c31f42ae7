"""AluraClient: one typed method per endpoint of shared/api/alura-backend-api.md.

Methods marked `moves_money` are never retried after they may have reached the server; they
raise `OutcomeUnknown` instead, and the caller reconciles. So does a 2xx answer to one of them
whose body cannot be read: the server accepted something, so it may have been applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot.api.auth import WalletAuth
from bot.api.errors import BadResponse, ClientValidationError, outcome_unknown, preview
from bot.api.models import (
    AdvancedSessionRequest,
    AmountRequest,
    CandleSeries,
    Challenge,
    CurrentTrade,
    Generic,
    Health,
    LogPage,
    Profile,
    QuickSessionRequest,
    SessionList,
    Signal,
    SignalList,
    SymbolList,
    SymbolListing,
    TokenGrant,
    TradingSession,
)
from bot.api.transport import RequestHook, Transport, parse_json
from bot.domain import AssetRegistry
from bot.settings import Settings

M = TypeVar("M", bound=BaseModel)


_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9._:/@-]{0,31}")
MAX_ASSET_INDEX = 2**31  # Hyperliquid's ids (perps, spot 10000+, builder perps 100000+) fit


@dataclass(frozen=True, slots=True)
class AssetRefresh:
    """What `refresh_assets` changed: the symbols it learned, the listings it refused because
    they contradict the table (kept as it was), and how many entries it could not read."""

    added: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> str:
        """One log line for the operator."""
        new = ", ".join(f"{s}={i}" for s, i in self.added.items()) or "none"
        text = f"assets added: {new}"
        if self.conflicts:
            text += f"; ignored as contradicting the table: {'; '.join(self.conflicts)}"
        if self.skipped:
            text += f"; {self.skipped} unreadable entries skipped"
        return text


def _listed_asset(entry: Any) -> tuple[str, int] | None:
    """(SYMBOL, index) of one aggregated-symbols entry, or None when it is not safe to use:
    the index must be a JSON integer (not a bool, a float or a string) within range."""
    if not isinstance(entry, dict):
        return None
    symbol = entry.get("symbol")
    index = next(
        (entry[k] for k in ("assetIndex", "asset_index", "index") if entry.get(k) is not None),
        None,
    )
    if not isinstance(symbol, str) or isinstance(index, bool) or not isinstance(index, int):
        return None
    key = symbol.strip().upper()
    if not _SYMBOL.fullmatch(key) or not 0 <= index < MAX_ASSET_INDEX:
        return None
    return key, index


def _wrap_list(payload: Any, key: str) -> Any:
    """Some endpoints may answer a bare list; normalise to the `{key: [...]}` envelope."""
    return {key: payload} if isinstance(payload, list) else payload


class AluraClient:
    """Typed access to the Alura Trading backend over one shared `Transport`."""

    def __init__(
        self,
        transport: Transport,
        auth: WalletAuth | None = None,
        *,
        assets: AssetRegistry | None = None,
    ) -> None:
        self.transport = transport
        self.auth = auth
        self.assets = assets or AssetRegistry()
        if auth is not None:
            transport.token_provider = auth

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        key: SecretStr | None,
        *,
        hooks: list[RequestHook] | None = None,
        **transport_kw: Any,
    ) -> AluraClient:
        transport = Transport(str(settings.base_url), settings.http, hooks=hooks, **transport_kw)
        auth = (
            WalletAuth(
                key,
                transport,
                refresh_margin_s=settings.auth.refresh_margin_s,
                referral_code=settings.auth.referral_code,
            )
            if key is not None
            else None
        )
        return cls(transport, auth)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> AluraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(
        self,
        model: type[M],
        method: str,
        template: str,
        *,
        path: dict[str, str | int] | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
        auth: bool = True,
        moves_money: bool = False,
        envelope: str | None = None,
    ) -> M:
        resp = await self.transport.request(
            method,
            template,
            path=path,
            params=params,
            json_body=body,
            auth=auth,
            moves_money=moves_money,
        )
        try:
            return self._validated(model, resp, template, method, envelope)
        except BadResponse as exc:
            if not moves_money:
                raise
            raise outcome_unknown(exc) from exc

    @staticmethod
    def _validated(
        model: type[M], resp: httpx.Response, template: str, method: str, envelope: str | None
    ) -> M:
        """The 2xx body as `model`, or BadResponse naming the fields that did not fit."""
        payload = parse_json(resp, endpoint=template)
        if envelope is not None:
            payload = _wrap_list(payload, envelope)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise BadResponse(
                f"unexpected response shape ({where})",
                endpoint=template,
                method=method,
                status=resp.status_code,
                body=preview(resp.text),
            ) from None

    def _check_asset(self, asset_index: int, endpoint: str) -> None:
        if not self.assets.knows_index(asset_index):
            known = ", ".join(
                f"{s}={self.assets.by_symbol(s).index}" for s in self.assets.symbols()
            )
            raise ClientValidationError(
                f"unknown assetIndex {asset_index} (known: {known})", endpoint=endpoint
            )

    # -- auth -------------------------------------------------------------------------------

    async def challenge(self, address: str) -> Challenge:
        return await self._call(
            Challenge, "POST", "/auth/evm/challenge", body={"address": address}, auth=False
        )

    async def verify(
        self, address: str, signature: str, referral_code: str | None = None
    ) -> TokenGrant:
        body = {"address": address, "signature": signature}
        if referral_code:
            body["referralCode"] = referral_code
        return await self._call(TokenGrant, "POST", "/auth/evm/verify", body=body, auth=False)

    async def trading_key(self) -> Generic:
        return await self._call(Generic, "GET", "/auth/evm/trading-key")

    # -- trading sessions -------------------------------------------------------------------

    async def create_quick_session(self, request: QuickSessionRequest) -> TradingSession:
        self._check_asset(request.asset_index, "/trading-sessions")
        return await self._call(
            TradingSession, "POST", "/trading-sessions", body=request.wire(), moves_money=True
        )

    async def create_advanced_session(self, request: AdvancedSessionRequest) -> TradingSession:
        self._check_asset(request.asset_index, "/trading-sessions/advance")
        return await self._call(
            TradingSession,
            "POST",
            "/trading-sessions/advance",
            body=request.wire(),
            moves_money=True,
        )

    async def active_sessions(self) -> SessionList:
        return await self._call(SessionList, "GET", "/trading-sessions/active", envelope="sessions")

    async def current_trade(self) -> CurrentTrade:
        return await self._call(
            CurrentTrade, "GET", "/trading-sessions/current-trade", envelope="trades"
        )

    async def session_logs(self, session_id: str) -> LogPage:
        return await self._call(
            LogPage,
            "GET",
            "/trading-sessions/{session_id}/logs",
            path={"session_id": session_id},
            envelope="logs",
        )

    async def trade_logs(self, trade_id: str, *, page: int = 1, limit: int = 50) -> LogPage:
        if page < 1 or not 1 <= limit <= 500:
            raise ClientValidationError(
                "page must be >= 1 and limit 1..500", endpoint="/trading-sessions/trades/{id}/logs"
            )
        return await self._call(
            LogPage,
            "GET",
            "/trading-sessions/trades/{trade_id}/logs",
            path={"trade_id": trade_id},
            params={"page": page, "limit": limit},
            envelope="logs",
        )

    async def close_position(self, position_id: str) -> Generic:
        return await self._call(
            Generic,
            "POST",
            "/trading-sessions/positions/{position_id}/close",
            path={"position_id": position_id},
            moves_money=True,
        )

    async def close_signature(self, position_id: str) -> Generic:
        return await self._call(
            Generic,
            "POST",
            "/trading-sessions/positions/{position_id}/close-signature",
            path={"position_id": position_id},
        )

    async def close_trade(self, trade_id: str) -> Generic:
        return await self._call(
            Generic,
            "POST",
            "/trading-sessions/trades/{trade_id}/close",
            path={"trade_id": trade_id},
            moves_money=True,
        )

    async def trigger_cron(self) -> Generic:
        """Advance session processing now; it may open or close trades, so it moves money."""
        return await self._call(Generic, "POST", "/trading-sessions/trigger-cron", moves_money=True)

    # -- user -------------------------------------------------------------------------------

    async def profile(self) -> Profile:
        return await self._call(Profile, "GET", "/user/profile")

    async def sync_fills(self) -> Generic:
        return await self._call(Generic, "POST", "/user/fills/sync")

    async def withdraw(self, amount: Decimal, destination: str | None = None) -> Generic:
        body = AmountRequest(amount=amount, destination=destination).wire()
        return await self._call(Generic, "POST", "/user/withdraw", body=body, moves_money=True)

    async def close_position_by_asset(self, asset_index: int) -> Generic:
        self._check_asset(asset_index, "/user/close-position")
        return await self._call(
            Generic,
            "POST",
            "/user/close-position",
            body={"assetIndex": asset_index},
            moves_money=True,
        )

    async def close_all_positions(self) -> Generic:
        return await self._call(Generic, "POST", "/user/close-all-positions", moves_money=True)

    async def send_usdc(self, amount: Decimal, destination: str) -> Generic:
        body = AmountRequest(amount=amount, destination=destination).wire()
        return await self._call(Generic, "POST", "/user/send-usdc", body=body, moves_money=True)

    async def claim_reward(self) -> Generic:
        return await self._call(Generic, "POST", "/user/claim-reward", moves_money=True)

    # -- indicators and market data (public) ------------------------------------------------

    async def indicators_health(self) -> Health:
        return await self._call(Health, "GET", "/api/indicators/health", auth=False)

    async def candles_latest(
        self, symbol: str | None = None, interval: str | None = None
    ) -> Generic:
        """Latest candle per symbol (`{SYMBOL: candle}`), one request for all of them."""
        return await self._call(
            Generic,
            "GET",
            "/api/indicators/candles/latest",
            params={"symbol": symbol, "interval": interval},
            auth=False,
        )

    async def candles_history(
        self,
        symbol: str,
        *,
        interval: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> CandleSeries:
        return await self._call(
            CandleSeries,
            "GET",
            "/api/indicators/candles/history/{symbol}",
            path={"symbol": symbol},
            params={"interval": interval, "start": start_ms, "end": end_ms, "limit": limit},
            auth=False,
            envelope="candles",
        )

    async def candles(
        self, symbol: str, interval: str, *, limit: int | None = None
    ) -> CandleSeries:
        return await self._call(
            CandleSeries,
            "GET",
            "/api/indicators/candles/{symbol}/{interval}",
            path={"symbol": symbol, "interval": interval},
            params={"limit": limit},
            auth=False,
            envelope="candles",
        )

    async def aggregated_symbols(self) -> SymbolList:
        return await self._call(
            SymbolList,
            "GET",
            "/api/indicators/candles/aggregated/symbols",
            auth=False,
            envelope="symbols",
        )

    async def refresh_assets(self) -> AssetRefresh:
        """Learn new listings from the venue, so a new asset needs no code change.

        Safe to call at every start and again later: it only ever adds symbols that are new
        under an index that is new too. A listing that contradicts the table (a known symbol
        under another index, or a known index under another symbol) is reported and ignored,
        because a wrong index would send money to the wrong market; entries without a usable
        symbol or index are skipped. Venue failures raise `ApiError` with the table untouched.
        """
        listing = await self._call(
            SymbolListing,
            "GET",
            "/api/indicators/candles/aggregated/symbols",
            auth=False,
            envelope="symbols",
        )
        added: dict[str, int] = {}
        conflicts: list[str] = []
        skipped = 0
        for entry in listing.symbols:
            listed = _listed_asset(entry)
            if listed is None:
                skipped += 1
                continue
            symbol, index = listed
            if symbol in self.assets.symbols():
                known = self.assets.by_symbol(symbol).index
                if known != index:
                    conflicts.append(f"{symbol} listed as {index}, known as {known}")
            elif self.assets.knows_index(index):
                owner = self.assets.by_index(index).symbol
                conflicts.append(f"{symbol} listed as {index}, which is {owner}")
            else:
                self.assets.extend({symbol: index})
                added[symbol] = index
        return AssetRefresh(added, conflicts, skipped)

    async def signal(self, symbol: str, interval: str) -> Signal:
        return await self._call(
            Signal,
            "GET",
            "/api/indicators/signals/{symbol}/{interval}",
            path={"symbol": symbol, "interval": interval},
            auth=False,
        )

    async def signals_all(self, interval: str) -> SignalList:
        return await self._call(
            SignalList,
            "GET",
            "/api/indicators/signals/all/{interval}",
            path={"interval": interval},
            auth=False,
            envelope="signals",
        )

    # -- leaderboard ------------------------------------------------------------------------

    async def leaderboard_stats(self) -> Generic:
        return await self._call(Generic, "GET", "/api/leaderboard/stats", auth=False)

    async def leaderboard_rankings(self, *, page: int = 1, limit: int = 50) -> Generic:
        return await self._call(
            Generic,
            "GET",
            "/api/leaderboard/rankings",
            params={"page": page, "limit": limit},
            auth=False,
        )

    async def leaderboard_user(self, user_id: str) -> Generic:
        return await self._call(
            Generic, "GET", "/api/leaderboard/user/{user_id}", path={"user_id": user_id}, auth=False
        )

    async def leaderboard_analytics(self) -> Generic:
        return await self._call(Generic, "GET", "/api/leaderboard/analytics", auth=False)

    async def leaderboard_health(self) -> Health:
        return await self._call(Health, "GET", "/api/leaderboard/health", auth=False)

    # -- referrals --------------------------------------------------------------------------

    async def referral(self, user_id: str) -> Generic:
        return await self._call(Generic, "GET", "/referrals/{user_id}", path={"user_id": user_id})

    async def referral_stats(self, user_id: str) -> Generic:
        return await self._call(
            Generic, "GET", "/referrals/{user_id}/stats", path={"user_id": user_id}
        )

    async def create_referral_code(self, user_id: str, code: str | None = None) -> Generic:
        return await self._call(
            Generic,
            "POST",
            "/referrals/{user_id}/code",
            path={"user_id": user_id},
            body={"code": code} if code else {},
        )

    async def check_referral_code(self, code: str) -> Generic:
        return await self._call(Generic, "POST", "/referrals/check", body={"code": code})

    # -- USDC verification ------------------------------------------------------------------

    async def verify_usdc_deposit(self, tx_hash: str) -> Generic:
        return await self._call(
            Generic, "POST", "/usdc-verification/verify", body={"txHash": tx_hash}
        )

    async def my_usdc_transactions(self) -> Generic:
        return await self._call(Generic, "GET", "/usdc-verification/my-transactions")

    async def total_deposited(self) -> Generic:
        return await self._call(Generic, "GET", "/usdc-verification/total-deposited")

    # -- health -----------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self._call(Health, "GET", "/health", auth=False)

    async def kafka_health(self) -> Health:
        return await self._call(Health, "GET", "/health/kafka", auth=False)
