"""PositionsClient: the user positions API, proxy layer (`/api/*`) or backend layer (`/api/v1/*`).

The service has no auth and does not check that a wallet owns the position it closes (NOTES.md),
so the client always sends the configured wallet and its callers (CLI, daemon) only close
positions they have just listed under it. Amounts are raw integer units kept exact end to end;
`Units` turns them into display `Decimal`s. `payout_expected` differs between the layers, so it
is kept for display only and `expected_payout` recomputes the payout from amount and odds.

Choices where the documents are silent:

* unknown `status` integers become pseudo-members of `PositionStatus` (`UNKNOWN_9`), so one odd row
  never fails a whole list, and `is_known` tells them apart;
* timestamps without an offset are taken as UTC (the service writes UTC); digits beyond
  microseconds are truncated;
* raw integer fields accept JSON integers, integer strings and integral floats below 2**53 (those
  are exact); anything that could have lost units (a bigger float, a fraction) is refused;
* a 2xx body with `ok: false` is a refusal (`ValidationFailed`), not a success;
* a 2xx body of an open or close that cannot be read is `OutcomeUnknown` (it may have been
  applied), never a failure; a read's is `BadResponse`;
* every documented 400 message becomes its own `ValidationFailed` subclass (`REFUSALS`), matched
  by the message without regard to case or surrounding space; any other refusal stays a plain
  `ValidationFailed`;
* on the backend layer an unknown wallet is `NotFound` for `list_positions` and `stats`, while
  `iter_positions` reads it as "no positions", like the proxy layer does.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from bot.api.errors import (
    BadJson,
    BadResponse,
    ClientValidationError,
    InvalidArgs,
    InvalidNumeric,
    MissingFields,
    NotFound,
    PositionIdRequired,
    UnsupportedAction,
    ValidationFailed,
    WalletRequired,
    outcome_unknown,
    preview,
)
from bot.api.transport import RequestHook, Transport, parse_json
from bot.domain import validate_solana_address

__all__ = [
    "BPS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "REFUSALS",
    "STATUS_FILTERS",
    "CloseVia",
    "Layer",
    "Pagination",
    "PaginationError",
    "Position",
    "PositionMarket",
    "PositionPage",
    "PositionStatus",
    "PositionsClient",
    "Stats",
    "Units",
    "effective_odds_bps",
    "expected_payout",
    "typed_refusal",
]

Layer = Literal["proxy", "backend"]
CloseVia = Literal["post", "patch"]
M = TypeVar("M", bound=BaseModel)

BPS = 10_000
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_MAX_PAGES = 1_000
EXACT_FLOAT_LIMIT = 2**53
# What the service understands (NOTES.md), normalised; "all" means "send no filter" because the
# service would only ignore it by accident of not knowing it.
STATUS_FILTERS: dict[str, str | None] = {
    "open": "open",
    "current": "open",
    "closed": "closed",
    "history": "closed",
    "all": None,
}
# The documented 400 messages (both documents' error tables) -> their typed errors, keyed by the
# message case-folded: the table writes `INVALID_NUMERIC` and `Missing required fields` alike.
REFUSALS: dict[str, type[ValidationFailed]] = {
    "wallet_address is required": WalletRequired,
    "missing required fields": MissingFields,
    "invalid_numeric": InvalidNumeric,
    "bad_json": BadJson,
    "position_id required": PositionIdRequired,
    "unsupported action": UnsupportedAction,
    "invalid_args": InvalidArgs,
}
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FRACTION = re.compile(r"(\.[0-9]{6})[0-9]+")


# --------------------------------------------------------------------------- field types


class PositionStatus(IntEnum):
    """Documented statuses; any other integer becomes an `UNKNOWN_<n>` pseudo-member."""

    PLACED = 1
    WON = 2
    LOST = 3
    CANCELLED = 4
    REFUNDED = 5
    EARLY_CLOSED = 6

    @classmethod
    def _missing_(cls, value: object) -> PositionStatus | None:
        """Keep an undocumented status rather than fail the whole list (NOTES: parse tolerantly)."""
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None

    @property
    def is_known(self) -> bool:
        return self._name_ in type(self).__members__

    @property
    def label(self) -> str:
        """Lower-case name for people: `placed`, `early-closed`, `unknown(9)`."""
        if not self.is_known:
            return f"unknown({int(self)})"
        return self._name_.lower().replace("_", "-")


def _exact_int(value: Any) -> Any:
    """Raw units must stay exact: refuse what JSON may already have rounded."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, float):
        if value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
            return int(value)
        raise ValueError(
            "must be an exact integer; a float with a fraction or beyond 2**53 may have lost units"
        )
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise ValueError("must be an integer")


def _status(value: Any) -> Any:
    value = _exact_int(value)
    return PositionStatus(value)


def _timestamp(value: Any) -> Any:
    """ISO 8601 text, tolerant of `Z`, a space separator and nanoseconds (chrono writes them)."""
    if not isinstance(value, str):
        return value
    text = _FRACTION.sub(r"\1", value.strip(), count=1)
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None


def _aware(value: datetime) -> datetime:
    """A timestamp without an offset is UTC: that is what the service stores and writes."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _text_id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


RawInt = Annotated[int, BeforeValidator(_exact_int)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), AfterValidator(_aware)]
Status = Annotated[PositionStatus, BeforeValidator(_status)]


# --------------------------------------------------------------------------- models


class _Model(BaseModel):
    """Tolerant response model: unknown fields are kept (`model_extra`), never rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class PositionMarket(_Model):
    fixture_id: Annotated[str | None, BeforeValidator(_text_id)] = None
    home_team: str | None = None
    away_team: str | None = None
    status: RawInt | None = None


class Position(_Model):
    """One position as both layers return it; every documented field, raw units as exact ints."""

    id: RawInt
    wallet_address: str
    market_address: str
    bet_address: str | None = None
    position_type: Annotated[Literal["OPEN", "CLOSE"], BeforeValidator(_upper)]
    selected_team: RawInt
    amount: RawInt
    multiplier_bps: RawInt
    odds_home_bps: RawInt | None = None
    odds_away_bps: RawInt | None = None
    payout_expected: RawInt  # display only: the layers disagree on it (NOTES.md)
    status: Status
    is_claimed: bool
    pnl: RawInt
    fee_paid: RawInt
    close_price: RawInt | None = None
    close_pnl: RawInt | None = None
    timestamp: Timestamp
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None = None
    transaction_signature: str | None = None
    confirmation_status: str
    market: PositionMarket | None = None

    @property
    def is_open(self) -> bool:
        return self.status == PositionStatus.PLACED

    @property
    def status_name(self) -> str:
        return self.status.label

    @property
    def odds_bps(self) -> int:
        return effective_odds_bps(self)


class Pagination(_Model):
    page: RawInt
    limit: RawInt
    total: RawInt
    total_pages: RawInt

    @model_validator(mode="before")
    @classmethod
    def _derive_total_pages(cls, data: Any) -> Any:
        """total_pages is derived data; a body that leaves it out is still a usable page."""
        if isinstance(data, dict) and data.get("total_pages") is None:
            try:
                total, limit = int(data["total"]), int(data["limit"])
            except (KeyError, TypeError, ValueError, OverflowError):  # inf: refused below
                return data
            if limit > 0:
                return {**data, "total_pages": -(-total // limit)}
        return data


class PositionPage(_Model):
    positions: list[Position]
    pagination: Pagination


class Stats(_Model):
    """Account totals; money fields in raw units. `win_rate` is a ratio, shown, never summed."""

    total_positions: RawInt
    open_positions: RawInt
    closed_positions: RawInt
    won_positions: RawInt
    lost_positions: RawInt
    total_volume: RawInt
    total_pnl: RawInt
    total_fees_paid: RawInt
    win_rate: Annotated[float, Field(allow_inf_nan=False)]


# --------------------------------------------------------------------------- money


class Units:
    """Raw integer units <-> display `Decimal`, exactly: digits are moved, never rounded."""

    def __init__(self, decimals: int = 9) -> None:
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 18:
            raise ValueError("decimals must be an integer within 0..18")
        self.decimals = decimals

    def display(self, raw: int) -> Decimal:
        """250000000 -> Decimal('0.250000000') for 9 decimals (full precision, any size)."""
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise TypeError("raw units must be an int")
        sign, digits, _ = Decimal(raw).as_tuple()
        return Decimal((sign, digits, -self.decimals))

    def raw(self, display: Decimal | str | int) -> int:
        """Decimal('0.25') or '0.25' -> 250000000; refuses floats and sub-unit precision."""
        if isinstance(display, float | bool):
            raise TypeError("display amounts must be Decimal, str or int, never float")
        try:
            number = Decimal(display.strip() if isinstance(display, str) else display)
        except InvalidOperation:
            raise ValueError(f"not a number: {display!r}") from None
        if not number.is_finite():
            raise ValueError(f"not a finite number: {display!r}")
        sign, digits, exponent = number.as_tuple()
        assert isinstance(exponent, int)  # finite
        shift = exponent + self.decimals
        magnitude = int("".join(map(str, digits)) or "0")
        if shift >= 0:
            value = magnitude * int(10**shift)
        else:
            value, rest = divmod(magnitude, int(10**-shift))
            if rest:
                raise ValueError(
                    f"{display} has more than {self.decimals} decimal places (the unit's precision)"
                )
        return -value if sign else value

    def format(self, raw: int) -> str:
        return f"{self.display(raw):f}"


def effective_odds_bps(p: Position) -> int:
    """The odds per NOTES: multiplier_bps, overridden by the chosen side's odds when given."""
    if p.selected_team == 1 and p.odds_home_bps is not None:
        return p.odds_home_bps
    if p.selected_team == 2 and p.odds_away_bps is not None:
        return p.odds_away_bps
    return p.multiplier_bps


def expected_payout(p: Position) -> int:
    """amount x odds in raw units, rounded down (never overstated); ignores `payout_expected`."""
    return p.amount * effective_odds_bps(p) // BPS


# --------------------------------------------------------------------------- client


def typed_refusal(error: ValidationFailed) -> ValidationFailed:
    """The documented subclass for a positions refusal, chosen by its message.

    The transport maps statuses, not this API's messages (it serves both APIs), so the positions
    client re-types here. Anything already typed, or with an undocumented message, is returned
    as it is.
    """
    if type(error) is not ValidationFailed:
        return error
    cls = REFUSALS.get(error.message.strip().casefold())
    if cls is None:
        return error
    return cls(
        error.message,
        messages=error.messages,
        endpoint=error.endpoint,
        method=error.method,
        status=error.status,
        body=error.body,
    )


class PaginationError(BadResponse):
    """The server's pages cannot be walked safely (no end in sight, or inconsistent paging)."""


def _positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ClientValidationError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ClientValidationError(f"{name} must be >= {minimum}, got {value}")
    return value


def _checked_wallet(wallet: str | None) -> str:
    """The client acts for exactly one Solana wallet and refuses to exist without it."""
    if not wallet:
        raise ClientValidationError(
            "positions.wallet_address is not set: the positions client acts for one wallet"
        )
    try:
        return validate_solana_address(wallet)
    except ValueError as exc:
        raise ClientValidationError(f"positions.wallet_address: {exc}") from None


def _path_prefix(base_url: str, suffix: str) -> str:
    """`/api` or `/api/v1`, unless the configured base URL already ends with it (docs show both)."""
    path = urlsplit(base_url).path.rstrip("/")
    return "" if path.endswith(suffix) else suffix


class PositionsClient:
    """One wallet's view of the positions service on the chosen layer."""

    def __init__(
        self,
        transport: Transport,
        *,
        wallet: str | None,
        layer: str = "proxy",
        decimals: int = 9,
    ) -> None:
        self.wallet = _checked_wallet(wallet)
        if layer not in ("proxy", "backend"):
            raise ClientValidationError(f"positions.layer must be proxy or backend, got {layer!r}")
        self.transport = transport
        self.layer: Layer = "proxy" if layer == "proxy" else "backend"
        self.units = Units(decimals)
        if self.layer == "proxy":
            api = _path_prefix(transport.base_url, "/api")
            self._list = f"{api}/positions"
            self._open = f"{api}/positions"
            self._close = f"{api}/positions/close"
            self._stats = f"{api}/users/stats"
            self._bets = f"{api}/bets"
        else:
            v1 = _path_prefix(transport.base_url, "/api/v1")
            self._list = f"{v1}/compat/users/{{wallet}}/positions"
            self._open = f"{v1}/compat/positions"
            self._close = f"{v1}/compat/positions/close"
            self._stats = f"{v1}/users/{{wallet}}/stats"
            self._bets = ""

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        hooks: list[RequestHook] | None = None,
        beside: Transport | None = None,
        **transport_kw: Any,
    ) -> PositionsClient:
        """Refuses to start without `positions.base_url` and a valid `positions.wallet_address`.
        With `beside`, it sends through that transport's HTTP client (one per process)."""
        p = settings.positions
        missing = [
            name for name in ("base_url", "wallet_address") if getattr(p, name, None) is None
        ]
        if missing:
            raise ClientValidationError(
                " and ".join(f"positions.{n}" for n in missing) + " must be set in the config"
            )
        _checked_wallet(p.wallet_address)  # before a transport (and its sockets) exists
        if beside is not None:
            transport = beside.for_service(str(p.base_url))
        else:
            transport = Transport(str(p.base_url), settings.http, hooks=hooks, **transport_kw)
        return cls(transport, wallet=p.wallet_address, layer=p.layer, decimals=p.decimals)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> PositionsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing -----------------------------------------------------------------------------

    async def _send(self, method: str, template: str, **kw: Any) -> httpx.Response:
        """One request through the transport, with this API's refusals typed (`REFUSALS`)."""
        try:
            return await self.transport.request(method, template, **kw)
        except ValidationFailed as exc:
            typed = typed_refusal(exc)
            if typed is exc:
                raise
            raise typed from exc

    def _payload(self, response: httpx.Response, template: str) -> dict[str, Any]:
        """The JSON object of a 2xx answer; `{ok: false}` is a refusal even with a 2xx status."""
        payload = parse_json(response, endpoint=template)
        method = response.request.method
        if not isinstance(payload, dict):
            raise BadResponse(
                "expected a JSON object",
                endpoint=template,
                method=method,
                status=response.status_code,
                body=preview(response.text),
            )
        if payload.get("ok") is False:
            message = str(payload.get("error") or payload.get("message") or "refused")
            raise typed_refusal(
                ValidationFailed(
                    message,
                    messages=[message],
                    endpoint=template,
                    method=method,
                    status=response.status_code,
                    body=preview(response.text),
                )
            )
        return payload

    def _parse(self, model: type[M], payload: Any, response: httpx.Response, template: str) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise BadResponse(
                f"unexpected response shape ({where})",
                endpoint=template,
                method=response.request.method,
                status=response.status_code,
                body=preview(response.text),
            ) from None

    def _position(self, response: httpx.Response, template: str) -> Position:
        payload = self._payload(response, template)
        inner = payload.get("position", payload)
        return self._parse(Position, inner, response, template)

    def _written(self, response: httpx.Response, template: str) -> Position:
        """The position a write answered with. A 2xx that cannot be read means the write may
        have been applied: `OutcomeUnknown`, so the caller reconciles instead of recording a
        failure. An explicit `{ok: false}` stays a refusal (`ValidationFailed`)."""
        try:
            return self._position(response, template)
        except BadResponse as exc:
            raise outcome_unknown(exc) from exc

    def _query(
        self, status: str | None, fixture_id: str | int | None, page: int, limit: int
    ) -> dict[str, Any]:
        """Validated list parameters; the server would clamp, the client refuses instead."""
        _positive_int(page, "page")
        _positive_int(limit, "limit")
        if limit > MAX_LIMIT:
            raise ClientValidationError(f"limit must be within 1..{MAX_LIMIT}, got {limit}")
        wire_status: str | None = None
        if status is not None:
            key = status.strip().lower() if isinstance(status, str) else status
            if key not in STATUS_FILTERS:
                raise ClientValidationError(
                    f"status must be one of {', '.join(STATUS_FILTERS)}, got {status!r}"
                )
            wire_status = STATUS_FILTERS[key]
        wire_fixture: str | None = None
        if fixture_id is not None:
            if isinstance(fixture_id, bool) or not isinstance(fixture_id, str | int):
                raise ClientValidationError("fixture_id must be a fixture id or market address")
            wire_fixture = str(fixture_id).strip()
            if not wire_fixture:
                raise ClientValidationError("fixture_id must not be empty")
        return {"status": wire_status, "fixture_id": wire_fixture, "page": page, "limit": limit}

    # -- reads --------------------------------------------------------------------------------

    async def list_positions(
        self,
        *,
        status: str | None = None,
        fixture_id: str | int | None = None,
        page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> PositionPage:
        """One page, newest first. Backend layer: an unknown wallet raises `NotFound`."""
        params = self._query(status, fixture_id, page, limit)
        if self.layer == "proxy":
            response = await self._send(
                "GET", self._list, params={"wallet_address": self.wallet, **params}
            )
        else:
            response = await self._send(
                "GET", self._list, path={"wallet": self.wallet}, params=params
            )
        payload = self._payload(response, self._list)
        return self._parse(PositionPage, payload, response, self._list)

    async def list_bets(
        self,
        *,
        status: str | None = None,
        fixture_id: str | int | None = None,
        page: int = 1,
        limit: int = DEFAULT_LIMIT,
    ) -> PositionPage:
        """The legacy `/api/bets` alias (proxy layer only); it redirects to `/api/positions`."""
        if self.layer != "proxy":
            raise ClientValidationError("/api/bets exists on the proxy layer only")
        params = self._query(status, fixture_id, page, limit)
        response = await self._send(
            "GET", self._bets, params={"wallet_address": self.wallet, **params}
        )
        return self._parse(PositionPage, self._payload(response, self._bets), response, self._bets)

    async def iter_positions(
        self,
        *,
        status: str | None = None,
        fixture_id: str | int | None = None,
        page_size: int = MAX_LIMIT,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> AsyncIterator[Position]:
        """Every matching position exactly once, while the list may change between pages.

        Offset paging over a list that changes: the list is newest first, so new positions
        enter at the front and push the rest towards later pages (a forward walk meets some
        again: dropped by id), while positions leaving the filter (an `open` one closing) pull
        the rest towards the front, where a forward walk would skip them. Between two reads
        with e entries (all at the front) and l departures, a position behind the boundary
        moves back by at most l - e = the drop in `total`. So while `total` does not fall
        nothing crosses the boundary backwards; when it falls by d, the walk re-reads from
        the page holding the offset d before the boundary. Every position that matched
        throughout the walk is therefore yielded; positions that entered or left during it
        may or may not be. (`closed` only ever grows, anywhere: it never shifts backwards.)

        Bounded: at most `max_pages` requests, re-reads included; pages that never end, a
        different page or page size than asked, more items than the limit or an order other
        than id descending give a `PaginationError` rather than a silent gap. On the backend
        layer an unknown wallet (404 on the first read) yields nothing, as on the proxy.
        """
        _positive_int(max_pages, "max_pages")
        size = _positive_int(page_size, "page_size")
        if size > MAX_LIMIT:
            raise ClientValidationError(f"page_size must be within 1..{MAX_LIMIT}, got {size}")
        self._query(status, fixture_id, 1, size)  # refuse a bad filter before the first read
        seen: set[int] = set()
        offset = 0
        last_total: int | None = None
        for reads in range(1, max_pages + 1):
            page = offset // size + 1
            try:
                result = await self.list_positions(
                    status=status, fixture_id=fixture_id, page=page, limit=size
                )
            except NotFound:
                if reads == 1 and self.layer == "backend":
                    return  # the backend's "unknown wallet": no positions (the proxy says so too)
                raise
            got, meta = result.positions, result.pagination
            if reads == 1 and 1 <= meta.limit < size:
                size = meta.limit  # the server pages smaller than asked: follow its page size
            self._check_page(page, size, result)
            for p in got:
                if p.id not in seen:
                    seen.add(p.id)
                    yield p
            total = meta.total
            if last_total is not None and total < last_total and offset > 0:
                # up to (last_total - total) unseen positions may have moved before `offset`
                offset = max(0, offset - (last_total - total)) // size * size
                last_total = total
                continue
            last_total = total
            if len(got) < size or offset + len(got) >= total:
                return
            offset += size
        raise PaginationError(
            f"the positions list did not end within {max_pages} page reads "
            f"(last total {last_total}); it changes faster than it can be read, "
            "or the server's pagination is inconsistent",
            endpoint=self._list,
            method="GET",
        )

    def _check_page(self, page: int, size: int, result: PositionPage) -> None:
        """Refuse pages the walk cannot reason about instead of silently missing positions."""
        meta, got = result.pagination, result.positions
        problem = ""
        if meta.page != page:
            problem = f"asked for page {page}, the server answered page {meta.page}"
        elif meta.limit != size:
            problem = f"asked for {size} positions per page, the server paged by {meta.limit}"
        elif len(got) > size:
            problem = f"page {page} holds {len(got)} positions, more than its limit {size}"
        elif any(a.id <= b.id for a, b in itertools.pairwise(got)):
            problem = f"page {page} is not ordered newest first (id descending)"
        if problem:
            raise PaginationError(
                f"cannot walk the positions safely: {problem}", endpoint=self._list, method="GET"
            )

    async def stats(self) -> Stats:
        """Account totals. Backend layer: an unknown wallet raises `NotFound` (proxy: zeros)."""
        if self.layer == "proxy":
            response = await self._send("GET", self._stats, params={"wallet_address": self.wallet})
        else:
            response = await self._send("GET", self._stats, path={"wallet": self.wallet})
        payload = self._payload(response, self._stats)
        return self._parse(Stats, payload.get("stats", payload), response, self._stats)

    # -- writes: they move money, so they are never retried once they may have been applied --

    async def open_position(
        self,
        *,
        market: str | int,
        selected_team: int,
        amount: int,
        multiplier_bps: int,
        odds_home_bps: int | None = None,
        odds_away_bps: int | None = None,
    ) -> Position:
        """Place a position on a market (address or fixture id) for the configured wallet."""
        body = self.open_request(
            market=market,
            selected_team=selected_team,
            amount=amount,
            multiplier_bps=multiplier_bps,
            odds_home_bps=odds_home_bps,
            odds_away_bps=odds_away_bps,
        )
        response = await self._send("POST", self._open, json_body=body, moves_money=True)
        return self._written(response, self._open)

    def open_request(
        self,
        *,
        market: str | int,
        selected_team: int,
        amount: int,
        multiplier_bps: int,
        odds_home_bps: int | None = None,
        odds_away_bps: int | None = None,
    ) -> dict[str, Any]:
        """The validated body of an open, so callers can journal exactly what will be sent."""
        if isinstance(market, bool) or not isinstance(market, str | int) or not str(market).strip():
            raise ClientValidationError("market must be a market address or a fixture id")
        if isinstance(selected_team, bool) or selected_team not in (1, 2):
            raise ClientValidationError(f"selected_team must be 1 or 2, got {selected_team!r}")
        body: dict[str, Any] = {
            "wallet_address": self.wallet,
            "market_address": str(market).strip(),
            "selected_team": selected_team,
            "amount": _positive_int(amount, "amount"),
            "multiplier_bps": _positive_int(multiplier_bps, "multiplier_bps"),
        }
        if odds_home_bps is not None:
            body["odds_home_bps"] = _positive_int(odds_home_bps, "odds_home_bps")
        if odds_away_bps is not None:
            body["odds_away_bps"] = _positive_int(odds_away_bps, "odds_away_bps")
        return body

    async def close_position(
        self, position_id: int, *, close_price: int | None = None, via: CloseVia = "post"
    ) -> Position:
        """Close a position, sending the configured wallet. The server does NOT check ownership:
        callers must have just listed `position_id` as open under `self.wallet`."""
        method, template, body = self.close_request(position_id, close_price=close_price, via=via)
        response = await self._send(method, template, json_body=body, moves_money=True)
        return self._written(response, template)

    def close_request(
        self, position_id: int, *, close_price: int | None = None, via: CloseVia = "post"
    ) -> tuple[str, str, dict[str, Any]]:
        """(method, template, body) of a close, validated, for sending and for journaling."""
        body: dict[str, Any] = {
            "position_id": _positive_int(position_id, "position_id"),
            "wallet_address": self.wallet,
        }
        if close_price is not None:
            body["close_price"] = _positive_int(close_price, "close_price", minimum=0)
        if via not in ("post", "patch"):
            raise ClientValidationError(f"via must be post or patch, got {via!r}")
        if via == "patch":
            if self.layer != "proxy":
                raise ClientValidationError("the PATCH close form exists on the proxy layer only")
            return "PATCH", self._list, {"action": "close", **body}
        return "POST", self._close, body
