"""doctor's checks against a venue that answers: all green, key/address mismatch, clock skew."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import httpx

from bot.doctor import Status, run_checks
from bot.settings import Settings
from tests.conftest import TEST_ADDRESS


def factory(client_for: Any) -> Any:
    return lambda settings, key: client_for(with_key=key is not None)


def health_with_date(offset_s: float, at: float | None = None) -> Any:
    """/health whose Date header is ``offset_s`` from ``at`` (default: the wall clock now)."""

    def answer(_: httpx.Request) -> httpx.Response:
        date = formatdate((time.time() if at is None else at) + offset_s, usegmt=True)
        return httpx.Response(200, json={"status": "ok"}, headers={"Date": date})

    return answer


async def test_all_checks_pass_with_a_working_venue(
    settings: Settings, venue: Any, client_for: Any
) -> None:
    venue.on("GET", "/health", health_with_date(0))
    checks = await run_checks(settings, client_factory=factory(client_for))
    assert {c.name: c.status for c in checks} == {
        "config": Status.OK,
        "private key": Status.OK,
        "reachability": Status.OK,
        "clock skew": Status.OK,
        "auth round trip": Status.OK,
    }
    assert TEST_ADDRESS in next(c.detail for c in checks if c.name == "private key")
    assert venue.logins == 1


async def test_clock_skew_beyond_limit_fails(
    settings: Settings, venue: Any, client_for: Any
) -> None:
    # a whole second on an injected clock: a Date header keeps whole seconds, so on the wall
    # clock the skew read +120.0 to +120.99 s and printed "+121.0" about one run in twenty
    now = float(int(time.time()))
    venue.on("GET", "/health", health_with_date(-120, at=now))
    checks = {
        c.name: c
        for c in await run_checks(settings, client_factory=factory(client_for), now=lambda: now)
    }
    assert checks["clock skew"].status is Status.FAIL
    assert "+120" in checks["clock skew"].detail


async def test_key_address_mismatch_warns(settings: Settings, venue: Any, client_for: Any) -> None:
    other = "0x" + "ab" * 20
    settings = settings.model_copy(update={"wallet_address": other})
    venue.on("GET", "/health", health_with_date(0))
    checks = {c.name: c for c in await run_checks(settings, client_factory=factory(client_for))}
    assert checks["private key"].status is Status.WARN
    assert other in checks["private key"].detail and TEST_ADDRESS in checks["private key"].detail


async def test_refused_login_fails_the_auth_check(
    settings: Settings, venue: Any, client_for: Any
) -> None:
    venue.on("GET", "/health", health_with_date(0))
    venue.routes[("POST", "/auth/evm/verify")] = lambda r: httpx.Response(
        401, json={"message": "Invalid signature"}
    )
    checks = {c.name: c for c in await run_checks(settings, client_factory=factory(client_for))}
    assert checks["auth round trip"].status is Status.FAIL
    assert "Invalid signature" in checks["auth round trip"].detail
