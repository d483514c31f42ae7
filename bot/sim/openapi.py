"""An OpenAPI 3 description of the simulator, built from its route table.

Every route of `bot.sim.app.build_app` except the loopback-only `/__sim/` control endpoints is
described: its path parameters, query parameters and JSON request body, with the constraints the
two API documents give (shared/api/alura-backend-api.md, user-positions-api.md) and nothing more.
Responses are not described (the backend publishes no response schemas; see NOTES.md).

The description is generated from the live route table, so a route added to the app without an
entry in `OPERATIONS` makes `openapi_spec` fail loudly instead of going unfuzzed. It is served at
`GET /openapi.json` and drives the schemathesis fuzz test (tests/reliability).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot import __version__

__all__ = ["OPERATIONS", "OpenApiError", "openapi_route", "openapi_spec"]

SPEC_PATH = "/openapi.json"
CONTROL_PREFIX = "/__sim/"

Schema = dict[str, Any]

# -- reusable pieces --------------------------------------------------------------------------

EVM_ADDRESS: Schema = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
SOLANA_ADDRESS: Schema = {"type": "string", "minLength": 32, "maxLength": 44}
INTERVAL: Schema = {"type": "string", "enum": ["1m", "5m", "15m", "1h", "4h", "1d"]}
SYMBOL: Schema = {"type": "string", "example": "BTC"}
ASSET_INDEX: Schema = {"type": "integer", "minimum": 0, "description": "0=BTC, 1=ETH, 2=SOL, ..."}
MONEY: Schema = {"type": "number"}
POSITIVE: Schema = {**MONEY, "minimum": 0, "exclusiveMinimum": True}  # OpenAPI 3.0 style
RAW_INT: Schema = {
    "oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}],
    "description": "raw integer units; the proxy also reads numeric strings",
}


def _path(name: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: Schema, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _body(properties: dict[str, Schema], required: Sequence[str] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {"required": True, "content": {"application/json": {"schema": schema}}}


PAGE = _query("page", {"type": "integer", "minimum": 1})
LOG_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 500})
CANDLE_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000})
POSITIONS_FILTERS = [
    _query("status", {"type": "string", "enum": ["open", "current", "closed", "history", "all"]}),
    _query("fixture_id", {"type": "string"}),
    PAGE,
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
]
OPEN_POSITION = _body(
    {
        "wallet_address": SOLANA_ADDRESS,
        "market_address": {"type": "string"},
        "fixture_id": {"type": "string"},
        "selected_team": {"type": "integer", "enum": [1, 2]},
        "amount": RAW_INT,
        "multiplier_bps": RAW_INT,
        "odds_home_bps": RAW_INT,
        "odds_away_bps": RAW_INT,
    },
    ["wallet_address", "market_address", "selected_team", "amount", "multiplier_bps"],
)
CLOSE_FIELDS: dict[str, Schema] = {
    "position_id": {"type": "integer", "minimum": 1},
    "wallet_address": SOLANA_ADDRESS,
    "close_price": {"type": "integer", "minimum": 0},
}

# -- the operations: (method, route path) -> OpenAPI operation --------------------------------
# `auth: True` adds the bearer-token requirement (the route is wrapped in `authed`).


def _op(
    summary: str,
    *,
    tag: str,
    auth: bool = False,
    parameters: Sequence[Schema] = (),
    body: Schema | None = None,
) -> Schema:
    op: Schema = {"summary": summary, "tags": [tag], "responses": {"default": RESPONSE}}
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = body
    op["security"] = [{"bearerAuth": []}] if auth else []
    return op


RESPONSE: Schema = {
    "description": "JSON; errors are `{statusCode, message, error}` (Alura) or "
    "`{ok: false, error}` (positions)",
    "content": {"application/json": {"schema": {}}},
}
A, S, U, IX, L, R, V, H, P = (
    "auth",
    "trading-sessions",
    "user",
    "indicators",
    "leaderboard",
    "referrals",
    "usdc-verification",
    "health",
    "positions",
)

OPERATIONS: dict[tuple[str, str], Schema] = {
    ("POST", "/auth/evm/challenge"): _op(
        "Get a sign-in challenge",
        tag=A,
        body=_body({"address": EVM_ADDRESS}, ["address"]),
    ),
    ("POST", "/auth/evm/verify"): _op(
        "Verify the personal_sign signature; returns a Bearer JWT",
        tag=A,
        body=_body(
            {
                "address": EVM_ADDRESS,
                "signature": {"type": "string", "pattern": "^0x[0-9a-fA-F]{130}$"},
                "referralCode": {"type": "string"},
            },
            ["address", "signature"],
        ),
    ),
    ("GET", "/auth/evm/trading-key"): _op("The trading agent key", tag=A, auth=True),
    ("POST", "/trading-sessions"): _op(
        "Create a quick session",
        tag=S,
        auth=True,
        body=_body(
            {
                "budget": {**MONEY, "minimum": 10},
                "profitTarget": {**POSITIVE, "maximum": 500},
                "lossThreshold": {**POSITIVE, "maximum": 100},
                "maxPositions": {"type": "integer", "minimum": 1, "maximum": 50},
                "assetIndex": ASSET_INDEX,
            },
            ["budget", "profitTarget", "assetIndex"],
        ),
    ),
    ("POST", "/trading-sessions/advance"): _op(
        "Create an advanced session",
        tag=S,
        auth=True,
        body=_body(
            {
                "amount": {**MONEY, "minimum": 10},
                "executionStrategy": {
                    "type": "string",
                    "enum": ["Conservative", "Aggressive", "Degen"],
                },
                "strategyDuration": {
                    "type": "string",
                    "enum": ["1D", "3D", "7D", "30D", "90D", "365D"],
                },
                "assetIndex": ASSET_INDEX,
                "maxWalletBudget": {"type": "boolean"},
            },
            ["executionStrategy", "strategyDuration", "assetIndex"],
        ),
    ),
    ("GET", "/trading-sessions/active"): _op("Active sessions", tag=S, auth=True),
    ("GET", "/trading-sessions/current-trade"): _op("Current trades", tag=S, auth=True),
    ("POST", "/trading-sessions/trigger-cron"): _op("Process sessions now", tag=S, auth=True),
    ("GET", "/trading-sessions/trades/{trade_id}/logs"): _op(
        "Trade logs (paged)",
        tag=S,
        auth=True,
        parameters=[_path("trade_id"), PAGE, LOG_LIMIT],
    ),
    ("POST", "/trading-sessions/trades/{trade_id}/close"): _op(
        "Close every position of a trade", tag=S, auth=True, parameters=[_path("trade_id")]
    ),
    ("POST", "/trading-sessions/positions/{position_id}/close"): _op(
        "Close one position", tag=S, auth=True, parameters=[_path("position_id")]
    ),
    ("POST", "/trading-sessions/positions/{position_id}/close-signature"): _op(
        "Signed close payload for a front end", tag=S, auth=True, parameters=[_path("position_id")]
    ),
    ("GET", "/trading-sessions/{session_id}/logs"): _op(
        "Session logs", tag=S, auth=True, parameters=[_path("session_id")]
    ),
    ("GET", "/user/profile"): _op("The user's profile", tag=U, auth=True),
    ("POST", "/user/fills/sync"): _op("Sync fills", tag=U, auth=True),
    ("POST", "/user/withdraw"): _op(
        "Withdraw funds",
        tag=U,
        auth=True,
        body=_body({"amount": POSITIVE, "destination": EVM_ADDRESS}, ["amount"]),
    ),
    ("POST", "/user/close-position"): _op(
        "Close the position on an asset",
        tag=U,
        auth=True,
        body=_body({"assetIndex": ASSET_INDEX}, ["assetIndex"]),
    ),
    ("POST", "/user/close-all-positions"): _op("Close every position", tag=U, auth=True),
    ("POST", "/user/send-usdc"): _op(
        "Send USDC",
        tag=U,
        auth=True,
        body=_body(
            {"amount": POSITIVE, "destination": EVM_ADDRESS},
            ["amount", "destination"],
        ),
    ),
    ("POST", "/user/claim-reward"): _op("Claim referral rewards", tag=U, auth=True),
    ("GET", "/api/indicators/health"): _op("Indicator service health", tag=IX),
    ("GET", "/api/indicators/candles/latest"): _op(
        "Latest candle per symbol",
        tag=IX,
        parameters=[_query("symbol", SYMBOL), _query("interval", INTERVAL)],
    ),
    ("GET", "/api/indicators/candles/aggregated/symbols"): _op("Available symbols", tag=IX),
    ("GET", "/api/indicators/candles/history/{symbol}"): _op(
        "Candle history",
        tag=IX,
        parameters=[
            _path("symbol", SYMBOL),
            _query("interval", INTERVAL),
            _query("start", {"type": "integer", "description": "ms since the epoch"}),
            _query("end", {"type": "integer", "description": "ms since the epoch"}),
            CANDLE_LIMIT,
        ],
    ),
    ("GET", "/api/indicators/candles/{symbol}/{interval}"): _op(
        "Candles by symbol and interval",
        tag=IX,
        parameters=[_path("symbol", SYMBOL), _path("interval", INTERVAL), CANDLE_LIMIT],
    ),
    ("GET", "/api/indicators/signals/all/{interval}"): _op(
        "Signals of every symbol", tag=IX, parameters=[_path("interval", INTERVAL)]
    ),
    ("GET", "/api/indicators/signals/{symbol}/{interval}"): _op(
        "Signal of one symbol",
        tag=IX,
        parameters=[_path("symbol", SYMBOL), _path("interval", INTERVAL)],
    ),
    ("GET", "/api/leaderboard/stats"): _op("Leaderboard statistics", tag=L),
    ("GET", "/api/leaderboard/rankings"): _op("Rankings", tag=L, parameters=[PAGE, LOG_LIMIT]),
    ("GET", "/api/leaderboard/user/{user_id}"): _op(
        "One user's ranking", tag=L, parameters=[_path("user_id")]
    ),
    ("GET", "/api/leaderboard/analytics"): _op("Analytics", tag=L),
    ("GET", "/api/leaderboard/health"): _op("Leaderboard health", tag=L),
    ("POST", "/referrals/check"): _op(
        "Check a referral code",
        tag=R,
        auth=True,
        body=_body({"code": {"type": "string", "minLength": 1}}, ["code"]),
    ),
    ("GET", "/referrals/{user_id}"): _op(
        "Referral information", tag=R, auth=True, parameters=[_path("user_id")]
    ),
    ("GET", "/referrals/{user_id}/stats"): _op(
        "Referral statistics", tag=R, auth=True, parameters=[_path("user_id")]
    ),
    ("POST", "/referrals/{user_id}/code"): _op(
        "Create a referral code",
        tag=R,
        auth=True,
        parameters=[_path("user_id")],
        body=_body({"code": {"type": "string", "pattern": "^[A-Za-z0-9]{4,16}$"}}),
    ),
    ("POST", "/usdc-verification/verify"): _op(
        "Verify a USDC deposit",
        tag=V,
        auth=True,
        body=_body({"txHash": {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}}, ["txHash"]),
    ),
    ("GET", "/usdc-verification/my-transactions"): _op("My deposits", tag=V, auth=True),
    ("GET", "/usdc-verification/total-deposited"): _op("Total deposited", tag=V, auth=True),
    ("GET", "/health"): _op("Service health", tag=H),
    ("GET", "/health/kafka"): _op("Kafka health", tag=H),
    # -- the user positions API: backend layer (Actix /api/v1/*)
    ("GET", "/api/v1/compat/users/{wallet}/positions"): _op(
        "A wallet's positions (backend)",
        tag=P,
        parameters=[_path("wallet", SOLANA_ADDRESS), *POSITIONS_FILTERS],
    ),
    ("POST", "/api/v1/compat/positions"): _op(
        "Open a position (backend)", tag=P, body=OPEN_POSITION
    ),
    ("POST", "/api/v1/compat/positions/close"): _op(
        "Close a position (backend)", tag=P, body=_body(CLOSE_FIELDS, ["position_id"])
    ),
    ("GET", "/api/v1/users/{wallet}/stats"): _op(
        "A wallet's statistics (backend)", tag=P, parameters=[_path("wallet", SOLANA_ADDRESS)]
    ),
    # -- proxy layer (Next.js /api/*)
    ("GET", "/api/positions"): _op(
        "A wallet's positions (proxy)",
        tag=P,
        parameters=[_query("wallet_address", SOLANA_ADDRESS, required=True), *POSITIONS_FILTERS],
    ),
    ("POST", "/api/positions"): _op("Open a position (proxy)", tag=P, body=OPEN_POSITION),
    ("PATCH", "/api/positions"): _op(
        "Close a position by action (proxy)",
        tag=P,
        body=_body(
            {"action": {"type": "string", "enum": ["close"]}, **CLOSE_FIELDS},
            ["action", "position_id"],
        ),
    ),
    ("POST", "/api/positions/close"): _op(
        "Close a position (proxy)", tag=P, body=_body(CLOSE_FIELDS, ["position_id"])
    ),
    ("GET", "/api/users/stats"): _op(
        "A wallet's statistics (proxy)",
        tag=P,
        parameters=[_query("wallet_address", SOLANA_ADDRESS, required=True)],
    ),
    ("GET", "/api/bets"): _op(
        "Legacy alias: redirects to /api/positions",
        tag=P,
        parameters=[_query("wallet_address", SOLANA_ADDRESS, required=True)],
    ),
    ("GET", SPEC_PATH): _op("This description", tag=H),
}

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


class OpenApiError(Exception):
    """The route table and `OPERATIONS` disagree (a route without a description, or the reverse)."""


def _described_routes(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    found = []
    for route in routes:
        if not isinstance(route, Route) or route.path.startswith(CONTROL_PREFIX):
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, path))
    return found


def openapi_spec(routes: Sequence[BaseRoute]) -> Schema:
    """The OpenAPI 3.0 document of `routes` (control endpoints left out)."""
    keys = _described_routes(routes)
    missing = [f"{m} {p}" for m, p in keys if (m, p) not in OPERATIONS]
    stale = [f"{m} {p}" for m, p in OPERATIONS if (m, p) not in keys]
    if missing or stale:
        raise OpenApiError(
            "simulator routes and their OpenAPI descriptions disagree: "
            + "; ".join(
                part
                for part in (
                    f"undescribed: {', '.join(missing)}" if missing else "",
                    f"described but not routed: {', '.join(stale)}" if stale else "",
                )
                if part
            )
        )
    paths: dict[str, dict[str, Schema]] = {}
    for method, path in keys:
        op = dict(OPERATIONS[method, path])
        op["operationId"] = f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path)}".rstrip("_")
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "alura-bot simulator: Alura Trading API and user positions API",
            "version": __version__,
            "description": "The simulated venue (`alura-bot sim`). Loopback-only `/__sim/` "
            "control endpoints are not part of this description.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_route(routes: Sequence[BaseRoute]) -> Route:
    """`GET /openapi.json`, describing `routes` as they are when it is first asked."""
    cached: list[Schema] = []

    async def endpoint(_: Request) -> JSONResponse:
        if not cached:
            cached.append(openapi_spec(routes))
        return JSONResponse(cached[0])

    return Route(SPEC_PATH, endpoint, methods=["GET"])
