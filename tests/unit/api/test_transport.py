"""Retries for reads, never for money; Retry-After honoured; metrics hook sees templates only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bot.api.errors import (
    OutcomeUnknown,
    RateLimited,
    ServerError,
    TransportError,
)
from bot.api.models import QuickSessionRequest
from bot.api.transport import RequestRecord
from bot.settings import HttpSettings


def flaky(*answers: httpx.Response | Exception) -> Any:
    """A handler that gives each answer in turn, then repeats the last one."""
    seq = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = seq.pop(0) if len(seq) > 1 else seq[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


QUICK = QuickSessionRequest(budget=Decimal(50), profit_target=Decimal(10), asset_index=0)


async def test_get_retries_5xx_then_succeeds(venue: Any, client_for: Any, sleeps: Any) -> None:
    venue.on(
        "GET", "/health", flaky(httpx.Response(503), httpx.Response(502), ok({"status": "ok"}))
    )
    async with client_for() as client:
        health = await client.health()
    assert health.status == "ok"
    assert len(venue.requests) == 3
    assert len(sleeps.calls) == 2 and all(s >= 0 for s in sleeps.calls)


async def test_get_honours_retry_after_seconds(venue: Any, client_for: Any, sleeps: Any) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow down"})
    venue.on("GET", "/health", flaky(limited, ok({"status": "ok"})))
    async with client_for() as client:
        await client.health()
    assert sleeps.calls == [7.0]


async def test_get_honours_retry_after_http_date(venue: Any, client_for: Any, sleeps: Any) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    limited = httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    venue.on("GET", "/health", flaky(limited, ok({"status": "ok"})))
    async with client_for() as client:
        await client.health()
    assert len(sleeps.calls) == 1 and 25 <= sleeps.calls[0] <= 31


async def test_get_gives_up_after_bounded_attempts(
    venue: Any, client_for: Any, sleeps: Any
) -> None:
    venue.on("GET", "/health", flaky(httpx.Response(500, json={"message": "boom"})))
    http = HttpSettings(retry_attempts=3, rate_limit_per_s=1000, rate_limit_burst=1000)
    async with client_for(http=http) as client:
        with pytest.raises(ServerError) as info:
            await client.health()
    assert len(venue.requests) == 3
    assert info.value.status == 500 and "boom" in str(info.value)


async def test_rate_limited_error_carries_retry_after(venue: Any, client_for: Any) -> None:
    venue.on("GET", "/health", flaky(httpx.Response(429, headers={"Retry-After": "3"})))
    async with client_for(http=HttpSettings(retry_attempts=1)) as client:
        with pytest.raises(RateLimited) as info:
            await client.health()
    assert info.value.retry_after == 3.0


async def test_session_create_timeout_is_outcome_unknown_and_not_retried(
    venue: Any, client_for: Any
) -> None:
    venue.on("POST", "/trading-sessions", flaky(httpx.ReadTimeout("slow")))
    async with client_for() as client:
        with pytest.raises(OutcomeUnknown):
            await client.create_quick_session(QUICK)
    creates = [r for r in venue.requests if r.url.path == "/trading-sessions"]
    assert len(creates) == 1


async def test_session_create_5xx_is_outcome_unknown_and_not_retried(
    venue: Any, client_for: Any
) -> None:
    venue.on("POST", "/trading-sessions", flaky(httpx.Response(502, text="Bad Gateway")))
    async with client_for() as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.create_quick_session(QUICK)
    assert info.value.status == 502
    assert len([r for r in venue.requests if r.url.path == "/trading-sessions"]) == 1


async def test_session_create_connect_error_is_transport_error(venue: Any, client_for: Any) -> None:
    venue.on("POST", "/trading-sessions", flaky(httpx.ConnectError("refused")))
    async with client_for() as client:
        with pytest.raises(TransportError) as info:
            await client.create_quick_session(QUICK)
    assert not isinstance(info.value, OutcomeUnknown)


async def test_hook_sees_endpoint_template_not_ids(venue: Any, client_for: Any) -> None:
    records: list[RequestRecord] = []
    venue.on("GET", "/trading-sessions/sess-12345/logs", {"logs": []})
    async with client_for(hooks=[records.append]) as client:
        await client.session_logs("sess-12345")
    session_calls = [r for r in records if "logs" in r.endpoint]
    assert session_calls == [
        RequestRecord(
            "GET", "/trading-sessions/{session_id}/logs", 200, session_calls[0].duration_s, None
        )
    ]
    assert all("sess-12345" not in r.endpoint for r in records)


async def test_hook_records_error_kind(venue: Any, client_for: Any) -> None:
    records: list[RequestRecord] = []
    venue.on("GET", "/health", flaky(httpx.Response(404)))
    async with client_for(hooks=[records.append]) as client:
        with pytest.raises(Exception, match="not found"):
            await client.health()
    assert [(r.status, r.error_kind) for r in records] == [(404, "NotFound")]


def test_rate_limiter_built_from_settings() -> None:
    """A bucket of `rate_limit_burst` requests refilled at `rate_limit_per_s`."""
    from bot.api.transport import Transport

    transport = Transport("http://x", HttpSettings(rate_limit_per_s=4, rate_limit_burst=2))
    assert transport._limiter.max_rate == 2
    assert transport._limiter.time_period == pytest.approx(0.5)
