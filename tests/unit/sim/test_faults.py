"""Fault profiles: validation naming the rule, seeded reproducibility, every kind over ASGI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.sim.faults import FaultConfigError, FaultMiddleware, FaultProfile


def app_with(profile: FaultProfile) -> tuple[Any, list[str], list[float], list[int]]:
    applied: list[str] = []
    slept: list[float] = []
    expired: list[int] = []

    async def create(request: Request) -> JSONResponse:
        applied.append(request.url.path)
        return JSONResponse({"id": "s1"})

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    inner = Starlette(routes=[Route("/trading-sessions", create, methods=["POST", "GET"])])
    mw = FaultMiddleware(
        inner, lambda: profile, on_token_expiry=lambda: expired.append(1), sleep=sleep
    )
    return mw, applied, slept, expired


async def post(app: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post("/trading-sessions")


def test_unknown_kind_names_the_rule() -> None:
    with pytest.raises(FaultConfigError, match=r"rule #2: kind = 'meteor'"):
        FaultProfile.from_mapping({"rule": [{"kind": "latency"}, {"kind": "meteor"}]})


def test_bad_probability_refused() -> None:
    with pytest.raises(FaultConfigError, match="probability"):
        FaultProfile.from_mapping({"rule": [{"kind": "status", "probability": 2}]})


def test_same_seed_same_faults() -> None:
    def run(seed: int) -> list[int]:
        p = FaultProfile.from_mapping(
            {"seed": seed, "rule": [{"kind": "status", "probability": 0.3}]}
        )
        return [len(p.pick("GET", "/x")) for _ in range(200)]

    assert run(5) == run(5)
    assert run(5) != run(6)
    assert 30 < sum(run(5)) < 90


def test_every_nth_fires_deterministically() -> None:
    p = FaultProfile.from_mapping({"rule": [{"kind": "status", "every": 3}]})
    assert [len(p.pick("GET", "/x")) for _ in range(6)] == [0, 0, 1, 0, 0, 1]


def test_match_by_method_and_glob() -> None:
    p = FaultProfile.from_mapping({"rule": [{"kind": "status", "match": "POST /trading-*"}]})
    assert p.pick("POST", "/trading-sessions") and not p.pick("GET", "/trading-sessions")
    assert not p.pick("POST", "/user/withdraw")


async def test_rate_limit_answers_429_with_retry_after_and_applies_nothing() -> None:
    app, applied, _, _ = app_with(
        FaultProfile.from_mapping({"rule": [{"kind": "rate_limit", "retry_after": "4"}]})
    )
    resp = await post(app)
    assert resp.status_code == 429 and resp.headers["retry-after"] == "4"
    assert applied == []


async def test_status_fault_answers_5xx() -> None:
    app, applied, _, _ = app_with(
        FaultProfile.from_mapping({"rule": [{"kind": "status", "status": 502}]})
    )
    assert (await post(app)).status_code == 502 and applied == []


async def test_builder_fee_fault_message() -> None:
    app, _, _, _ = app_with(FaultProfile.from_mapping({"rule": [{"kind": "builder_fee"}]}))
    resp = await post(app)
    assert resp.status_code == 400 and "Builder fee approval failed" in resp.json()["message"]


async def test_latency_fault_delays_then_applies() -> None:
    app, applied, slept, _ = app_with(
        FaultProfile.from_mapping({"rule": [{"kind": "latency", "latency_ms": 250}]})
    )
    assert (await post(app)).status_code == 200
    assert slept == [0.25] and applied == ["/trading-sessions"]


async def test_drop_cuts_the_connection_without_applying(serve_asgi: Any) -> None:
    app, applied, _, _ = app_with(FaultProfile.from_mapping({"rule": [{"kind": "drop"}]}))
    url = serve_asgi(app)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.post(url + "/trading-sessions")
    assert applied == []


async def test_lost_response_applies_then_cuts_the_connection(serve_asgi: Any) -> None:
    app, applied, _, _ = app_with(FaultProfile.from_mapping({"rule": [{"kind": "lost_response"}]}))
    url = serve_asgi(app)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.post(url + "/trading-sessions")
    assert applied == ["/trading-sessions"]


async def test_token_expiry_fault_calls_back_and_passes_through() -> None:
    app, applied, _, expired = app_with(
        FaultProfile.from_mapping({"rule": [{"kind": "token_expiry"}]})
    )
    assert (await post(app)).status_code == 200
    assert expired == [1] and applied == ["/trading-sessions"]


async def test_fired_counts_what_was_injected() -> None:
    profile = FaultProfile.from_mapping({"rule": [{"kind": "status", "every": 2}]})
    app, _, _, _ = app_with(profile)
    for _ in range(6):
        await post(app)
    assert profile.fired["status"] == 3


def test_a_profile_without_a_seed_follows_the_simulator_seed(tmp_path: Any, sim_feed: Any) -> None:
    from bot.sim.server import SimOptions, build_simulator

    path = tmp_path / "faults.toml"
    path.write_text('[[rule]]\nkind = "status"\nprobability = 0.3\n')

    def fired(seed: int) -> list[int]:
        sim = build_simulator(SimOptions(speed=0, seed=seed, faults=path), feed=sim_feed)
        return [len(sim.faults.pick("GET", "/x")) for _ in range(200)]

    assert fired(5) == fired(5)
    assert fired(5) != fired(6)


def test_a_seed_in_the_profile_wins_over_the_simulator_seed(tmp_path: Any) -> None:
    path = tmp_path / "faults.toml"
    path.write_text('seed = 3\n[[rule]]\nkind = "status"\n')
    assert FaultProfile.from_toml(path, default_seed=99).seed == 3
