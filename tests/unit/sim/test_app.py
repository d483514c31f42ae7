"""Simulator app: loopback-only control, CSV replay, NestJS-style errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

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
    assert len(rows) == 5 and rows[-1]["time"] + 3_600_000 <= sim.clock.now_ms()


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
