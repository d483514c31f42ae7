"""Simulator app: loopback-only control, CSV replay, NestJS-style errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.market.data import synthetic_market, write_csv
from bot.sim.app import asgi
from bot.sim.server import SimOptions, build_simulator


async def test_control_endpoints_answer_only_loopback(sim_feed: Any) -> None:
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    outside = httpx.ASGITransport(app=asgi(sim), client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=outside, base_url="http://sim") as client:
        assert (await client.get("/__sim/state")).status_code == 403
        assert (await client.post("/__sim/fund", json={})).status_code == 403
        assert (await client.get("/health")).status_code == 200
    inside = httpx.ASGITransport(app=asgi(sim), client=("127.0.0.1", 4000))
    async with httpx.AsyncClient(transport=inside, base_url="http://sim") as client:
        assert (await client.get("/__sim/state")).status_code == 200


async def test_csv_market_replay(tmp_path: Path) -> None:
    start = 1_736_121_600_000
    for symbol, candles in synthetic_market(
        3, start_ms=start, n=3000, interval="5m", symbols=["BTC", "ETH"]
    ).items():
        write_csv(candles, tmp_path / f"{symbol}-USDC_hyperliquid_5m.csv")
    sim = build_simulator(SimOptions(speed=0, market=f"csv:{tmp_path}", csv_interval="5m"))
    assert sim.feed.symbols == ["BTC", "ETH"]
    assert "1m" not in sim.feed.intervals and "1h" in sim.feed.intervals
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi(sim)), base_url="http://sim"
    ) as client:
        resp = await client.get("/api/indicators/candles/BTC/1h?limit=5")
        rows = resp.json()["candles"]
        finer = await client.get("/api/indicators/candles/BTC/1m")
        signal = await client.get("/api/indicators/signals/BTC/1m")
        bogus = await client.get("/api/indicators/candles/BTC/7m")
    assert len(rows) == 5 and rows[-1]["time"] + 3_600_000 <= sim.clock.now_ms()
    for refused in (finer, signal):
        assert refused.status_code == 400
        (message,) = refused.json()["message"]
        assert message.startswith("interval 1m is finer than the market's 5m base candles")
        assert "5m, 15m, 1h, 4h, 1d" in message
    assert bogus.status_code == 400
    assert bogus.json()["message"] == ["interval must be one of: 5m, 15m, 1h, 4h, 1d"]


async def test_unknown_route_and_bad_json_use_nest_error_shape(sim_feed: Any) -> None:
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi(sim)), base_url="http://sim"
    ) as client:
        missing = await client.get("/nope")
        bad = await client.post(
            "/auth/evm/challenge",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert missing.json() == {
        "statusCode": 404,
        "message": "Cannot GET /nope",
        "error": "Not Found",
    }
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["message"]


def _restored(sim_feed: Any, saved: dict[str, Any], *, speed: float, wall_s: float) -> int:
    from bot.sim.clock import SimClock

    clock = SimClock.accelerated(0, speed, monotonic=lambda: 0.0) if speed else None
    sim = build_simulator(SimOptions(speed=speed), clock=clock, feed=sim_feed)
    sim.wall = lambda: wall_s
    sim.load_json(saved)
    return sim.now_ms


def test_restored_accelerated_venue_resumes_after_the_time_it_was_down(sim_feed: Any) -> None:
    from bot.sim.clock import SimClock

    sim = build_simulator(
        SimOptions(speed=60),
        clock=SimClock.accelerated(1_736_000_000_000, 60, monotonic=lambda: 0.0),
        feed=sim_feed,
    )
    sim.wall = lambda: 1_000.0
    saved = sim.to_json()

    resumed = _restored(sim_feed, saved, speed=60, wall_s=1_010.0)

    assert resumed == 1_736_000_000_000 + 10 * 60 * 1000


def test_restored_venue_never_goes_back_when_the_wall_clock_did(sim_feed: Any) -> None:
    sim = build_simulator(SimOptions(speed=60), feed=sim_feed)
    sim.wall = lambda: 1_000.0
    saved = sim.to_json()

    assert _restored(sim_feed, saved, speed=60, wall_s=900.0) == saved["clock_ms"]


def test_restored_stepped_venue_resumes_exactly_where_it_was_saved(sim_feed: Any) -> None:
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    sim.clock.advance(3_600_000)
    sim.wall = lambda: 1_000.0
    saved = sim.to_json()

    assert _restored(sim_feed, saved, speed=0, wall_s=5_000.0) == saved["clock_ms"]


async def test_positions_requests_that_move_the_venue_are_saved_reads_included(
    sim_feed: Any,
) -> None:
    from bot.sim.positions_venue import MarketStatus

    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    saved: list[dict[str, Any]] = []
    sim.on_change = lambda: saved.append(sim.to_json())
    wallet = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
    market = next(m for m in sim.positions.markets() if m.status == MarketStatus.OPEN)

    def saved_statuses() -> list[int]:
        return [p["status"] for p in saved[-1]["positions"]["positions"]]

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi(sim)), base_url="http://sim"
    ) as client:
        opened = await client.post(
            "/api/positions",
            json={
                "wallet_address": wallet,
                "market_address": market.address,
                "selected_team": 1,
                "amount": 1_000_000,
                "multiplier_bps": 10_000,
            },
        )
        assert opened.status_code == 200
        assert len(saved) == 1 and saved_statuses() == [1]

        await client.get("/api/positions", params={"wallet_address": wallet})
        assert len(saved) == 1  # a read that changed nothing does not save

        sim.clock.set(market.settles_at_ms)
        listed = await client.get("/api/positions", params={"wallet_address": wallet})
        settled = listed.json()["positions"][0]["status"]
        assert settled != 1
        assert len(saved) == 2 and saved_statuses() == [settled]

        known = max(m["id"] for m in saved[-1]["positions"]["markets"])
        sim.clock.advance(24 * 3_600_000)
        assert (await client.get(f"/api/v1/users/{wallet}/stats")).status_code == 200
        assert len(saved) == 3
        assert max(m["id"] for m in saved[-1]["positions"]["markets"]) > known


def _client(sim: Any, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=asgi(sim), client=(host, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://sim")


DOC_WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"


async def test_markets_are_listed_under_sim_control_and_the_listing_is_true(
    sim_feed: Any,
) -> None:
    """A user finds markets at /__sim/markets: one listed open takes a bet, one listed closed
    answers MARKET_NOT_OPEN, and the listing is loopback-only like the rest of /__sim/."""
    sim = build_simulator(SimOptions(speed=0, example_market=True), feed=sim_feed)
    async with _client(sim, host="203.0.113.9") as outside:
        assert (await outside.get("/__sim/markets")).status_code == 403
    async with _client(sim) as client:
        listing = (await client.get("/__sim/markets")).json()
        taking = (await client.get("/__sim/markets", params={"open": "true"})).json()["markets"]
        closed = [m for m in listing["markets"] if not m["open"]]
        assert closed and taking and all(m["open"] for m in taking)
        assert len(taking) + len(closed) == len(listing["markets"])
        example = next(m for m in taking if m["address"] == "MarketXYZ123")
        assert example["fixture_id"] == "0" and example["settles_at"] is None
        body = {"wallet_address": DOC_WALLET, "selected_team": 2, "amount": 10**9}
        for market in (taking[-1], closed[0]):
            resp = await client.post(
                "/api/v1/compat/positions",
                json=body | {"fixture_id": int(market["fixture_id"]), "multiplier_bps": 12000},
            )
            if market["open"]:
                assert resp.status_code == 200, resp.text
                assert resp.json()["position"]["market_address"] == market["address"]
            else:
                assert resp.status_code == 409
                assert resp.json() == {"ok": False, "error": "MARKET_NOT_OPEN"}


DOC_OPEN = {
    "wallet_address": DOC_WALLET,
    "market_address": "MarketXYZ123",
    "selected_team": 1,
    "amount": 500000000,
    "multiplier_bps": 12000,
    "odds_home_bps": 10500,
    "odds_away_bps": 9500,
}
DOC_CLOSE = {"position_id": 1001, "wallet_address": DOC_WALLET, "close_price": 1234500}


@pytest.mark.parametrize(("close_status", "expected"), [(4, 4), (6, 6)])
async def test_the_documents_curl_examples_work_as_written(
    sim_feed: Any, close_status: int, expected: int
) -> None:
    """user-positions-api.md's open (market MarketXYZ123) and close (position 1001) examples, on
    both layers; a close gives the configured status: 4 as the live service, 6 early-closed."""
    sim = build_simulator(
        SimOptions(speed=0, example_market=True, close_status=close_status), feed=sim_feed
    )
    async with _client(sim) as client:
        opened = await client.post("/api/positions", json=DOC_OPEN)
        assert opened.status_code == 200, opened.text
        assert opened.json()["position"]["id"] == 1001
        market = opened.json()["position"]["market"]
        assert market == {"fixture_id": "0", "home_team": "A", "away_team": "B", "status": 1}
        sim.clock.advance(365 * 86_400_000)  # the example market never settles
        closed = await client.patch("/api/positions", json={"action": "close", **DOC_CLOSE})
        assert closed.status_code == 200, closed.text
        position = closed.json()["position"]
        assert position["status"] == expected and position["close_pnl"] == 1234500 - 500000000
        backend_open = {k: v for k, v in DOC_OPEN.items() if not k.startswith("odds")}
        again = await client.post("/api/v1/compat/positions", json=backend_open)
        assert again.status_code == 200 and again.json()["position"]["id"] == 1002
        close = await client.post(
            "/api/v1/compat/positions/close", json=DOC_CLOSE | {"position_id": 1002}
        )
        assert close.status_code == 200 and close.json()["position"]["status"] == expected


async def test_a_saved_venue_follows_the_command_lines_close_status(
    sim_feed: Any, tmp_path: Path
) -> None:
    state = tmp_path / "venue.sqlite"
    first = build_simulator(SimOptions(speed=0, example_market=True, state=state), feed=sim_feed)
    async with _client(first) as client:
        assert (await client.post("/api/positions", json=DOC_OPEN)).status_code == 200
    again = build_simulator(SimOptions(speed=0, state=state, close_status=6), feed=sim_feed)
    async with _client(again) as client:
        closed = await client.post("/api/positions/close", json=DOC_CLOSE)
    assert closed.json()["position"]["status"] == 6


def _racing_clock(start_ms: int) -> Any:
    """An accelerated clock (x3600) whose every reading is 0.1 s of wall time after the last:
    each read of it moves the market six minutes on."""
    from bot.sim.clock import SimClock

    ticks = iter(range(10**6))
    return SimClock.accelerated(start_ms, 3600, monotonic=lambda: next(ticks) / 10)


async def test_multi_symbol_answers_are_taken_at_one_moment(sim_feed: Any) -> None:
    from bot.sim.server import DEFAULT_START, parse_start

    clock = _racing_clock(parse_start(DEFAULT_START) + 3_600_000)
    sim = build_simulator(SimOptions(speed=3600), clock=clock, feed=sim_feed)
    async with _client(sim) as client:
        latest = (await client.get("/api/indicators/candles/latest?interval=1m")).json()
        signals = (await client.get("/api/indicators/signals/all/1m")).json()
    assert len(latest) == len(sim_feed.symbols) > 1
    assert len({row["time"] for row in latest.values()}) == 1
    assert len(signals["signals"]) == len(sim_feed.symbols)
    assert {s["time"] for s in signals["signals"]} == {signals["time"]}
    assert len({s["candleTime"] for s in signals["signals"]}) == 1


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/auth/evm/challenge", {"address": "0x12"}, "address must be a 0x-prefixed"),
        ("/auth/evm/verify", {"address": "nope", "signature": "0x"}, "address must be a 0x-"),
    ],
)
async def test_a_bad_address_is_named_once(
    sim_feed: Any, path: str, body: dict[str, Any], message: str
) -> None:
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    async with _client(sim) as client:
        resp = await client.post(path, json=body)
    assert resp.status_code == 400
    assert resp.json()["message"] == ["address must be a 0x-prefixed, 40-hex-digit EVM address"]
    assert resp.json()["message"][0].startswith(message)


async def test_a_bad_destination_is_called_destination(sim_feed: Any) -> None:
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    async with _client(sim) as client:
        token = await _login(client)
        resp = await client.post(
            "/user/send-usdc",
            json={"amount": 1, "destination": "0x12"},
            headers={"authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 400
    assert resp.json()["message"] == ["destination must be a 0x-prefixed, 40-hex-digit EVM address"]


async def _login(client: httpx.AsyncClient) -> str:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from tests.conftest import TEST_ADDRESS, TEST_KEY

    challenge = (await client.post("/auth/evm/challenge", json={"address": TEST_ADDRESS})).json()
    signed = Account.sign_message(encode_defunct(text=challenge["message"]), private_key=TEST_KEY)
    body = {"address": TEST_ADDRESS, "signature": "0x" + bytes(signed.signature).hex()}
    return str((await client.post("/auth/evm/verify", json=body)).json()["accessToken"])


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", f"/api/v1/compat/users/{DOC_WALLET}/positions", {}),
        ("GET", f"/api/v1/users/{DOC_WALLET}/stats", {}),
        ("POST", "/api/v1/compat/positions", {"json": DOC_OPEN}),
        ("GET", "/api/positions", {"params": {"wallet_address": DOC_WALLET}}),
        ("PATCH", "/api/positions", {"json": {"action": "close", **DOC_CLOSE}}),
        ("POST", "/api/positions/close", {"json": DOC_CLOSE}),
        ("GET", "/api/users/stats", {"params": {"wallet_address": DOC_WALLET}}),
    ],
)
async def test_injected_faults_on_the_positions_api_use_its_error_shape(
    sim_feed: Any, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    from bot.sim.faults import FaultProfile

    sim = build_simulator(SimOptions(speed=0, example_market=True), feed=sim_feed)
    async with _client(sim) as client:
        sim.faults = FaultProfile.from_mapping({"rule": [{"kind": "status", "status": 502}]})
        failed = await client.request(method, path, **kwargs)
        sim.faults = FaultProfile.from_mapping(
            {"rule": [{"kind": "rate_limit", "retry_after": "3"}]}
        )
        limited = await client.request(method, path, **kwargs)
    assert failed.status_code == 502 and failed.json() == {"ok": False, "error": "Backend error"}
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json() == {"ok": False, "error": "Too Many Requests"}
    assert sim.positions.wallets() == []  # nothing reached the venue


async def test_injected_faults_on_the_alura_api_keep_the_nest_shape(sim_feed: Any) -> None:
    from bot.sim.faults import FaultProfile

    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    async with _client(sim) as client:
        sim.faults = FaultProfile.from_mapping({"rule": [{"kind": "status", "status": 502}]})
        failed = await client.get("/api/indicators/signals/all/1h")
        sim.faults = FaultProfile.from_mapping({"rule": [{"kind": "rate_limit"}]})
        limited = await client.get("/api/leaderboard/stats")
    assert failed.json() == {"statusCode": 502, "message": "Backend error"}
    assert limited.json()["statusCode"] == 429


async def test_builder_fee_fault_fires_only_on_authenticated_requests(sim_feed: Any) -> None:
    """An unauthenticated create gets the real 401; the builder-fee failure, which happens while
    the backend processes a request, comes only to a signed-in wallet (and counts only there)."""
    from bot.sim.faults import BUILDER_FEE_MESSAGE, FaultProfile

    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    body = {"budget": 100, "profitTarget": 40, "assetIndex": 0}
    async with _client(sim) as client:
        token = await _login(client)
        sim.faults = FaultProfile.from_mapping(
            {"rule": [{"kind": "builder_fee", "match": "POST /trading-sessions"}]}
        )
        anonymous = await client.post("/trading-sessions", json=body)
        stale = await client.post(
            "/trading-sessions", json=body, headers={"authorization": "Bearer not-a-jwt"}
        )
        signed_in = await client.post(
            "/trading-sessions", json=body, headers={"authorization": f"Bearer {token}"}
        )
    assert anonymous.status_code == 401 and anonymous.json()["message"] == "Missing Bearer token"
    assert stale.status_code == 401
    assert signed_in.status_code == 400
    assert signed_in.json() == {
        "statusCode": 400,
        "message": BUILDER_FEE_MESSAGE,
        "error": "Bad Request",
    }
    assert sim.faults.fired["builder_fee"] == 1
    assert sim.venue.sessions == {}
