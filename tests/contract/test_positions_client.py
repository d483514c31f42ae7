"""PositionsClient against the real simulator on loopback, both layers, every documented error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.api.errors import Conflict, NotFound, ValidationFailed
from bot.api.positions import PositionsClient, PositionStatus, Units, expected_payout
from bot.api.transport import Transport

WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
OTHER = "11111111111111111111111111111111"


@pytest.fixture(params=["proxy", "backend"])
async def client(request: Any, sim_server: Any) -> AsyncIterator[PositionsClient]:
    c = PositionsClient(Transport(sim_server.url), wallet=WALLET, layer=request.param)
    yield c
    await c.aclose()


def open_market(sim_server: Any) -> Any:
    now = sim_server.sim.clock.now_ms()
    return next(m for m in sim_server.sim.positions.markets() if m.settles_at_ms > now + 3_600_000)


async def test_unknown_wallet_lists_empty_on_proxy_and_not_found_on_backend(
    client: PositionsClient,
) -> None:
    if client.layer == "proxy":
        page = await client.list_positions()
        assert page.positions == [] and page.pagination.total == 0
    else:
        with pytest.raises(NotFound):
            await client.list_positions()
    assert [p async for p in client.iter_positions()] == []


async def test_open_list_stats_close(client: PositionsClient, sim_server: Any) -> None:
    market = open_market(sim_server)
    opened = await client.open_position(
        market=market.address,
        selected_team=1,
        amount=500_000_000,
        multiplier_bps=12000,
        odds_home_bps=10500,
        odds_away_bps=9500,
    )
    assert opened.status is PositionStatus.PLACED and opened.position_type == "OPEN"
    assert opened.created_at.tzinfo is not None
    assert expected_payout(opened) == 525_000_000  # the chosen side's odds override
    listed = await client.list_positions(status="open")
    assert [p.id for p in listed.positions] == [opened.id]
    assert (await client.stats()).open_positions == 1
    closed = await client.close_position(opened.id, close_price=550_000_000)
    assert closed.close_pnl == 50_000_000 and not closed.is_open
    assert (await client.list_positions(status="open")).positions == []
    assert [p.id for p in (await client.list_positions(status="closed")).positions] == [opened.id]
    with pytest.raises(Conflict):
        await client.close_position(opened.id)


async def test_patch_close_form(sim_server: Any) -> None:
    client = PositionsClient(Transport(sim_server.url), wallet=WALLET, layer="proxy")
    market = open_market(sim_server)
    p = await client.open_position(
        market=market.address, selected_team=2, amount=10, multiplier_bps=15000
    )
    closed = await client.close_position(p.id, via="patch")
    assert closed.close_pnl == 0 and closed.status != PositionStatus.PLACED
    bets = await client.list_bets()
    assert [b.id for b in bets.positions] == [p.id]
    await client.aclose()


async def test_owner_check_refuses_a_foreign_close(sim_server: Any) -> None:
    mine = PositionsClient(Transport(sim_server.url), wallet=WALLET)
    theirs = PositionsClient(Transport(sim_server.url), wallet=OTHER)
    p = await mine.open_position(
        market=open_market(sim_server).address, selected_team=1, amount=100, multiplier_bps=12000
    )
    with pytest.raises(ValidationFailed, match="NOT_OWNER"):
        await theirs.close_position(p.id)
    await mine.aclose()
    await theirs.aclose()


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("GET", "/api/positions", None, "wallet_address is required"),
        ("POST", "/api/positions", {"wallet_address": WALLET}, "Missing required fields"),
        (
            "POST",
            "/api/positions",
            {
                "wallet_address": WALLET,
                "market_address": "m",
                "selected_team": 1,
                "amount": "lots",
                "multiplier_bps": 12000,
            },
            "INVALID_NUMERIC",
        ),
        ("PATCH", "/api/positions", {"action": "close"}, "position_id required"),
        ("PATCH", "/api/positions", {"action": "reopen", "position_id": 1}, "Unsupported action"),
        (
            "POST",
            "/api/v1/compat/positions",
            {
                "wallet_address": WALLET,
                "market_address": "m",
                "selected_team": 3,
                "amount": 1,
                "multiplier_bps": 1,
            },
            "INVALID_ARGS",
        ),
    ],
)
async def test_documented_errors_map_to_validation_failed(
    sim_server: Any, method: str, path: str, body: Any, message: str
) -> None:
    transport = Transport(sim_server.url)
    with pytest.raises(ValidationFailed) as info:
        await transport.request(method, path, json_body=body, moves_money=method != "GET")
    assert info.value.messages == [message]
    await transport.aclose()


async def test_bad_json_body(sim_server: Any) -> None:
    async with httpx.AsyncClient(base_url=sim_server.url) as raw:
        resp = await raw.post(
            "/api/positions", content=b"{oops", headers={"content-type": "application/json"}
        )
    assert resp.status_code == 400 and resp.json() == {"ok": False, "error": "BAD_JSON"}


async def test_client_refuses_bad_input_before_sending(client: PositionsClient) -> None:
    with pytest.raises(Exception, match="selected_team"):
        await client.open_position(market="m", selected_team=3, amount=1, multiplier_bps=1)
    with pytest.raises(Exception, match="limit"):
        await client.list_positions(limit=101)


async def test_big_integers_survive_exactly(client: PositionsClient, sim_server: Any) -> None:
    big = 2**60 + 1
    p = await client.open_position(
        market=open_market(sim_server).address, selected_team=1, amount=big, multiplier_bps=10000
    )
    assert p.amount == big
    assert Units(9).display(big) == Decimal(big) / Decimal(10**9)


async def test_walk_sees_every_position_once_despite_inserts(sim_server: Any) -> None:
    venue = sim_server.sim.positions
    market = open_market(sim_server)
    for _ in range(230):
        venue.open_position(
            WALLET, market.address, selected_team=1, amount=10, multiplier_bps=12000
        )
    original = {p.id for p in venue.list_positions(WALLET, None, None, 1, 100).positions}
    client = PositionsClient(Transport(sim_server.url), wallet=WALLET)
    got: list[int] = []
    async for p in client.iter_positions(page_size=50):
        got.append(p.id)
        if len(got) % 40 == 0:
            for _ in range(7):
                venue.open_position(
                    WALLET, market.address, selected_team=2, amount=10, multiplier_bps=12000
                )
    assert len(got) == len(set(got))
    assert original <= set(got)
    assert len(got) >= 230
    await client.aclose()


async def test_walk_misses_nothing_when_positions_leave_the_filter(sim_server: Any) -> None:
    venue = sim_server.sim.positions
    market = open_market(sim_server)
    ids = [
        venue.open_position(
            WALLET, market.address, selected_team=1, amount=10, multiplier_bps=12000
        ).id
        for _ in range(120)
    ]
    newest_first = sorted(ids, reverse=True)
    client = PositionsClient(Transport(sim_server.url), wallet=WALLET)
    got: list[int] = []
    closed: set[int] = set()
    async for p in client.iter_positions(status="open", page_size=25):
        got.append(p.id)
        if len(got) == 30:
            for victim in newest_first[:10]:
                venue.close_position(victim, wallet_address=WALLET)
                closed.add(victim)
    still_open = set(ids) - closed
    assert still_open <= set(got)
    assert len(got) == len(set(got))
    await client.aclose()


async def test_reads_are_retried_on_5xx_and_writes_are_not(sim_server: Any) -> None:
    from bot.api.errors import OutcomeUnknown
    from bot.sim.faults import FaultProfile

    client = PositionsClient(Transport(sim_server.url), wallet=WALLET)
    sim_server.sim.faults = FaultProfile.from_mapping(
        {
            "rule": [
                {"kind": "status", "status": 500, "every": 2, "match": "GET /api/positions"},
                {"kind": "status", "status": 502, "match": "POST /api/positions"},
            ]
        }
    )
    await client.list_positions()
    await client.list_positions()
    with pytest.raises(OutcomeUnknown):
        await client.open_position(
            market=open_market(sim_server).address, selected_team=1, amount=5, multiplier_bps=12000
        )
    sim_server.sim.faults = FaultProfile()
    log = [
        (e["method"], e["status"])
        for e in sim_server.sim.requests.entries
        if e["path"] == "/api/positions"
    ]
    assert log == [("GET", 200), ("GET", 500), ("GET", 200), ("POST", 502)]
    await client.aclose()
