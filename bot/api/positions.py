"""PositionsClient: the user positions API, proxy layer (`/api/*`) or backend layer (`/api/v1/*`).

The service has no auth and does not check that a wallet owns the position it closes (NOTES.md),
so this client always sends the configured wallet and the CLI/daemon only close positions they
have just listed under it. Amounts are raw integer units, converted to display `Decimal`s exactly.
`payout_expected` is kept for display only; `expected_payout` recomputes it from amount and odds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Context, Decimal
from enum import IntEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from bot.api.errors import BadResponse, ClientValidationError, NotFound, preview
from bot.api.transport import RequestHook, Transport, parse_json
from bot.domain import validate_solana_address

Layer = Literal["proxy", "backend"]
M = TypeVar("M", bound=BaseModel)
MAX_LIMIT = 100


class PositionStatus(IntEnum):
    PLACED = 1
    WON = 2
    LOST = 3
    CANCELLED = 4
    REFUNDED = 5
    EARLY_CLOSED = 6


def _aware(value: Any) -> Any:
    """ISO timestamps as aware datetimes; a naive one is taken as UTC (the service writes UTC)."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def _status(value: Any) -> Any:
    """Known statuses become the enum; an unknown integer stays an int instead of failing."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return PositionStatus(value)
        except ValueError:
            return value
    return value


Timestamp = Annotated[datetime, BeforeValidator(_aware)]
RawInt = Annotated[int, Field(strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class PositionMarket(_Model):
    fixture_id: str | None = None
    home_team: str | None = None
    away_team: str | None = None
    status: int | None = None

    @field_validator("fixture_id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class Position(_Model):
    id: int
    wallet_address: str
    market_address: str
    bet_address: str | None = None
    position_type: Literal["OPEN", "CLOSE"]
    selected_team: int
    amount: RawInt
    multiplier_bps: RawInt
    odds_home_bps: RawInt | None = None
    odds_away_bps: RawInt | None = None
    payout_expected: RawInt
    status: Annotated[PositionStatus | int, BeforeValidator(_status)]
    is_claimed: bool = False
    pnl: RawInt = 0
    fee_paid: RawInt = 0
    close_price: RawInt | None = None
    close_pnl: RawInt | None = None
    timestamp: Timestamp
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None = None
    transaction_signature: str | None = None
    confirmation_status: str = "confirmed"
    market: PositionMarket | None = None

    @property
    def is_open(self) -> bool:
        return self.status == PositionStatus.PLACED

    @property
    def status_name(self) -> str:
        return (
            self.status.name.lower().replace("_", "-")
            if isinstance(self.status, IntEnum)
            else f"unknown({self.status})"
        )


class Pagination(_Model):
    page: int
    limit: int
    total: int
    total_pages: int


class PositionPage(_Model):
    positions: list[Position]
    pagination: Pagination


class Stats(_Model):
    total_positions: int = 0
    open_positions: int = 0
    closed_positions: int = 0
    won_positions: int = 0
    lost_positions: int = 0
    total_volume: RawInt = 0
    total_pnl: RawInt = 0
    total_fees_paid: RawInt = 0
    win_rate: float = Field(default=0.0, ge=0, le=1)


class Units:
    """Raw integer units <-> display Decimal, exactly (10**decimals raw units per display unit)."""

    def __init__(self, decimals: int = 9) -> None:
        if not 0 <= decimals <= 18:
            raise ValueError("decimals must be 0..18")
        self.decimals = decimals
        self.scale = Decimal(10) ** decimals

    def display(self, raw: int) -> Decimal:
        """Exact, with the unit's full precision: 250000000 -> 0.250000000 for 9 decimals."""
        return Decimal(raw).scaleb(-self.decimals, context=Context(prec=len(str(abs(raw))) + 2))

    def raw(self, display: Decimal | str) -> int:
        number = Decimal(display)
        value = number.scaleb(
            self.decimals, context=Context(prec=len(number.as_tuple().digits) + self.decimals + 2)
        )
        if value != value.to_integral_value():
            raise ValueError(f"{display} has more precision than the unit allows")
        return int(value)


def effective_odds_bps(p: Position) -> int:
    """Odds per NOTES: multiplier_bps, overridden by the chosen side's odds when present."""
    side = p.odds_home_bps if p.selected_team == 1 else p.odds_away_bps
    return side if side is not None else p.multiplier_bps


def expected_payout(p: Position) -> int:
    """amount x odds, in raw units, computed here because the service's value is inconsistent."""
    return p.amount * effective_odds_bps(p) // 10_000


class PositionsClient:
    """One wallet's view of the positions service on the chosen layer."""

    def __init__(
        self, transport: Transport, *, wallet: str, layer: Layer = "proxy", decimals: int = 9
    ) -> None:
        self.transport = transport
        self.wallet = validate_solana_address(wallet)
        if layer not in ("proxy", "backend"):
            raise ValueError("layer must be 'proxy' or 'backend'")
        self.layer: Layer = layer
        self.units = Units(decimals)

    @classmethod
    def from_settings(
        cls, settings: Any, *, hooks: list[RequestHook] | None = None, **transport_kw: Any
    ) -> PositionsClient:
        p = settings.positions
        if p.base_url is None or p.wallet_address is None:
            raise ClientValidationError(
                "positions.base_url and positions.wallet_address must be set in the config"
            )
        transport = Transport(str(p.base_url), settings.http, hooks=hooks, **transport_kw)
        return cls(transport, wallet=p.wallet_address, layer=p.layer, decimals=p.decimals)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> PositionsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _parse(self, model: type[M], payload: Any, endpoint: str) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise BadResponse(
                f"unexpected response shape ({where})",
                endpoint=endpoint,
                body=preview(str(payload)),
            ) from None

    # -- reads ------------------------------------------------------------------------------

    async def list_positions(
        self,
        *,
        status: str | None = None,
        fixture_id: str | None = None,
        page: int = 1,
        limit: int = 50,
    ) -> PositionPage:
        if page < 1 or not 1 <= limit <= MAX_LIMIT:
            raise ClientValidationError(f"page must be >= 1 and limit 1..{MAX_LIMIT}")
        params = {"status": status, "fixture_id": fixture_id, "page": page, "limit": limit}
        if self.layer == "proxy":
            template = "/api/positions"
            resp = await self.transport.request(
                "GET", template, params={"wallet_address": self.wallet, **params}
            )
        else:
            template = "/api/v1/compat/users/{wallet}/positions"
            resp = await self.transport.request(
                "GET", template, path={"wallet": self.wallet}, params=params
            )
        return self._parse(PositionPage, parse_json(resp, endpoint=template), template)

    async def list_bets(
        self, *, status: str | None = None, page: int = 1, limit: int = 50
    ) -> PositionPage:
        """The legacy `/api/bets` alias (proxy only); it redirects to `/api/positions`."""
        resp = await self.transport.request(
            "GET",
            "/api/bets",
            params={"wallet_address": self.wallet, "status": status, "page": page, "limit": limit},
        )
        return self._parse(PositionPage, parse_json(resp, endpoint="/api/bets"), "/api/bets")

    async def iter_positions(
        self,
        *,
        status: str | None = None,
        fixture_id: str | None = None,
        page_size: int = MAX_LIMIT,
        max_pages: int = 1000,
    ) -> AsyncIterator[Position]:
        """Every position once, robust to the list changing between pages.

        The list is newest first. An insert pushes items towards later pages, so a forward walk
        meets some twice: they are yielded once, by id. A removal (e.g. a position leaving the
        `open` filter) pulls items towards earlier pages, where a forward walk would miss them:
        when `total` drops, the walk steps back as many pages as items disappeared and reads
        them again. Reads are bounded by `max_pages`, so a server whose pagination never ends
        gives a BadResponse, not an endless loop. The backend's 404 (unknown wallet) is empty.
        """
        seen: set[int] = set()
        page, last_total = 1, None
        for _ in range(max_pages):
            try:
                result = await self.list_positions(
                    status=status, fixture_id=fixture_id, page=page, limit=page_size
                )
            except NotFound:
                return
            for p in result.positions:
                if p.id not in seen:
                    seen.add(p.id)
                    yield p
            total = result.pagination.total
            if last_total is not None and total < last_total and page > 1:
                back = -(-(last_total - total) // page_size)
                page, last_total = max(1, page - back), total
                continue
            last_total = total
            if not result.positions or page >= result.pagination.total_pages:
                return
            page += 1
        raise BadResponse(f"pagination did not end within {max_pages} pages", endpoint="/positions")

    async def stats(self) -> Stats:
        if self.layer == "proxy":
            template = "/api/users/stats"
            resp = await self.transport.request(
                "GET", template, params={"wallet_address": self.wallet}
            )
        else:
            template = "/api/v1/users/{wallet}/stats"
            resp = await self.transport.request("GET", template, path={"wallet": self.wallet})
        payload = parse_json(resp, endpoint=template)
        return self._parse(
            Stats,
            payload.get("stats", payload) if isinstance(payload, dict) else payload,
            template,
        )

    # -- writes (move money: never retried after they may have reached the server) ---------

    async def open_position(
        self,
        *,
        market: str,
        selected_team: int,
        amount: int,
        multiplier_bps: int,
        odds_home_bps: int | None = None,
        odds_away_bps: int | None = None,
    ) -> Position:
        if selected_team not in (1, 2):
            raise ClientValidationError("selected_team must be 1 or 2")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ClientValidationError("amount must be a positive integer of raw units")
        if multiplier_bps <= 0:
            raise ClientValidationError("multiplier_bps must be positive")
        body: dict[str, Any] = {
            "wallet_address": self.wallet,
            "market_address": market,
            "selected_team": selected_team,
            "amount": amount,
            "multiplier_bps": multiplier_bps,
        }
        if odds_home_bps is not None:
            body["odds_home_bps"] = odds_home_bps
        if odds_away_bps is not None:
            body["odds_away_bps"] = odds_away_bps
        template = "/api/positions" if self.layer == "proxy" else "/api/v1/compat/positions"
        resp = await self.transport.request("POST", template, json_body=body, moves_money=True)
        return self._position(parse_json(resp, endpoint=template), template)

    async def close_position(
        self,
        position_id: int,
        *,
        close_price: int | None = None,
        via: Literal["post", "patch"] = "post",
    ) -> Position:
        if position_id <= 0:
            raise ClientValidationError("position_id must be a positive integer")
        body: dict[str, Any] = {"position_id": position_id, "wallet_address": self.wallet}
        if close_price is not None:
            body["close_price"] = close_price
        if self.layer == "backend":
            template, method = "/api/v1/compat/positions/close", "POST"
        elif via == "patch":
            template, method = "/api/positions", "PATCH"
            body["action"] = "close"
        else:
            template, method = "/api/positions/close", "POST"
        resp = await self.transport.request(method, template, json_body=body, moves_money=True)
        return self._position(parse_json(resp, endpoint=template), template)

    def _position(self, payload: Any, template: str) -> Position:
        inner = payload.get("position") if isinstance(payload, dict) else None
        return self._parse(Position, inner if inner is not None else payload, template)
