"""HTTP contract of the simulated user-positions service: backend and proxy layers.

Most tests go through httpx's ASGI transport; one round-trips through a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from bot.sim import positions_api
from bot.sim.clock import SimClock
from bot.sim.positions_api import normalise_numeric, positions_routes
from bot.sim.positions_venue import (
    MarketStatus,
    PositionsVenue,
    b58encode,
    backend_payout,
    proxy_payout,
)

START_MS = 1_728_554_400_000  # 2024-10-10T10:00:00Z
DAY = 86_400_000
WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
OTHER = b58encode(hashlib.sha256(b"other wallet").digest())
UNKNOWN = b58encode(hashlib.sha256(b"nobody").digest())

BACKEND_LIST = "/api/v1/compat/users/{}/positions"
BACKEND_OPEN = "/api/v1/compat/positions"
BACKEND_CLOSE = "/api/v1/compat/positions/close"
BACKEND_STATS = "/api/v1/users/{}/stats"

DOCUMENTED_FIELDS = {
    "id",
    "wallet_address",
    "market_address",
    "position_type",
    "selected_team",
    "amount",
    "multiplier_bps",
    "payout_expected",
    "status",
    "is_claimed",
    "pnl",
    "fee_paid",
    "timestamp",
    "created_at",
    "updated_at",
    "confirmation_status",
}
OPTIONAL_FIELDS = {
    "bet_address",
    "odds_home_bps",
    "odds_away_bps",
    "close_price",
    "close_pnl",
    "closed_at",
    "transaction_signature",
    "market",
}
STATS_FIELDS = {
    "total_positions",
    "open_positions",
    "closed_positions",
    "won_positions",
    "lost_positions",
    "total_volume",
    "total_pnl",
    "total_fees_paid",
    "win_rate",
}

Json = dict[str, Any]


@pytest.fixture
def clock() -> SimClock:
    return SimClock.stepped(START_MS)


@pytest.fixture
def venue(clock: SimClock) -> PositionsVenue:
    return PositionsVenue(clock, 42)


@pytest.fixture
async def client(venue: PositionsVenue) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=positions_routes(venue))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
        yield c


def market_id(venue: PositionsVenue, nth: int = 0) -> int:
    return [m.id for m in venue.markets() if m.status == MarketStatus.OPEN][nth]


def open_body(venue: PositionsVenue, **overrides: object) -> Json:
    market = venue.market(market_id(venue))
    body: Json = {
        "wallet_address": WALLET,
        "market_address": market.address,
        "selected_team": 1,
        "amount": 500_000_000,
        "multiplier_bps": 12_000,
        "odds_home_bps": 10_500,
        "odds_away_bps": 9_500,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def assert_error(response: httpx.Response, status: int, error: str) -> Json:
    assert response.status_code == status, response.text
    body: Json = response.json()
    assert body == {"ok": False, "error": error}  # exactly the documented shape
    return body


async def create(client: httpx.AsyncClient, venue: PositionsVenue, **overrides: object) -> Json:
    response = await client.post(BACKEND_OPEN, json=open_body(venue, **overrides))
    assert response.status_code == 200, response.text
    position: Json = response.json()["position"]
    return position


# --------------------------------------------------------------------------- backend: list


async def test_backend_list_unknown_wallet_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(BACKEND_LIST.format(UNKNOWN))
    assert response.json() == {"ok": False, "error": "Not found"}
    assert response.status_code == 404


async def test_backend_list_shape(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    created = await create(client, venue)
    response = await client.get(BACKEND_LIST.format(WALLET))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"positions", "pagination"}  # the proxy adds `ok`
    assert body["pagination"] == {"page": 1, "limit": 50, "total": 1, "total_pages": 1}
    (position,) = body["positions"]
    assert position == created
    assert DOCUMENTED_FIELDS <= set(position) <= DOCUMENTED_FIELDS | OPTIONAL_FIELDS
    assert "version" not in position
    assert "close_price" not in position  # absent optional fields are omitted, not null
    market = venue.market(market_id(venue))
    assert position["market"] == {
        "fixture_id": market.fixture_id,
        "home_team": market.home_team,
        "away_team": market.away_team,
        "status": 1,
    }


async def test_backend_list_filters_and_paging(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    first = venue.market(market_id(venue, 0))
    second = venue.market(market_id(venue, 1))
    ids = [(await create(client, venue, market_address=first.address))["id"] for _ in range(3)]
    other = (await create(client, venue, market_address=second.address))["id"]
    closed = await client.post(
        BACKEND_CLOSE, json={"position_id": ids[0], "wallet_address": WALLET}
    )
    assert closed.status_code == 200

    async def listed(**params: str | int) -> list[int]:
        r = await client.get(BACKEND_LIST.format(WALLET), params=params)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["positions"]]

    everything = [other, ids[2], ids[1], ids[0]]
    assert await listed() == everything
    assert await listed(status="all") == everything
    assert await listed(status="current") == await listed(status="open") == everything[:3]
    assert await listed(status="history") == await listed(status="closed") == [ids[0]]
    assert await listed(fixture_id=str(first.id)) == ids[::-1]
    assert await listed(fixture_id=second.address) == [other]
    assert await listed(fixture_id="MarketXYZ123") == []
    assert await listed(limit=2, page=2) == everything[2:]
    r = await client.get(BACKEND_LIST.format(WALLET), params={"limit": 0, "page": 0})
    assert r.json()["pagination"] == {"page": 1, "limit": 1, "total": 4, "total_pages": 4}
    r = await client.get(BACKEND_LIST.format(WALLET), params={"limit": 1000})
    assert r.json()["pagination"] == {"page": 1, "limit": 100, "total": 4, "total_pages": 1}
    bad = await client.get(BACKEND_LIST.format(WALLET), params={"page": "abc"})
    assert_error(bad, 400, "INVALID_ARGS")


async def test_backend_list_clamps_real_volumes(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    venue.seed_wallet(WALLET, 130)
    r = await client.get(BACKEND_LIST.format(WALLET))
    assert r.json()["pagination"] == {"page": 1, "limit": 50, "total": 130, "total_pages": 3}
    assert len(r.json()["positions"]) == 50
    r = await client.get(BACKEND_LIST.format(WALLET), params={"limit": 500, "page": 2})
    assert r.json()["pagination"] == {"page": 2, "limit": 100, "total": 130, "total_pages": 2}
    assert len(r.json()["positions"]) == 30


# --------------------------------------------------------------------------- backend: open


async def test_backend_open_returns_the_backend_payout(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    position = await create(client, venue)
    assert position["payout_expected"] == backend_payout(500_000_000, 12_000, 10_500)
    assert position["fee_paid"] == 2_000_000
    assert (position["status"], position["position_type"], position["pnl"]) == (1, "OPEN", 0)
    assert position["transaction_signature"]


async def test_backend_open_by_fixture_id(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    mid = market_id(venue)
    position = await create(client, venue, market_address=..., fixture_id=str(mid))
    assert position["market_address"] == venue.market(mid).address
    position = await create(client, venue, market_address=..., fixture_id=mid)
    assert position["market"]["fixture_id"] == str(mid)


@pytest.mark.parametrize(
    "overrides",
    [
        {"wallet_address": ...},
        {"wallet_address": ""},
        {"wallet_address": 12},
        {"market_address": ...},
        {"amount": 0},
        {"amount": -1},
        {"amount": "500000000"},  # the backend does not normalise strings
        {"amount": 1.5},
        {"amount": ...},
        {"multiplier_bps": ...},
        {"selected_team": 3},
        {"selected_team": "1"},
        {"odds_home_bps": "x"},
    ],
)
async def test_backend_open_invalid_args(
    client: httpx.AsyncClient, venue: PositionsVenue, overrides: Json
) -> None:
    response = await client.post(BACKEND_OPEN, json=open_body(venue, **overrides))
    assert_error(response, 400, "INVALID_ARGS")


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b"NaN"])
async def test_backend_open_bad_bodies(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(BACKEND_OPEN, content=content)
    assert_error(response, 400, "INVALID_ARGS")


async def test_backend_open_unknown_or_closed_market(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    response = await client.post(BACKEND_OPEN, json=open_body(venue, market_address="Nope"))
    assert response.json() == {"ok": False, "error": "Not found"}
    assert response.status_code == 404
    settled = venue.markets()[0]
    response = await client.post(
        BACKEND_OPEN, json=open_body(venue, market_address=settled.address)
    )
    assert_error(response, 409, "MARKET_NOT_OPEN")


# --------------------------------------------------------------------------- backend: close


async def test_backend_close(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    position = await create(client, venue)
    response = await client.post(
        BACKEND_CLOSE,
        json={"position_id": position["id"], "wallet_address": WALLET, "close_price": 1_234_500},
    )
    assert response.status_code == 200, response.text
    closed = response.json()["position"]
    assert closed["status"] == 4
    assert closed["position_type"] == "CLOSE"
    assert closed["close_price"] == 1_234_500
    assert closed["close_pnl"] == 1_234_500 - 500_000_000
    assert closed["closed_at"]
    assert [r.action for r in venue.audit_log(position["id"])] == ["open", "close"]


async def test_backend_close_errors(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    position = await create(client, venue)
    pid = position["id"]
    assert_error(await client.post(BACKEND_CLOSE, json={"position_id": 999_999}), 404, "Not found")
    for bad in (0, -1, "1001", None, True):
        r = await client.post(BACKEND_CLOSE, json={"position_id": bad, "wallet_address": WALLET})
        assert_error(r, 400, "INVALID_ARGS")
    assert_error(await client.post(BACKEND_CLOSE, content=b"?"), 400, "INVALID_ARGS")
    r = await client.post(BACKEND_CLOSE, json={"position_id": pid, "wallet_address": OTHER})
    assert_error(r, 403, "NOT_OWNER")
    r = await client.post(BACKEND_CLOSE, json={"position_id": pid})
    assert_error(r, 403, "NOT_OWNER")
    body = {"position_id": pid, "wallet_address": WALLET}
    assert (await client.post(BACKEND_CLOSE, json=body)).status_code == 200
    assert_error(await client.post(BACKEND_CLOSE, json=body), 409, "CONFLICT")


async def test_backend_concurrent_double_close_conflicts(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    position = await create(client, venue)
    body = {"position_id": position["id"], "wallet_address": WALLET}
    responses = await asyncio.gather(*(client.post(BACKEND_CLOSE, json=body) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]


async def test_owner_check_can_be_switched_off(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    venue.owner_check = False
    first = await create(client, venue)
    second = await create(client, venue)
    r = await client.post(BACKEND_CLOSE, json={"position_id": first["id"], "wallet_address": OTHER})
    assert r.status_code == 200 and r.json()["position"]["wallet_address"] == WALLET
    r = await client.patch("/api/positions", json={"action": "close", "position_id": second["id"]})
    assert r.status_code == 200 and r.json()["ok"] is True


# --------------------------------------------------------------------------- backend: stats


async def test_backend_stats(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    assert_error(await client.get(BACKEND_STATS.format(UNKNOWN)), 404, "Not found")
    venue.seed_wallet(WALLET, 25)
    response = await client.get(BACKEND_STATS.format(WALLET))
    assert response.status_code == 200
    stats = response.json()["stats"]
    assert set(stats) == STATS_FIELDS
    expected = venue.stats(WALLET)
    assert stats["total_positions"] == 25 == expected.total_positions
    assert stats["total_pnl"] == expected.total_pnl
    assert stats["win_rate"] == pytest.approx(expected.win_rate)


async def test_backend_failure_is_backend_error(
    client: httpx.AsyncClient, venue: PositionsVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(venue, "stats", explode)
    monkeypatch.setattr(venue, "list_positions", explode)
    response = await client.get(BACKEND_STATS.format(WALLET))
    assert response.json() == {"ok": False, "error": "Backend error"}
    assert response.status_code == 500
    assert_error(await client.get(BACKEND_LIST.format(WALLET)), 500, "Backend error")
    # The proxy relays a backend failure as such, not as its own.
    r = await client.get("/api/users/stats", params={"wallet_address": WALLET})
    assert_error(r, 500, "Backend error")
    r = await client.get("/api/positions", params={"wallet_address": WALLET})
    assert_error(r, 500, "Backend error")


# --------------------------------------------------------------------------- proxy: list


@pytest.mark.parametrize("params", [{}, {"wallet_address": ""}, {"wallet_address": "  "}])
async def test_proxy_list_requires_wallet(client: httpx.AsyncClient, params: Json) -> None:
    response = await client.get("/api/positions", params=params)
    assert response.json() == {"ok": False, "error": "wallet_address is required"}
    assert response.status_code == 400


async def test_proxy_maps_backend_404_to_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/positions", params={"wallet_address": UNKNOWN})
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "positions": [],
        "pagination": {"page": 1, "limit": 50, "total": 0, "total_pages": 0},
    }
    response = await client.get(
        "/api/positions", params={"wallet_address": UNKNOWN, "limit": 500, "page": 3}
    )
    assert response.json()["pagination"] == {"page": 3, "limit": 100, "total": 0, "total_pages": 0}


async def test_proxy_list_matches_backend_except_ok_and_payout(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    venue.seed_wallet(WALLET, 12)
    params: dict[str, str | int] = {"status": "history", "limit": 5, "page": 2}
    backend = (await client.get(BACKEND_LIST.format(WALLET), params=params)).json()
    proxy_response = await client.get("/api/positions", params={**params, "wallet_address": WALLET})
    assert proxy_response.status_code == 200
    proxy = proxy_response.json()
    assert proxy["ok"] is True
    assert proxy["pagination"] == backend["pagination"]
    assert [p["id"] for p in proxy["positions"]] == [p["id"] for p in backend["positions"]]
    for b, p in zip(backend["positions"], proxy["positions"], strict=True):
        assert {k: v for k, v in b.items() if k != "payout_expected"} == {
            k: v for k, v in p.items() if k != "payout_expected"
        }


async def test_payout_expected_differs_between_layers(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    body = open_body(venue, selected_team=2, odds_away_bps=25_000)
    proxy = (await client.post("/api/positions", json=body)).json()["position"]
    backend = (await client.get(BACKEND_LIST.format(WALLET))).json()["positions"][0]
    assert proxy["id"] == backend["id"]
    assert proxy["payout_expected"] == proxy_payout(500_000_000, 25_000) == 1_250_000_000
    assert backend["payout_expected"] == backend_payout(500_000_000, 12_000, 25_000)
    assert backend["payout_expected"] == 1_500_000_000


# --------------------------------------------------------------------------- proxy: create


async def test_proxy_create(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    response = await client.post("/api/positions", json=open_body(venue))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["position"]["amount"] == 500_000_000
    assert body["position"]["wallet_address"] == WALLET


@pytest.mark.parametrize("content", [b"", b"   ", b"{oops", b"[]", b"null", b"42"])
async def test_proxy_create_bad_json(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/api/positions", content=content, headers={"content-type": "application/json"}
    )
    assert response.json() == {"ok": False, "error": "BAD_JSON"}
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"wallet_address": ...}, ["wallet_address"]),
        ({"market_address": ...}, ["market_address"]),
        ({"selected_team": None}, ["selected_team"]),
        ({"amount": ""}, ["amount"]),
        ({"multiplier_bps": ...}, ["multiplier_bps"]),
        ({"amount": ..., "wallet_address": ...}, ["wallet_address", "amount"]),
    ],
)
async def test_proxy_create_missing_fields(
    client: httpx.AsyncClient, venue: PositionsVenue, overrides: Json, missing: list[str]
) -> None:
    response = await client.post("/api/positions", json=open_body(venue, **overrides))
    assert response.json() == {"ok": False, "error": "Missing required fields"}
    assert response.status_code == 400, missing


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": "abc"},
        {"amount": "1.5"},
        {"amount": 2.5},
        {"amount": True},
        {"amount": [1]},
        {"multiplier_bps": "12k"},
        {"multiplier_bps": {"v": 1}},
        {"amount": "1e99999"},
    ],
)
async def test_proxy_create_invalid_numeric(
    client: httpx.AsyncClient, venue: PositionsVenue, overrides: Json
) -> None:
    response = await client.post("/api/positions", json=open_body(venue, **overrides))
    assert_error(response, 400, "INVALID_NUMERIC")


async def test_proxy_create_normalises_numeric_strings(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    body = open_body(
        venue,
        amount=" 500000000 ",
        multiplier_bps="1.2e4",
        selected_team="2",
        odds_away_bps="9500",
    )
    response = await client.post("/api/positions", json=body)
    assert response.status_code == 200, response.text
    position = response.json()["position"]
    assert (position["amount"], position["multiplier_bps"]) == (500_000_000, 12_000)
    assert (position["selected_team"], position["odds_away_bps"]) == (2, 9_500)


async def test_proxy_create_relays_backend_errors(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    r = await client.post("/api/positions", json=open_body(venue, amount=0))
    assert_error(r, 400, "INVALID_ARGS")
    r = await client.post("/api/positions", json=open_body(venue, selected_team="home"))
    assert_error(r, 400, "INVALID_ARGS")
    r = await client.post("/api/positions", json=open_body(venue, market_address="MarketXYZ123"))
    assert_error(r, 404, "Not found")


def test_normalise_numeric() -> None:
    assert normalise_numeric(5) == 5
    assert normalise_numeric(5.0) == 5
    assert normalise_numeric("-7") == -7
    assert normalise_numeric("1e3") == 1000
    assert normalise_numeric(str(2**70)) == 2**70
    bad_values: list[object] = [None, True, "", " ", "x", "1.5", float("nan"), [], "1e99999"]
    for bad in [*bad_values, float("inf")]:
        assert normalise_numeric(bad) is None


# --------------------------------------------------------------------------- proxy: close


async def test_proxy_patch_close(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    position = await create(client, venue)
    response = await client.patch(
        "/api/positions",
        json={
            "action": "close",
            "position_id": position["id"],
            "wallet_address": WALLET,
            "close_price": 1_234_500,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert (body["position"]["status"], body["position"]["close_price"]) == (4, 1_234_500)
    again = await client.patch(
        "/api/positions",
        json={"action": "close", "position_id": position["id"], "wallet_address": WALLET},
    )
    assert_error(again, 409, "CONFLICT")


async def test_proxy_patch_errors(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    position = await create(client, venue)
    r = await client.patch("/api/positions", content=b"")
    assert r.json() == {"ok": False, "error": "BAD_JSON"} and r.status_code == 400
    for action in ({"action": "open"}, {}, {"action": "CLOSE"}):
        r = await client.patch("/api/positions", json={**action, "position_id": position["id"]})
        assert r.json() == {"ok": False, "error": "Unsupported action"} and r.status_code == 400
    for missing in ({}, {"position_id": None}, {"position_id": ""}):
        r = await client.patch("/api/positions", json={"action": "close", **missing})
        assert r.json() == {"ok": False, "error": "position_id required"} and r.status_code == 400
    r = await client.patch(
        "/api/positions",
        json={"action": "close", "position_id": position["id"], "wallet_address": OTHER},
    )
    assert_error(r, 403, "NOT_OWNER")
    r = await client.patch("/api/positions", json={"action": "close", "position_id": 424242})
    assert_error(r, 404, "Not found")


async def test_proxy_close_route(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    position = await create(client, venue)
    r = await client.post("/api/positions/close", content=b"not json")
    assert r.json() == {"ok": False, "error": "BAD_JSON"} and r.status_code == 400
    r = await client.post("/api/positions/close", json={"wallet_address": WALLET})
    assert r.json() == {"ok": False, "error": "position_id required"} and r.status_code == 400
    r = await client.post("/api/positions/close", json={"position_id": "abc"})
    assert_error(r, 400, "INVALID_ARGS")
    r = await client.post(
        "/api/positions/close",
        json={"position_id": str(position["id"]), "wallet_address": WALLET},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert (body["position"]["id"], body["position"]["close_pnl"]) == (position["id"], 0)


# --------------------------------------------------------------------------- proxy: stats, bets


async def test_proxy_stats(client: httpx.AsyncClient, venue: PositionsVenue) -> None:
    r = await client.get("/api/users/stats")
    assert r.json() == {"ok": False, "error": "wallet_address is required"}
    assert r.status_code == 400
    r = await client.get("/api/users/stats", params={"wallet_address": UNKNOWN})
    assert r.status_code == 200
    assert r.json() == {"ok": True, "stats": {k: 0 for k in STATS_FIELDS} | {"win_rate": 0.0}}
    venue.seed_wallet(WALLET, 20)
    proxy = (await client.get("/api/users/stats", params={"wallet_address": WALLET})).json()
    backend = (await client.get(BACKEND_STATS.format(WALLET))).json()
    assert proxy == {"ok": True, **backend}
    assert proxy["stats"]["total_positions"] == 20


async def test_bets_redirects_with_the_same_query(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    venue.seed_wallet(WALLET, 3)
    params = {"wallet_address": WALLET, "status": "all", "limit": "2"}
    response = await client.get("/api/bets", params=params)
    assert response.status_code == 307
    location = httpx.URL(response.headers["location"])
    assert location.path == "/api/positions"
    assert dict(location.params) == params
    followed = await client.get("/api/bets", params=params, follow_redirects=True)
    direct = await client.get("/api/positions", params=params)
    assert followed.status_code == 200
    assert followed.json() == direct.json()
    assert len(followed.json()["positions"]) == 2


async def test_proxy_internal_failure_is_internal_error(
    client: httpx.AsyncClient, venue: PositionsVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue.seed_wallet(WALLET, 2)

    def broken(*_: object, **__: object) -> None:
        raise KeyError("proxy bug")

    monkeypatch.setattr(positions_api, "position_wire", broken)
    response = await client.get("/api/positions", params={"wallet_address": WALLET})
    assert response.json() == {"ok": False, "error": "Internal error"}
    assert response.status_code == 500


# --------------------------------------------------------------------------- settlement, numbers


async def test_positions_settle_over_simulated_time(
    client: httpx.AsyncClient, venue: PositionsVenue, clock: SimClock
) -> None:
    for team in (1, 2):
        await create(client, venue, selected_team=team)
    params = {"wallet_address": WALLET, "status": "open"}
    assert len((await client.get("/api/positions", params=params)).json()["positions"]) == 2
    clock.advance(4 * DAY)
    assert (await client.get("/api/positions", params=params)).json()["positions"] == []
    history = (await client.get("/api/positions", params={**params, "status": "history"})).json()[
        "positions"
    ]
    assert {p["status"] for p in history} <= {2, 3, 4, 5}
    assert all(p["market"]["status"] in (3, 4) and p["closed_at"] for p in history)
    stats = (await client.get(BACKEND_STATS.format(WALLET))).json()["stats"]
    assert stats["open_positions"] == 0 and stats["closed_positions"] == 2
    assert stats["total_pnl"] == sum(p["pnl"] for p in history)


async def test_big_integers_survive_both_layers_exactly(
    client: httpx.AsyncClient, venue: PositionsVenue
) -> None:
    amount = 2**60 + 12_345  # far beyond 2**53: a float would round it
    backend = await create(client, venue, amount=amount)
    assert backend["amount"] == amount
    proxy_resp = await client.post("/api/positions", json=open_body(venue, amount=str(amount + 1)))
    assert proxy_resp.status_code == 200, proxy_resp.text
    assert f'"amount":{amount + 1}' in proxy_resp.text.replace(" ", "")
    listed = await client.get(BACKEND_LIST.format(WALLET))
    assert str(amount) in listed.text
    assert [p["amount"] for p in listed.json()["positions"]] == [amount + 1, amount]
    stats = (await client.get(BACKEND_STATS.format(WALLET))).json()["stats"]
    assert stats["total_volume"] == 2 * amount + 1
    assert json.loads(listed.text)["positions"][1]["fee_paid"] == amount * 40 // 10_000
    too_big = await client.post(BACKEND_OPEN, json=open_body(venue, amount=2**63))
    assert_error(too_big, 400, "INVALID_ARGS")


# --------------------------------------------------------------------------- real server


@pytest.fixture
def live_server(venue: PositionsVenue) -> Iterator[str]:
    """The routes under a real uvicorn on 127.0.0.1, an ephemeral port, in a thread."""
    app = Starlette(routes=positions_routes(venue))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-positions", daemon=True)
    thread.start()
    waiter = threading.Event()
    for _ in range(1000):  # up to ~10 s, returning as soon as the server is up
        if server.started or not thread.is_alive():
            break
        waiter.wait(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_round_trip_over_a_real_server(live_server: str, venue: PositionsVenue) -> None:
    with httpx.Client(base_url=live_server, timeout=5) as http:
        created = http.post("/api/positions", json=open_body(venue, amount=2**55 + 1))
        assert created.status_code == 200, created.text
        pid = created.json()["position"]["id"]
        listed = http.get(BACKEND_LIST.format(WALLET)).json()
        assert [p["amount"] for p in listed["positions"]] == [2**55 + 1]
        closed = http.post(
            "/api/positions/close", json={"position_id": pid, "wallet_address": WALLET}
        )
        assert closed.status_code == 200 and closed.json()["position"]["status"] == 4
        redirect = http.get("/api/bets", params={"wallet_address": WALLET})
        assert redirect.status_code == 307
        followed = http.get("/api/bets", params={"wallet_address": WALLET}, follow_redirects=True)
        assert followed.json()["positions"][0]["id"] == pid
        stats = http.get("/api/users/stats", params={"wallet_address": WALLET}).json()
        assert stats["stats"]["closed_positions"] == 1
