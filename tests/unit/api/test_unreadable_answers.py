"""A 2xx answer that cannot be read: `OutcomeUnknown` for writes that move money, else BadResponse.

The server accepted a write it answered 2xx to, so a caller that recorded it as failed could
open or close twice; it must reconcile instead. A read has nothing to reconcile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.api.alura import AluraClient
from bot.api.errors import BadResponse, OutcomeUnknown, ValidationFailed
from bot.api.models import AdvancedSessionRequest, QuickSessionRequest
from bot.api.positions import PositionsClient
from bot.api.transport import Transport
from bot.domain import ExecutionStrategy, StrategyDuration
from bot.settings import HttpSettings

GARBLED = "<html><body>201 Created (upstream buffer truncated</body>"
WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
FAST = HttpSettings(rate_limit_per_s=10_000, rate_limit_burst=10_000, retry_attempts=3)
QUICK = QuickSessionRequest(budget=Decimal(50), profit_target=Decimal(10), asset_index=0)
ADVANCED = AdvancedSessionRequest(
    amount=Decimal(250),
    execution_strategy=ExecutionStrategy.AGGRESSIVE,
    strategy_duration=StrategyDuration.D7,
    asset_index=0,
)

Call = Callable[[AluraClient], Awaitable[Any]]
# Every AluraClient method marked moves_money, with the path it posts to.
MONEY: list[tuple[str, str, Call]] = [
    ("quick session", "/trading-sessions", lambda c: c.create_quick_session(QUICK)),
    (
        "advanced session",
        "/trading-sessions/advance",
        lambda c: c.create_advanced_session(ADVANCED),
    ),
    (
        "close position",
        "/trading-sessions/positions/p-1/close",
        lambda c: c.close_position("p-1"),
    ),
    ("close trade", "/trading-sessions/trades/t-1/close", lambda c: c.close_trade("t-1")),
    ("trigger cron", "/trading-sessions/trigger-cron", lambda c: c.trigger_cron()),
    ("withdraw", "/user/withdraw", lambda c: c.withdraw(Decimal(5))),
    ("user close position", "/user/close-position", lambda c: c.close_position_by_asset(0)),
    ("close all", "/user/close-all-positions", lambda c: c.close_all_positions()),
    ("send usdc", "/user/send-usdc", lambda c: c.send_usdc(Decimal(5), "0xabc")),
    ("claim reward", "/user/claim-reward", lambda c: c.claim_reward()),
]


def garbled(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, text=GARBLED)


@pytest.mark.parametrize(("route", "call"), [m[1:] for m in MONEY], ids=[m[0] for m in MONEY])
async def test_garbled_2xx_to_a_money_move_is_outcome_unknown(
    venue: Any, client_for: Any, route: str, call: Call
) -> None:
    venue.on("POST", route, garbled)
    async with client_for() as client:
        with pytest.raises(OutcomeUnknown) as info:
            await call(client)
    err = info.value
    assert err.status == 201 and err.method == "POST"
    assert err.endpoint.format(position_id="p-1", trade_id="t-1") == route
    assert "upstream buffer truncated" in err.body
    assert isinstance(err.__cause__, BadResponse)
    assert sum(r.url.path == route for r in venue.requests) == 1  # never resent


async def test_session_create_with_a_201_garbled_body_keeps_the_detail(
    venue: Any, client_for: Any
) -> None:
    venue.on("POST", "/trading-sessions", garbled)
    async with client_for() as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.create_quick_session(QUICK)
    text = str(info.value)
    assert "not JSON" in text and "[POST /trading-sessions -> 201]" in text
    assert "upstream buffer truncated" in text


async def test_session_create_answer_of_the_wrong_shape_is_outcome_unknown(
    venue: Any, client_for: Any
) -> None:
    venue.on("POST", "/trading-sessions", {"status": "active"}, status=201)  # no id
    async with client_for() as client:
        with pytest.raises(OutcomeUnknown, match=r"id: Field required") as info:
            await client.create_quick_session(QUICK)
    assert info.value.endpoint == "/trading-sessions"


async def test_refused_money_move_is_still_a_refusal(venue: Any, client_for: Any) -> None:
    """A 4xx is the server saying no: nothing was applied, so no reconciliation is owed."""
    venue.on("POST", "/trading-sessions", {"message": "budget too small"}, status=400)
    async with client_for() as client:
        with pytest.raises(ValidationFailed):
            await client.create_quick_session(QUICK)


@pytest.mark.parametrize(
    "call",
    [lambda c: c.health(), lambda c: c.active_sessions(), lambda c: c.profile()],
    ids=["health", "active sessions", "profile"],
)
async def test_garbled_2xx_to_a_read_is_bad_response(
    venue: Any, client_for: Any, call: Call
) -> None:
    for path in ("/health", "/trading-sessions/active", "/user/profile"):
        venue.on("GET", path, lambda _: httpx.Response(200, text=GARBLED))
    async with client_for() as client:
        with pytest.raises(BadResponse) as info:
            await call(client)
    assert not isinstance(info.value, OutcomeUnknown)
    assert info.value.status == 200 and "upstream buffer truncated" in info.value.body


# --------------------------------------------------------------------------- positions client


def positions(answer: Callable[[httpx.Request], httpx.Response], seen: list[str]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return answer(request)

    transport = Transport(
        "http://positions.test", FAST, http_transport=httpx.MockTransport(handler)
    )
    return PositionsClient(transport, wallet=WALLET)


@pytest.mark.parametrize("via", ["post", "patch"])
async def test_positions_close_with_a_201_garbled_body_is_outcome_unknown(via: Any) -> None:
    seen: list[str] = []
    async with positions(garbled, seen) as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.close_position(7, via=via)
    err = info.value
    assert err.status == 201
    assert err.endpoint == ("/api/positions/close" if via == "post" else "/api/positions")
    assert "upstream buffer truncated" in err.body
    assert isinstance(err.__cause__, BadResponse)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "body",
    [[1, 2], {"ok": True, "position": {"id": 7}}],
    ids=["not an object", "position missing fields"],
)
async def test_positions_open_answer_that_cannot_be_read_is_outcome_unknown(body: Any) -> None:
    seen: list[str] = []
    async with positions(lambda _: httpx.Response(201, json=body), seen) as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.open_position(
                market="m-1", selected_team=1, amount=1_000, multiplier_bps=12_000
            )
    assert info.value.endpoint == "/api/positions" and info.value.status == 201
    assert seen == ["POST /api/positions"]


async def test_positions_close_with_ok_false_stays_a_refusal() -> None:
    """`{ok: false}` is an explicit no, not an unreadable answer: nothing to reconcile."""
    seen: list[str] = []
    refused = httpx.Response(200, json={"ok": False, "error": "position_id required"})
    async with positions(lambda _: refused, seen) as client:
        with pytest.raises(ValidationFailed) as info:
            await client.close_position(7)
    assert not isinstance(info.value, OutcomeUnknown)


async def test_positions_garbled_read_is_bad_response() -> None:
    seen: list[str] = []
    async with positions(lambda _: httpx.Response(200, text=GARBLED), seen) as client:
        with pytest.raises(BadResponse) as info:
            await client.list_positions()
        with pytest.raises(BadResponse):
            await client.stats()
    assert not isinstance(info.value, OutcomeUnknown)
    assert info.value.endpoint == "/api/positions" and info.value.status == 200
