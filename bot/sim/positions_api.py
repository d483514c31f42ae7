"""HTTP face of the simulated user-positions service: backend (Actix) and proxy (Next.js) layers.

Both layers call the same operations on one `PositionsVenue`; the proxy only adds what the real
Next.js layer adds: body checks (BAD_JSON, Missing required fields, INVALID_NUMERIC, numeric
strings normalised), `ok: true` on success, 404 -> empty list / zero stats, the `/api/bets`
redirect, `payout_expected` shown as ``amount * odds``, and 500 `Internal error` for its own
failures. Backend errors are relayed with their status and body.

Response shapes (the proxy's is always ``{"ok": true, **backend_body}``):

* list   -> ``{"positions": [...], "pagination": {page, limit, total, total_pages}}``
* open / close -> ``{"position": {...}}``
* stats  -> ``{"stats": {...}}``
* errors -> exactly ``{"ok": false, "error": CODE}``: 400 INVALID_ARGS, 403 NOT_OWNER
  (simulator owner check), 404 Not found, 409 CONFLICT / MARKET_NOT_OPEN, 500 Backend error.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot import safe_json
from bot.sim.clock import ms_to_iso
from bot.sim.positions_venue import (
    NEVER_MS,
    Conflict,
    InvalidArgs,
    Market,
    MarketStatus,
    NotFound,
    NotOwner,
    Position,
    PositionPage,
    PositionsVenue,
    VenueError,
    WalletStats,
    clamp_paging,
    position_odds_bps,
    proxy_payout,
    require_int,
)

__all__ = ["market_wire", "normalise_numeric", "position_wire", "positions_routes", "stats_wire"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_Endpoint = Callable[[Request], Awaitable[Response]]

_INT_RE = re.compile(r"[+-]?[0-9]+")
_MAX_EXPONENT = 40  # numeric strings like "1e99999" are refused, not expanded

# --------------------------------------------------------------------------- wire format


def position_wire(p: Position, *, proxy: bool) -> dict[str, object]:
    """A position in the documented field order; absent optional fields are omitted.

    ``proxy=True`` swaps in the proxy's ``payout_expected`` (amount * odds).
    """
    payout = proxy_payout(p.amount, position_odds_bps(p)) if proxy else p.payout_expected
    fields: list[tuple[str, object]] = [
        ("id", p.id),
        ("wallet_address", p.wallet_address),
        ("market_address", p.market_address),
        ("bet_address", p.bet_address),
        ("position_type", p.position_type),
        ("selected_team", p.selected_team),
        ("amount", p.amount),
        ("multiplier_bps", p.multiplier_bps),
        ("odds_home_bps", p.odds_home_bps),
        ("odds_away_bps", p.odds_away_bps),
        ("payout_expected", payout),
        ("status", p.status),
        ("is_claimed", p.is_claimed),
        ("pnl", p.pnl),
        ("fee_paid", p.fee_paid),
        ("close_price", p.close_price),
        ("close_pnl", p.close_pnl),
        ("timestamp", p.timestamp),
        ("created_at", p.created_at),
        ("updated_at", p.updated_at),
        ("closed_at", p.closed_at),
        ("transaction_signature", p.transaction_signature),
        ("confirmation_status", p.confirmation_status),
    ]
    out = {k: v for k, v in fields if v is not None}
    if p.market is not None:
        out["market"] = {
            "fixture_id": p.market.fixture_id,
            "home_team": p.market.home_team,
            "away_team": p.market.away_team,
            "status": p.market.status,
        }
    return out


def market_wire(m: Market, now_ms: int) -> dict[str, object]:
    """A market as `/__sim/markets` lists it (the service itself has no market listing): what a
    user needs to place a bet (address or fixture id, teams, odds) and when it stops taking them.

    ``open`` says whether a bet placed now is accepted (else MARKET_NOT_OPEN); times of a market
    that never starts (the documents' example market) are null.
    """

    def when(ms: int) -> str | None:
        return None if ms >= NEVER_MS else ms_to_iso(ms)

    return {
        "id": m.id,
        "fixture_id": m.fixture_id,
        "address": m.address,
        "home_team": m.home_team,
        "away_team": m.away_team,
        "status": m.status,
        "status_name": MarketStatus(m.status).name.lower(),
        "open": m.status in (MarketStatus.OPEN, MarketStatus.LIVE) and now_ms < m.settles_at_ms,
        "multiplier_bps": m.multiplier_bps,
        "odds_home_bps": m.odds_home_bps,
        "odds_away_bps": m.odds_away_bps,
        "starts_at": when(m.starts_at_ms),
        "settles_at": when(m.settles_at_ms),
        "winner": m.winner,
    }


def stats_wire(s: WalletStats) -> dict[str, object]:
    return {
        "total_positions": s.total_positions,
        "open_positions": s.open_positions,
        "closed_positions": s.closed_positions,
        "won_positions": s.won_positions,
        "lost_positions": s.lost_positions,
        "total_volume": s.total_volume,
        "total_pnl": s.total_pnl,
        "total_fees_paid": s.total_fees_paid,
        "win_rate": s.win_rate,
    }


def _pagination(page: int, limit: int, total: int) -> dict[str, int]:
    return {"page": page, "limit": limit, "total": total, "total_pages": -(-total // limit)}


def _page_wire(result: PositionPage, *, proxy: bool) -> dict[str, object]:
    return {
        "positions": [position_wire(p, proxy=proxy) for p in result.positions],
        "pagination": _pagination(result.page, result.limit, result.total),
    }


def _error(status: int, error: str, detail: str = "") -> JSONResponse:
    """Exactly the documented ``{ok: false, error}``; the detail only goes to the log."""
    if detail:
        log.info("positions %d %s: %s", status, error, detail)
    return JSONResponse({"ok": False, "error": error}, status_code=status)


def _venue_error(exc: VenueError) -> JSONResponse:
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, InvalidArgs):
        status = 400
    elif isinstance(exc, NotOwner):
        status = 403
    elif isinstance(exc, Conflict):
        status = 409
    else:
        status = 500
    return _error(status, exc.code, exc.detail)


# --------------------------------------------------------------------------- input


class _BadJson(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


async def _json_object(request: Request) -> dict[str, object]:
    """The body as a JSON object; empty, malformed or non-object bodies are all `_BadJson`."""
    raw = await request.body()
    if not raw.strip():
        raise _BadJson("empty body")
    try:
        data = safe_json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadJson(str(exc)) from exc
    if not isinstance(data, dict):
        raise _BadJson("body must be a JSON object")
    return data


def _present(value: object) -> bool:
    return value is not None and value != ""


def normalise_numeric(value: object) -> int | None:
    """The proxy's numeric normalisation: ints, integral floats and numeric strings -> int.

    Returns None when the value cannot be an integer amount (bools, fractions, text), which
    the proxy reports as INVALID_NUMERIC. Big numeric strings stay exact.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _INT_RE.fullmatch(text):
        return int(text)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() > _MAX_EXPONENT:
        return None
    if number != number.to_integral_value():
        return None
    return int(number)


def _soft_normalise(value: object) -> object:
    """Normalise when possible, else pass the raw value on for the backend to reject."""
    number = normalise_numeric(value)
    return value if number is None else number


def _query_int(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    if not _INT_RE.fullmatch(raw.strip()):
        raise InvalidArgs(f"{name} must be an integer")
    return int(raw)


def _query_text(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    return raw if raw else None


def _optional_int(body: Mapping[str, object], name: str) -> int | None:
    value = body.get(name)
    return None if value is None else require_int(value, name)


# --------------------------------------------------------------------------- shared operations
# One implementation of each backend operation; both layers call these.


def _op_list(venue: PositionsVenue, wallet: str, params: Mapping[str, str]) -> PositionPage:
    page, limit = clamp_paging(_query_int(params, "page"), _query_int(params, "limit"))
    return venue.list_positions(
        wallet,
        status=_query_text(params, "status"),
        fixture_id=_query_text(params, "fixture_id"),
        page=page,
        limit=limit,
    )


def _op_open(venue: PositionsVenue, body: Mapping[str, object]) -> Position:
    wallet = body.get("wallet_address")
    if not isinstance(wallet, str) or not wallet.strip():
        raise InvalidArgs("wallet_address is required")
    market = body.get("market_address")
    if not _present(market):
        market = body.get("fixture_id")
    if isinstance(market, bool) or not isinstance(market, str | int) or market == "":
        raise InvalidArgs("market_address or fixture_id is required")
    return venue.open_position(
        wallet,
        market,
        selected_team=require_int(body.get("selected_team"), "selected_team"),
        amount=require_int(body.get("amount"), "amount"),
        multiplier_bps=require_int(body.get("multiplier_bps"), "multiplier_bps"),
        odds_home_bps=_optional_int(body, "odds_home_bps"),
        odds_away_bps=_optional_int(body, "odds_away_bps"),
    )


def _op_close(venue: PositionsVenue, body: Mapping[str, object]) -> Position:
    wallet = body.get("wallet_address")
    if wallet is not None and not isinstance(wallet, str):
        raise InvalidArgs("wallet_address must be a string")
    return venue.close_position(
        require_int(body.get("position_id"), "position_id", minimum=1),
        wallet_address=wallet or None,
        close_price=_optional_int(body, "close_price"),
    )


# --------------------------------------------------------------------------- error plumbing


def _backend_respond(produce: Callable[[], dict[str, object]]) -> Response:
    """Run a backend operation; VenueError -> its status, anything else -> 500 Backend error."""
    try:
        return JSONResponse(produce())
    except VenueError as exc:
        return _venue_error(exc)
    except Exception:
        log.exception("positions backend failure")
        return _error(500, "Backend error")


class _BackendCrash(Exception):
    """The backend failed (its 5xx); the proxy relays `Backend error`."""


def _call_backend(operation: Callable[[], T]) -> T:
    try:
        return operation()
    except VenueError:
        raise
    except Exception as exc:
        log.exception("positions backend failure (via proxy)")
        raise _BackendCrash from exc


def _proxy_endpoint(handler: _Endpoint) -> _Endpoint:
    """Relay backend errors as they came; any failure of the proxy itself is 500 Internal error."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except VenueError as exc:
            return _venue_error(exc)
        except _BackendCrash:
            return _error(500, "Backend error")
        except Exception:
            log.exception("positions proxy failure")
            return _error(500, "Internal error")

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _ok(body: Mapping[str, object]) -> JSONResponse:
    return JSONResponse({"ok": True, **body})


_ZERO_STATS = stats_wire(WalletStats())
_REQUIRED_OPEN = ("wallet_address", "selected_team", "amount", "multiplier_bps")


# --------------------------------------------------------------------------- routes


def positions_routes(venue: PositionsVenue) -> list[BaseRoute]:
    """Routes for both layers, to mount into the simulator app at the root path."""

    # ---- backend (Actix /api/v1/*)

    async def backend_list(request: Request) -> Response:
        wallet = request.path_params["wallet"]
        params = request.query_params
        return _backend_respond(lambda: _page_wire(_op_list(venue, wallet, params), proxy=False))

    async def backend_open(request: Request) -> Response:
        try:
            body = await _json_object(request)
        except _BadJson as exc:
            return _error(400, "INVALID_ARGS", str(exc))
        return _backend_respond(
            lambda: {"position": position_wire(_op_open(venue, body), proxy=False)}
        )

    async def backend_close(request: Request) -> Response:
        try:
            body = await _json_object(request)
        except _BadJson as exc:
            return _error(400, "INVALID_ARGS", str(exc))
        return _backend_respond(
            lambda: {"position": position_wire(_op_close(venue, body), proxy=False)}
        )

    async def backend_stats(request: Request) -> Response:
        wallet = request.path_params["wallet"]
        return _backend_respond(lambda: {"stats": stats_wire(venue.stats(wallet))})

    # ---- proxy (Next.js /api/*)

    @_proxy_endpoint
    async def proxy_list(request: Request) -> Response:
        params = request.query_params
        wallet = params.get("wallet_address", "").strip()
        if not wallet:
            return _error(400, "wallet_address is required")
        try:
            result = _call_backend(lambda: _op_list(venue, wallet, params))
        except NotFound:
            page, limit = clamp_paging(_query_int(params, "page"), _query_int(params, "limit"))
            return _ok({"positions": [], "pagination": _pagination(page, limit, 0)})
        return _ok(_page_wire(result, proxy=True))

    @_proxy_endpoint
    async def proxy_open(request: Request) -> Response:
        try:
            body = await _json_object(request)
        except _BadJson:
            return _error(400, "BAD_JSON")
        missing = [name for name in _REQUIRED_OPEN if not _present(body.get(name))]
        if not _present(body.get("market_address")) and not _present(body.get("fixture_id")):
            missing.insert(1, "market_address")
        if missing:
            return _error(400, "Missing required fields", ", ".join(missing))
        amount = normalise_numeric(body["amount"])
        multiplier = normalise_numeric(body["multiplier_bps"])
        invalid = [
            name
            for name, value in (("amount", amount), ("multiplier_bps", multiplier))
            if value is None
        ]
        if invalid:
            return _error(400, "INVALID_NUMERIC", ", ".join(invalid))
        normalised: dict[str, object] = {**body, "amount": amount, "multiplier_bps": multiplier}
        for name in ("selected_team", "odds_home_bps", "odds_away_bps"):
            if name in normalised:
                normalised[name] = _soft_normalise(normalised[name])
        position = _call_backend(lambda: _op_open(venue, normalised))
        return _ok({"position": position_wire(position, proxy=True)})

    async def _proxy_close(body: dict[str, object]) -> Response:
        if not _present(body.get("position_id")):
            return _error(400, "position_id required")
        normalised = dict(body)
        for name in ("position_id", "close_price"):
            if name in normalised:
                normalised[name] = _soft_normalise(normalised[name])
        position = _call_backend(lambda: _op_close(venue, normalised))
        return _ok({"position": position_wire(position, proxy=True)})

    @_proxy_endpoint
    async def proxy_patch(request: Request) -> Response:
        try:
            body = await _json_object(request)
        except _BadJson:
            return _error(400, "BAD_JSON")
        if body.get("action") != "close":
            return _error(400, "Unsupported action")
        return await _proxy_close(body)

    @_proxy_endpoint
    async def proxy_close(request: Request) -> Response:
        try:
            body = await _json_object(request)
        except _BadJson:
            return _error(400, "BAD_JSON")
        return await _proxy_close(body)

    @_proxy_endpoint
    async def proxy_stats(request: Request) -> Response:
        wallet = request.query_params.get("wallet_address", "").strip()
        if not wallet:
            return _error(400, "wallet_address is required")
        try:
            stats = _call_backend(lambda: venue.stats(wallet))
        except NotFound:
            return _ok({"stats": dict(_ZERO_STATS)})
        return _ok({"stats": stats_wire(stats)})

    @_proxy_endpoint
    async def proxy_bets(request: Request) -> Response:
        """Legacy alias: 307 to /api/positions with the same query (relative to any mount)."""
        path = request.url.path
        prefix = path[: -len("/api/bets")] if path.endswith("/api/bets") else ""
        target = request.url.replace(path=prefix + "/api/positions")
        return RedirectResponse(str(target), status_code=307)

    return [
        Route("/api/v1/compat/users/{wallet}/positions", backend_list, methods=["GET"]),
        Route("/api/v1/compat/positions", backend_open, methods=["POST"]),
        Route("/api/v1/compat/positions/close", backend_close, methods=["POST"]),
        Route("/api/v1/users/{wallet}/stats", backend_stats, methods=["GET"]),
        Route("/api/positions", proxy_list, methods=["GET"]),
        Route("/api/positions", proxy_open, methods=["POST"]),
        Route("/api/positions", proxy_patch, methods=["PATCH"]),
        Route("/api/positions/close", proxy_close, methods=["POST"]),
        Route("/api/users/stats", proxy_stats, methods=["GET"]),
        Route("/api/bets", proxy_bets, methods=["GET"]),
    ]
