"""Retries for reads, never for money; Retry-After honoured; metrics hook sees templates only."""

from __future__ import annotations

import asyncio
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


class LoopClock:
    """Virtual time for the running event loop, which aiolimiter reads (`loop.time()`) and
    schedules its wake-ups on (`loop.call_at`): time moves only when the test says so."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.now = loop.time()

    def __enter__(self) -> LoopClock:
        self.loop.time = lambda: self.now  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.loop.time  # the class's real clock again

    async def advance(self, seconds: float) -> None:
        """Move time on, then let every task that can run do so (timers now due fire)."""
        self.now += seconds
        for _ in range(200):  # never idle, so the loop never blocks in select for real time
            await asyncio.sleep(0)


async def test_rate_limiter_holds_requests_beyond_the_burst_until_the_bucket_refills(
    venue: Any, client_for: Any
) -> None:
    """Burst 3, refilled at 2/s: of 5 reads sent at once, 3 go now, the 4th after 0.5 s and
    the 5th after 1 s; nothing passes early."""
    venue.on("GET", "/health", {"status": "ok"})
    http = HttpSettings(rate_limit_per_s=2, rate_limit_burst=3)
    with LoopClock(asyncio.get_running_loop()) as clock:
        async with client_for(http=http, with_key=False) as client:
            reads = [asyncio.create_task(client.health()) for _ in range(5)]
            sent = []
            for step in (0.0, 0.45, 0.1, 0.4, 0.1):
                await clock.advance(step)
                sent.append(len(venue.requests))
            await asyncio.gather(*reads)
    assert sent == [3, 3, 4, 4, 5]  # at t = 0, 0.45, 0.55, 0.95, 1.05 s


class FakeClock:
    """The transport's injectable clock and sleep: sleeping advances time, nothing really waits."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def clocked_client(venue: Any, clock: FakeClock, http: HttpSettings) -> Any:
    from bot.api.alura import AluraClient
    from bot.api.transport import Transport

    transport = Transport(
        "http://venue.test",
        http,
        http_transport=httpx.MockTransport(venue.handler),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    return AluraClient(transport, None)


BUDGET = HttpSettings(
    retry_attempts=4,
    retry_total_s=60,
    retry_max_wait_s=600,
    rate_limit_per_s=10_000,
    rate_limit_burst=10_000,
)


async def test_retry_after_beyond_budget_raises_instead_of_sleeping(venue: Any) -> None:
    """`429 Retry-After: 3600` with a 60 s budget: no sleep at all, the RateLimited is raised."""
    clock = FakeClock()
    limited = httpx.Response(429, headers={"Retry-After": "3600"}, json={"message": "slow down"})
    venue.on("GET", "/health", flaky(limited))
    async with clocked_client(venue, clock, BUDGET) as client:
        with pytest.raises(RateLimited) as info:
            await client.health()
    assert clock.sleeps == []
    assert info.value.retry_after == 3600.0
    assert len(venue.requests) == 1


async def test_retry_after_beyond_max_wait_raises_instead_of_sleeping(venue: Any) -> None:
    """A Retry-After inside the total budget but above retry_max_wait_s is not slept either."""
    clock = FakeClock()
    limited = httpx.Response(429, headers={"Retry-After": "45"})
    venue.on("GET", "/health", flaky(limited))
    http = BUDGET.model_copy(update={"retry_max_wait_s": 30.0})
    async with clocked_client(venue, clock, http) as client:
        with pytest.raises(RateLimited) as info:
            await client.health()
    assert clock.sleeps == [] and info.value.retry_after == 45.0


async def test_retry_after_honoured_only_while_it_fits_the_budget(venue: Any) -> None:
    """25 s waits in a 60 s budget: two are slept (t=50), the third would end at 75 s: raise."""
    clock = FakeClock()
    limited = httpx.Response(429, headers={"Retry-After": "25"})
    venue.on("GET", "/health", flaky(limited))
    async with clocked_client(venue, clock, BUDGET) as client:
        with pytest.raises(RateLimited) as info:
            await client.health()
    assert clock.sleeps == [25.0, 25.0]
    assert len(venue.requests) == 3
    assert info.value.retry_after == 25.0
    assert clock.now - 1_000.0 <= BUDGET.retry_total_s


async def test_retry_after_that_fits_is_honoured_then_succeeds(venue: Any) -> None:
    clock = FakeClock()
    limited = httpx.Response(429, headers={"Retry-After": "59"})
    venue.on("GET", "/health", flaky(limited, ok({"status": "ok"})))
    async with clocked_client(venue, clock, BUDGET) as client:
        health = await client.health()
    assert health.status == "ok" and clock.sleeps == [59.0]


async def test_slow_answers_count_against_the_budget(venue: Any) -> None:
    """Time spent waiting for the server counts: 50 s answer + 20 s Retry-After > 60 s budget."""
    clock = FakeClock()

    def slow_429(request: httpx.Request) -> httpx.Response:
        clock.now += 50.0
        return httpx.Response(429, headers={"Retry-After": "20"})

    venue.on("GET", "/health", slow_429)
    async with clocked_client(venue, clock, BUDGET) as client:
        with pytest.raises(RateLimited):
            await client.health()
    assert clock.sleeps == [] and len(venue.requests) == 1


async def test_backoff_never_sleeps_past_the_total_budget(venue: Any) -> None:
    """Plain 5xx backoff with many attempts allowed still stops inside retry_total_s."""
    clock = FakeClock()
    venue.on("GET", "/health", flaky(httpx.Response(503)))
    http = BUDGET.model_copy(update={"retry_attempts": 20, "retry_total_s": 5.0})
    async with clocked_client(venue, clock, http) as client:
        with pytest.raises(ServerError):
            await client.health()
    assert clock.sleeps, "it did retry with backoff"
    assert sum(clock.sleeps) <= 5.0
    assert len(venue.requests) == len(clock.sleeps) + 1 < 20


async def test_trigger_cron_moves_money_timeout_is_outcome_unknown_not_retried(
    venue: Any, client_for: Any
) -> None:
    """trigger-cron advances session processing: a lost answer is OutcomeUnknown, sent once."""
    venue.on("POST", "/trading-sessions/trigger-cron", flaky(httpx.ReadTimeout("slow")))
    async with client_for() as client:
        with pytest.raises(OutcomeUnknown):
            await client.trigger_cron()
    sent = [r for r in venue.requests if r.url.path == "/trading-sessions/trigger-cron"]
    assert len(sent) == 1


async def test_trigger_cron_5xx_is_outcome_unknown(venue: Any, client_for: Any) -> None:
    venue.on("POST", "/trading-sessions/trigger-cron", flaky(httpx.Response(502)))
    async with client_for() as client:
        with pytest.raises(OutcomeUnknown) as info:
            await client.trigger_cron()
    assert info.value.status == 502


async def test_a_429_holds_back_every_later_request_for_its_retry_after(
    venue: Any, client_for: Any, sleeps: Any
) -> None:
    """Retry-After speaks for the server: a money-moving POST that got one is not retried, and
    the next request of the process, to any endpoint, waits it out first."""
    venue.on(
        "POST",
        "/trading-sessions",
        lambda _: httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow"}),
    )
    venue.on("GET", "/health", {"status": "ok"})
    request = QuickSessionRequest(
        budget=Decimal(20), profit_target=Decimal(1), loss_threshold=Decimal(1), asset_index=0
    )
    async with client_for() as client:
        with pytest.raises(RateLimited):
            await client.create_quick_session(request)
        assert sleeps.calls == []
        await client.health()
    assert len(sleeps.calls) == 1 and 6.5 <= sleeps.calls[0] <= 7


async def test_a_huge_retry_after_holds_back_at_most_the_max_wait(
    venue: Any, client_for: Any, sleeps: Any
) -> None:
    venue.on(
        "POST",
        "/trading-sessions",
        lambda _: httpx.Response(429, headers={"Retry-After": "3600"}, json={"message": "slow"}),
    )
    venue.on("GET", "/health", {"status": "ok"})
    request = QuickSessionRequest(
        budget=Decimal(20), profit_target=Decimal(1), loss_threshold=Decimal(1), asset_index=0
    )
    http = HttpSettings(rate_limit_per_s=10_000, rate_limit_burst=10_000, retry_max_wait_s=20)
    async with client_for(http=http) as client:
        with pytest.raises(RateLimited):
            await client.create_quick_session(request)
        await client.health()
    assert len(sleeps.calls) == 1 and 19 <= sleeps.calls[0] <= 20


async def test_a_429_seen_while_another_read_backs_off_still_holds_that_read_back(
    venue: Any,
) -> None:
    """Read A backs off 0.5 s after a 502; meanwhile request B gets `429 Retry-After: 30`.
    A's retry must wait out B's 30 s, not go out when its own short backoff ends."""
    import asyncio

    from bot.api.transport import Transport

    clock = FakeClock()
    gate = asyncio.Event()
    sent_at: dict[str, list[float]] = {"/a": [], "/b": []}
    a_sent = asyncio.Event()

    async def sleep(seconds: float) -> None:
        if not gate.is_set():
            await gate.wait()
        await clock.sleep(seconds)

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at[request.url.path].append(clock.now)
        if request.url.path == "/a":
            a_sent.set()
        if request.url.path == "/b":
            return httpx.Response(429, headers={"Retry-After": "30"})
        return httpx.Response(502) if len(sent_at["/a"]) == 1 else ok({})

    http = BUDGET.model_copy(update={"retry_max_wait_s": 60.0, "retry_total_s": 120.0})
    async with Transport(
        "http://venue.test",
        http,
        http_transport=httpx.MockTransport(handler),
        sleep=sleep,
        monotonic=clock.monotonic,
    ) as transport:
        a = asyncio.create_task(transport.request("GET", "/a"))
        await a_sent.wait()
        with pytest.raises(RateLimited):
            await transport.request("POST", "/b", moves_money=True)
        gate.set()
        await a

    first_429 = sent_at["/b"][0]
    assert len(sent_at["/a"]) == 2
    assert sent_at["/a"][1] >= first_429 + 30.0


async def test_a_second_service_shares_the_one_http_client_with_its_own_limits() -> None:
    from bot.api.transport import Transport

    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return ok({"status": "ok"})

    alura = Transport("http://alura.test", http_transport=httpx.MockTransport(handler))
    positions = alura.for_service("http://positions.test")
    assert positions._client is alura._client
    assert positions._limiter is not alura._limiter
    await positions.request("GET", "/api/positions")
    await alura.request("GET", "/health")
    assert hosts == ["positions.test", "alura.test"]
    await positions.aclose()
    assert not alura._client.is_closed  # the service transport does not own the client
    await alura.aclose()
    assert alura._client.is_closed
