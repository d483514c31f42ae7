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
