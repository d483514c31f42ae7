"""Hostile venue answers to the API clients: every case is a typed ApiError or a validated value.

A property-based venue (httpx.MockTransport) answers every endpoint family of AluraClient and
PositionsClient with garbage: invalid JSON, HTML error pages under 200/500/502, empty bodies,
valid samples with fields dropped, added or replaced by wrong types, NaN, Infinity, 1e308,
negative or huge numbers, broken compression, redirect loops, garbage Retry-After headers, and
position pages that lie about their paging. Whatever comes back, the call ends in a subclass of
`ApiError` or returns the endpoint's model with every declared number finite; nothing else
(KeyError, TypeError, ValueError, OverflowError, pydantic's ValidationError, an httpx error)
may escape. Hypothesis runs each example on a fresh client and an event loop of its own.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from bot.api import models as m
from bot.api.alura import AluraClient
from bot.api.auth import WalletAuth
from bot.api.errors import ApiError, BadResponse
from bot.api.positions import PaginationError, Position, PositionPage, PositionsClient, Stats
from bot.api.transport import Transport
from bot.settings import HttpSettings
from tests.conftest import TEST_KEY, MockVenue

WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
FAST = HttpSettings(rate_limit_per_s=10_000, rate_limit_burst=10_000, retry_attempts=3)
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
AUTH_PATHS = ("/auth/evm/challenge", "/auth/evm/verify")


async def no_sleep(_: float) -> None:
    """Retry backoff goes through here: nobody waits."""


# --------------------------------------------------------------------------- the venue's lies

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
NOT_JSON = [
    b"",
    b" ",
    b"{",
    b"[1, 2",
    b'{"candles": [',
    b"undefined",
    b"NaN",
    b"<html><body>Internal Server Error</body></html>",
    HTML_PAGE.encode(),
    b"\xff\xfe\x00garbage",
    b"\x00" * 16,
    b'{"a": 1}{"b": 2}',
    b"null",
    b"true",
    b"12345678901234567890123456789",
    b'"just a string"',
]
# Numbers a careless parser trips on: NaN/Infinity literals (Python's json reads them), 1e308,
# overflow to inf, negatives, zero, beyond int64 and beyond 2**53.
NASTY_NUMBERS = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        1e308,
        -1e308,
        1e-308,
        -1.0,
        -100,
        0,
        0.0,
        2**63,
        -(2**63) - 1,
        10**30,
        2**53 + 1,
        0.5,
        1e18,
    ]
)
NASTY_VALUES = (
    NASTY_NUMBERS
    | st.sampled_from(
        [None, True, False, "", "NaN", "1e999", "abc", "-1", [], {}, [None], {"x": 1}]
    )
    | st.text(max_size=8)
)
JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
)
ANY_JSON = st.recursive(
    JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
STATUSES = st.sampled_from([200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 418, 429, 500, 502])
RETRY_AFTER = st.sampled_from(
    [None, "0", "1", "-5", "abc", "1e309", "NaN", "inf", "Wed, 99 Foo 2024 25:61:61 GMT", ""]
)


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """A valid sample with fields dropped, replaced by nasty values, or extra ones added."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            action = draw(st.sampled_from(["keep", "keep", "recurse", "drop", "replace"]))
            if action == "drop":
                continue
            if action == "replace":
                out[key] = draw(NASTY_VALUES)
            elif action == "recurse" and depth < 4:
                out[key] = draw(mutated(item, depth + 1))
            else:
                out[key] = item
        out.update(draw(st.dictionaries(st.text(max_size=6), ANY_JSON, max_size=2)))
        return out
    if isinstance(value, list):
        items = [draw(mutated(v, depth + 1)) if depth < 4 else v for v in value]
        if items and draw(st.booleans()):
            items.append(items[draw(st.integers(0, len(items) - 1))])  # a duplicate row
        return draw(st.sampled_from([items, items[::-1], [], items[:1]]))
    if draw(st.integers(0, 3)) == 0:
        return draw(NASTY_VALUES)
    return value


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> httpx.Response:
        # a stream, not `content=`: the client (not this mock) decodes what the headers claim
        return httpx.Response(self.status, headers=self.headers, stream=httpx.ByteStream(self.body))


def dumps(value: Any) -> bytes:
    """JSON as a sloppy server writes it: NaN and Infinity as bare literals."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def answers(draw: st.DrawFn, sample: Any) -> Answer:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "not_json", "any_json", "html"]))
    if kind == "mutated":
        body = dumps(draw(mutated(sample)))
    elif kind == "not_json":
        body = draw(st.sampled_from(NOT_JSON) | st.binary(max_size=40))
    elif kind == "html":
        body = HTML_PAGE.encode()
    else:
        body = dumps(draw(ANY_JSON))
    headers = {
        "content-type": draw(
            st.sampled_from(["application/json", "text/html", "text/plain; charset=bogus"])
        )
    }
    retry_after = draw(RETRY_AFTER)
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if draw(st.integers(0, 9)) == 0:
        headers["content-encoding"] = "gzip"  # a body that is not gzip at all
    elif draw(st.integers(0, 9)) == 0:
        headers["content-encoding"] = "gzip"
        body = gzip.compress(body)
    return Answer(draw(STATUSES), body, headers)


# --------------------------------------------------------------------------- a hostile venue


class HostileVenue:
    """Answers every request with the next scripted answer; logs in for real unless told not to."""

    def __init__(self, script: list[Answer], *, hostile_auth: bool = False) -> None:
        self.script = script
        self.hostile_auth = hostile_auth
        self.honest = MockVenue()
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path in AUTH_PATHS and not self.hostile_auth:
            return self.honest.handler(request)
        answer = self.script[(len(self.requests) - 1) % len(self.script)]
        return answer.response()


def alura_client(venue: HostileVenue) -> AluraClient:
    transport = Transport(
        "http://venue.test",
        FAST,
        http_transport=httpx.MockTransport(venue.handler),
        sleep=no_sleep,
    )
    return AluraClient(transport, WalletAuth(SecretStr(TEST_KEY), transport))


def positions_client(venue: HostileVenue, layer: str = "proxy") -> PositionsClient:
    transport = Transport(
        "http://venue.test",
        FAST,
        http_transport=httpx.MockTransport(venue.handler),
        sleep=no_sleep,
    )
    return PositionsClient(transport, wallet=WALLET, layer=layer)


# --------------------------------------------------------------------------- validated values


def assert_finite(value: Any, where: str) -> None:
    """Every number in the declared fields of a model is finite (extras are kept as sent)."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            assert_finite(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            assert_finite(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_finite(item, f"{where}[{key!r}]")
    elif isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value!r} passed validation"
    elif isinstance(value, Decimal):
        assert value.is_finite(), f"{where} = {value!r} passed validation"
    elif isinstance(value, datetime):
        assert value.year >= 1, where


def check_candles(series: m.CandleSeries) -> None:
    for c in series.candles:
        for name in ("open", "high", "low", "close"):
            price = getattr(c, name)
            assert math.isfinite(price) and price > 0, f"candle {name} {price!r} accepted"
        assert math.isfinite(c.volume) and c.volume >= 0


def check_signal(sig: m.Signal) -> None:
    assert 0 <= sig.strength <= 1, sig.strength
    assert all(math.isfinite(v) for v in sig.indicators.values())


def check_signals(listing: m.SignalList) -> None:
    for sig in listing.signals:
        check_signal(sig)


# --------------------------------------------------------------------------- endpoint families

QUICK = m.QuickSessionRequest(budget=Decimal(100), profit_target=Decimal(3), asset_index=0)
ADVANCED = m.AdvancedSessionRequest(
    amount=Decimal(100), execution_strategy="Conservative", strategy_duration="1D", asset_index=1
)
SESSION = {
    "id": "s1",
    "assetIndex": 0,
    "status": "active",
    "kind": "quick",
    "budget": 100.5,
    "tradeId": "t1",
    "realizedPnl": -1.25,
    "feesPaid": 0.04,
    "createdAt": "2025-01-06T00:00:00Z",
}
CANDLE = {"time": 1736121600000, "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5}
SIGNAL = {
    "symbol": "BTC",
    "interval": "1h",
    "signal": "BUY",
    "strength": 0.5,
    "indicators": {"rsi": 55.0, "close": 100.5},
    "candleTime": 1736121600000,
}
TRADE = {
    "id": "t1",
    "sessionId": "s1",
    "assetIndex": 0,
    "status": "open",
    "positions": [
        {
            "id": "p1",
            "assetIndex": 0,
            "side": "long",
            "size": 0.1,
            "entryPrice": 100.0,
            "unrealizedPnl": 1.5,
        }
    ],
}
LOG_PAGE = {
    "logs": [{"time": "2025-01-06T00:00:00Z", "message": "hi"}],
    "page": 1,
    "limit": 50,
    "total": 1,
}

Call = Callable[[AluraClient], Awaitable[Any]]
# (name, call, what a success must be, its check, a valid sample answer)
ALURA: list[tuple[str, Call, type[BaseModel], Callable[[Any], None] | None, Any]] = [
    ("create_quick", lambda c: c.create_quick_session(QUICK), m.TradingSession, None, SESSION),
    (
        "create_advanced",
        lambda c: c.create_advanced_session(ADVANCED),
        m.TradingSession,
        None,
        SESSION,
    ),
    ("active", lambda c: c.active_sessions(), m.SessionList, None, {"sessions": [SESSION]}),
    ("current_trade", lambda c: c.current_trade(), m.CurrentTrade, None, {"trades": [TRADE]}),
    ("session_logs", lambda c: c.session_logs("s1"), m.LogPage, None, LOG_PAGE),
    ("trade_logs", lambda c: c.trade_logs("t1", page=2, limit=10), m.LogPage, None, LOG_PAGE),
    ("close_position", lambda c: c.close_position("p1"), m.Generic, None, {"ok": True}),
    ("close_trade", lambda c: c.close_trade("t1"), m.Generic, None, {"ok": True}),
    ("trigger_cron", lambda c: c.trigger_cron(), m.Generic, None, {"ok": True, "fills": 1}),
    ("trading_key", lambda c: c.trading_key(), m.Generic, None, {"address": "0x" + "1" * 40}),
    (
        "profile",
        lambda c: c.profile(),
        m.Profile,
        None,
        {"address": "0x" + "1" * 40, "usdcBalance": 1000.5},
    ),
    ("fills_sync", lambda c: c.sync_fills(), m.Generic, None, {"ok": True, "fills": []}),
    ("withdraw", lambda c: c.withdraw(Decimal("12.5"), "0x" + "2" * 40), m.Generic, None, {}),
    ("close_by_asset", lambda c: c.close_position_by_asset(0), m.Generic, None, {"ok": True}),
    ("close_all", lambda c: c.close_all_positions(), m.Generic, None, {"ok": True}),
    ("claim_reward", lambda c: c.claim_reward(), m.Generic, None, {"ok": True}),
    ("indicators_health", lambda c: c.indicators_health(), m.Health, None, {"status": "ok"}),
    ("candles_latest", lambda c: c.candles_latest(interval="1h"), m.Generic, None, {"BTC": CANDLE}),
    (
        "candles_history",
        lambda c: c.candles_history("BTC", interval="1h", limit=3),
        m.CandleSeries,
        check_candles,
        {"symbol": "BTC", "interval": "1h", "candles": [CANDLE, {**CANDLE, "time": 1736125200000}]},
    ),
    (
        "candles",
        lambda c: c.candles("BTC", "1h", limit=2),
        m.CandleSeries,
        check_candles,
        {"candles": [CANDLE, {**CANDLE, "time": 1736125200000}]},
    ),
    (
        "aggregated_symbols",
        lambda c: c.refresh_assets(),
        object,
        None,
        {"symbols": [{"symbol": "BTC", "assetIndex": 0, "intervals": ["1h"]}]},
    ),
    ("signal", lambda c: c.signal("BTC", "1h"), m.Signal, check_signal, SIGNAL),
    (
        "signals_all",
        lambda c: c.signals_all("1h"),
        m.SignalList,
        check_signals,
        {"interval": "1h", "signals": [SIGNAL, {**SIGNAL, "symbol": "ETH"}]},
    ),
    ("lb_stats", lambda c: c.leaderboard_stats(), m.Generic, None, {"users": 1}),
    ("lb_rankings", lambda c: c.leaderboard_rankings(page=1), m.Generic, None, {"rankings": []}),
    ("lb_user", lambda c: c.leaderboard_user("u-1"), m.Generic, None, {"rank": 1}),
    ("lb_analytics", lambda c: c.leaderboard_analytics(), m.Generic, None, {"byAsset": {}}),
    ("lb_health", lambda c: c.leaderboard_health(), m.Health, None, {"status": "ok"}),
    ("referral", lambda c: c.referral("u-1"), m.Generic, None, {"codes": []}),
    ("referral_stats", lambda c: c.referral_stats("u-1"), m.Generic, None, {"referred": 0}),
    ("referral_code", lambda c: c.create_referral_code("u-1", "ABCD"), m.Generic, None, {}),
    ("referral_check", lambda c: c.check_referral_code("ABCD"), m.Generic, None, {}),
    ("usdc_verify", lambda c: c.verify_usdc_deposit("0x" + "a" * 64), m.Generic, None, {}),
    ("usdc_txs", lambda c: c.my_usdc_transactions(), m.Generic, None, {"transactions": []}),
    ("usdc_total", lambda c: c.total_deposited(), m.Generic, None, {"total": 1}),
    ("health", lambda c: c.health(), m.Health, None, {"status": "ok"}),
    ("kafka_health", lambda c: c.kafka_health(), m.Health, None, {"status": "ok"}),
]


def outcome(coro: Awaitable[Any]) -> Any:
    """Run one call: its value, or the ApiError it raised. Anything else propagates (fails)."""

    async def run() -> Any:
        try:
            return await coro
        except ApiError as exc:
            str(exc), repr(exc)  # rendering an error must not fail either
            return exc

    return asyncio.run(run())


async def _call(client_factory: Callable[[], Any], call: Callable[[Any], Awaitable[Any]]) -> Any:
    client = client_factory()
    try:
        return await call(client)
    finally:
        await client.aclose()


def check_result(result: Any, model: type, check: Callable[[Any], None] | None) -> None:
    if isinstance(result, ApiError):
        return
    assert isinstance(result, model), f"got {type(result).__name__}, expected {model.__name__}"
    assert_finite(result, model.__name__)
    if check is not None:
        check(result)


@pytest.mark.parametrize(
    ("call", "model", "check", "sample"),
    [pytest.param(*row[1:], id=row[0]) for row in ALURA],
)
def test_alura_endpoint_answers_garbage_with_a_typed_error(
    call: Call, model: type, check: Callable[[Any], None] | None, sample: Any
) -> None:
    @EXAMPLES
    @given(script=st.lists(answers(sample), min_size=1, max_size=4))
    def prop(script: list[Answer]) -> None:
        venue = HostileVenue(script)
        result = outcome(_call(lambda: alura_client(venue), call))
        check_result(result, model, check)

    prop()


@EXAMPLES
@given(
    challenge=answers({"address": "0x" + "1" * 40, "nonce": "n", "message": "sign me"}),
    verify=answers({"ok": True, "accessToken": "tok", "tokenType": "Bearer", "expiresIn": 60}),
)
def test_login_answers_garbage_with_a_typed_error(challenge: Answer, verify: Answer) -> None:
    """A lying auth service: every authed call ends in an ApiError, never a crash."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/evm/challenge":
            return challenge.response()
        if request.url.path == "/auth/evm/verify":
            return verify.response()
        return httpx.Response(401 if "authorization" not in request.headers else 200, json={})

    transport = Transport(
        "http://venue.test", FAST, http_transport=httpx.MockTransport(handler), sleep=no_sleep
    )
    client = AluraClient(transport, WalletAuth(SecretStr(TEST_KEY), transport))

    async def call(c: AluraClient) -> Any:
        try:
            return await c.profile()
        finally:
            await c.aclose()

    result = outcome(call(client))
    check_result(result, m.Profile, None)


def field_or_garbage(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return valid | NASTY_VALUES


@st.composite
def candle_rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {
        "time": draw(field_or_garbage(st.integers(1_736_000_000_000, 1_737_000_000_000))),
    }
    for name in ("open", "high", "low", "close", "volume"):
        if draw(st.integers(0, 9)):
            row[name] = draw(field_or_garbage(st.floats(1, 1e6)))
    return row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(candle_rows(), max_size=5), envelope=st.booleans())
def test_candle_rows_with_nasty_numbers_are_refused_or_finite(
    rows: list[dict[str, Any]], envelope: bool
) -> None:
    """Every field of every candle is fair game; what validates is positive and finite."""
    body = {"candles": rows} if envelope else rows
    venue = HostileVenue([Answer(200, dumps(body))])
    result = outcome(_call(lambda: alura_client(venue), lambda c: c.candles("BTC", "1h")))
    check_result(result, m.CandleSeries, check_candles)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sig=st.fixed_dictionaries(
        {},
        optional={
            "symbol": field_or_garbage(st.sampled_from(["BTC", "eth"])),
            "interval": field_or_garbage(st.just("1h")),
            "signal": field_or_garbage(st.sampled_from(["BUY", "SELL", "NEUTRAL", "HOLD"])),
            "strength": field_or_garbage(st.floats(0, 1)),
            "indicators": field_or_garbage(
                st.dictionaries(st.sampled_from(["rsi", "close"]), field_or_garbage(st.floats()))
            ),
            "candleTime": field_or_garbage(st.integers(0, 2**62)),
        },
    )
)
def test_signals_with_nasty_fields_are_refused_or_in_range(sig: dict[str, Any]) -> None:
    venue = HostileVenue([Answer(200, dumps({"signals": [sig]}))])
    result = outcome(_call(lambda: alura_client(venue), lambda c: c.signals_all("1h")))
    check_result(result, m.SignalList, check_signals)


# --------------------------------------------------------------------------- the positions API


def position(pid: int, **over: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "wallet_address": WALLET,
        "market_address": "MarketXYZ123",
        "position_type": "OPEN",
        "selected_team": 1,
        "amount": 500_000_000,
        "multiplier_bps": 12_000,
        "payout_expected": 600_000_000,
        "status": 1,
        "is_claimed": False,
        "pnl": 0,
        "fee_paid": 2_000_000,
        "timestamp": "2024-10-10T12:00:00Z",
        "created_at": "2024-10-10T10:00:00Z",
        "updated_at": "2024-10-10T11:00:00Z",
        "confirmation_status": "confirmed",
        "market": {"fixture_id": "123", "home_team": "A", "away_team": "B", "status": 1},
        **over,
    }


PAGE = {
    "ok": True,
    "positions": [position(3), position(2)],
    "pagination": {"page": 1, "limit": 50, "total": 2, "total_pages": 1},
}
STATS = {
    "ok": True,
    "stats": {
        "total_positions": 42,
        "open_positions": 3,
        "closed_positions": 39,
        "won_positions": 21,
        "lost_positions": 18,
        "total_volume": 1_200_000_000,
        "total_pnl": -34_000_000,
        "total_fees_paid": 5_600_000,
        "win_rate": 0.538,
    },
}
ONE = {"ok": True, "position": position(7)}


async def _walk(c: PositionsClient) -> list[Position]:
    return [p async for p in c.iter_positions(page_size=2, max_pages=6)]


PCall = Callable[[PositionsClient], Awaitable[Any]]
POSITIONS: list[tuple[str, str, PCall, type, Any]] = [
    ("list_proxy", "proxy", lambda c: c.list_positions(status="open"), PositionPage, PAGE),
    ("list_backend", "backend", lambda c: c.list_positions(page=2), PositionPage, PAGE),
    ("bets", "proxy", lambda c: c.list_bets(), PositionPage, PAGE),
    ("walk_proxy", "proxy", _walk, list, PAGE),
    ("walk_backend", "backend", _walk, list, PAGE),
    ("stats_proxy", "proxy", lambda c: c.stats(), Stats, STATS),
    ("stats_backend", "backend", lambda c: c.stats(), Stats, STATS),
    (
        "open",
        "proxy",
        lambda c: c.open_position(
            market="MarketXYZ123", selected_team=1, amount=5, multiplier_bps=12_000
        ),
        Position,
        ONE,
    ),
    ("close_post", "backend", lambda c: c.close_position(7, close_price=9), Position, ONE),
    ("close_patch", "proxy", lambda c: c.close_position(7, via="patch"), Position, ONE),
]


@pytest.mark.parametrize(
    ("layer", "call", "model", "sample"),
    [pytest.param(*row[1:], id=row[0]) for row in POSITIONS],
)
def test_positions_endpoint_answers_garbage_with_a_typed_error(
    layer: str, call: PCall, model: type, sample: Any
) -> None:
    @EXAMPLES
    @given(script=st.lists(answers(sample), min_size=1, max_size=4))
    def prop(script: list[Answer]) -> None:
        venue = HostileVenue(script)
        result = outcome(_call(lambda: positions_client(venue, layer), call))
        if isinstance(result, list):
            assert all(isinstance(p, Position) for p in result)
            ids = [p.id for p in result]
            assert len(ids) == len(set(ids)), "a position was yielded twice"
        check_result(result, model, None)

    prop()


@st.composite
def lying_pages(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Pages whose totals change, repeat, overlap, run past the total or misreport paging."""
    pages = []
    for _ in range(draw(st.integers(1, 8))):
        ids = draw(st.lists(st.integers(1, 12), max_size=4))
        if draw(st.booleans()):
            ids = sorted(set(ids), reverse=True)  # mostly well ordered, sometimes not
        pages.append(
            {
                "ok": True,
                "positions": [position(i) for i in ids],
                "pagination": {
                    "page": draw(st.integers(0, 6) | st.just(-1)),
                    "limit": draw(st.sampled_from([2, 2, 2, 1, 3, 0, 100])),
                    "total": draw(
                        st.integers(0, 20)
                        | st.sampled_from([-1, 10**20, math.inf, math.nan, 1e308, "7", 4.0])
                    ),
                    "total_pages": draw(st.none() | st.integers(-1, 10)),
                },
            }
        )
    return pages


@EXAMPLES
@given(pages=lying_pages(), layer=st.sampled_from(["proxy", "backend"]), honest_page=st.booleans())
def test_lying_pagination_ends_or_refuses_without_duplicates(
    pages: list[dict[str, Any]], layer: str, honest_page: bool
) -> None:
    """Totals that change, repeated pages, pages beyond the total: the walk ends within its
    page budget with unique positions, or refuses with a PaginationError / BadResponse."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        body = json.loads(dumps(pages[calls % len(pages)]))
        if honest_page:  # answer the page that was asked (the rest still lies)
            body["pagination"]["page"] = int(request.url.params.get("page", 1))
            body["pagination"]["limit"] = int(request.url.params.get("limit", 2))
        calls += 1
        return httpx.Response(200, content=dumps(body))

    transport = Transport(
        "http://venue.test", FAST, http_transport=httpx.MockTransport(handler), sleep=no_sleep
    )
    client = PositionsClient(transport, wallet=WALLET, layer=layer)
    max_pages = 5

    async def walk() -> list[Position]:
        try:
            return [p async for p in client.iter_positions(page_size=2, max_pages=max_pages)]
        finally:
            await client.aclose()

    result = outcome(walk())
    assert calls <= max_pages, f"{calls} page reads for a budget of {max_pages}"
    if isinstance(result, ApiError):
        assert isinstance(result, PaginationError | BadResponse), repr(result)
        return
    served = {p["id"] for page in pages for p in page["positions"]}
    ids = [p.id for p in result]
    assert len(ids) == len(set(ids)), "a position was yielded twice"
    assert set(ids) <= served


# --------------------------------------------------------------------------- transport edges


@pytest.mark.parametrize("moves_money", [False, True])
def test_redirect_loop_is_a_typed_error(moves_money: bool) -> None:
    """A venue that redirects to itself forever: a transport failure, or OutcomeUnknown when
    the request moves money (it reached the server, maybe many times)."""
    from bot.api.errors import OutcomeUnknown, TransportError

    venue = HostileVenue([Answer(307, b"", {"location": "/trading-sessions"})])
    call: Call = (
        (lambda c: c.create_quick_session(QUICK)) if moves_money else (lambda c: c.health())
    )
    result = outcome(_call(lambda: alura_client(venue), call))
    assert isinstance(result, OutcomeUnknown if moves_money else TransportError), repr(result)


@pytest.mark.parametrize("moves_money", [False, True])
def test_undecodable_compressed_body_is_a_typed_error(moves_money: bool) -> None:
    """`Content-Encoding: gzip` over bytes that are not gzip: the answer was lost on the way."""
    from bot.api.errors import OutcomeUnknown

    venue = HostileVenue([Answer(200, b"{not gzip", {"content-encoding": "gzip"})])
    call: Call = (
        (lambda c: c.create_quick_session(QUICK)) if moves_money else (lambda c: c.health())
    )
    result = outcome(_call(lambda: alura_client(venue), call))
    assert isinstance(result, ApiError), repr(result)
    if moves_money:
        assert isinstance(result, OutcomeUnknown), repr(result)


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"candles":' * 60_000 + b"[]" + b"}" * 60_000],
    ids=["arrays", "objects"],
)
@pytest.mark.parametrize("status", [200, 500])
def test_deeply_nested_json_is_refused_not_a_crash(body: bytes, status: int) -> None:
    """eth-account (via py_ecc) raises the recursion limit to 100000, so the C JSON parser
    would overflow the stack on this 200 KB answer and kill the daemon with SIGSEGV."""
    venue = HostileVenue([Answer(status, body)])
    result = outcome(_call(lambda: alura_client(venue), lambda c: c.candles("BTC", "1h")))
    assert isinstance(result, ApiError), repr(result)
    if status == 200:
        assert isinstance(result, BadResponse), repr(result)
