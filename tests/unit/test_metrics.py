"""Metrics: exactly the documented families and labels, bounded labels, and the HTTP endpoints.

The server tests talk real HTTP to 127.0.0.1 on a free port, as Prometheus and the Docker
HEALTHCHECK do.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import __version__
from bot.api.errors import NotFound
from bot.api.transport import RequestRecord, Transport
from bot.engine.executor import AccountState, VenueSession
from bot.metrics import Metrics, MetricsServer
from bot.settings import HttpSettings, Settings

# family as a scrape names it -> (type, label names)
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    # issue 5
    "alura_bot_realized_pnl_usd": ("gauge", ()),
    "alura_bot_unrealized_pnl_usd": ("gauge", ()),
    "alura_bot_equity_usd": ("gauge", ()),
    "alura_bot_open_sessions": ("gauge", ("asset",)),
    "alura_bot_decisions_total": ("counter", ("strategy", "action", "verdict")),
    "alura_bot_api_requests_total": ("counter", ("endpoint", "method", "code")),
    "alura_bot_api_request_duration_seconds": ("histogram", ("endpoint",)),
    "alura_bot_api_errors_total": ("counter", ("kind",)),
    "alura_bot_tick_duration_seconds": ("histogram", ()),
    "alura_bot_last_tick_timestamp_seconds": ("gauge", ()),
    "alura_bot_paused": ("gauge", ()),
    "alura_bot_build_info": ("gauge", ("version",)),
    # issue 7
    "alura_bot_positions_open": ("gauge", ()),
    "alura_bot_positions_total": ("gauge", ("status",)),
    "alura_bot_positions_pnl": ("gauge", ()),
    "alura_bot_positions_win_rate": ("gauge", ()),
    "alura_bot_positions_fees_paid": ("gauge", ()),
    # risk and alerting
    "alura_bot_vetoes_total": ("counter", ("reason",)),
    "alura_bot_intents_unresolved": ("gauge", ()),
    "alura_bot_daily_realized_pnl_usd": ("gauge", ()),
    "alura_bot_daily_loss_limit_usd": ("gauge", ()),
    "alura_bot_tick_interval_seconds": ("gauge", ()),
}


def scrape(metrics: Metrics) -> dict[str, Any]:
    """Parse the exposition as Prometheus would; keyed by the name on the `# TYPE` line."""
    text = metrics.exposition().decode()
    families = {}
    for family in text_string_to_metric_families(text):
        # The parser drops a counter's `_total` from the family name; put it back.
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = family
    return families


def touch_every_metric(m: Metrics) -> None:
    """Give each labelled family one child so it has samples to inspect."""
    m.open_sessions.labels(asset="BTC").set(1)
    m.decisions.labels(strategy="ema_cross", action="open_quick", verdict="accepted").inc()
    m.observe_request(RequestRecord("GET", "/health", 200, 0.01, None))
    m.count_error("server_error")
    m.positions_total.labels(status="open").set(2)
    m.vetoes.labels(reason="cooldown").inc()
    m.tick_done(0.02, 1_700_000_000.0)


def test_names_are_exactly_the_documented_families() -> None:
    assert Metrics().names() == set(EXPECTED)


def test_series_names_add_histogram_suffixes_only() -> None:
    series = Metrics().series_names()
    for hist in ("alura_bot_api_request_duration_seconds", "alura_bot_tick_duration_seconds"):
        assert {hist + "_bucket", hist + "_count", hist + "_sum"} <= series
    assert series - Metrics().names() == {
        f"{h}{s}"
        for h in ("alura_bot_api_request_duration_seconds", "alura_bot_tick_duration_seconds")
        for s in ("_bucket", "_count", "_sum")
    }


def test_every_metric_is_exposed_with_its_type_and_labels() -> None:
    m = Metrics()
    touch_every_metric(m)
    families = scrape(m)
    assert set(families) == set(EXPECTED)
    for name, (kind, labels) in EXPECTED.items():
        family = families[name]
        assert family.type == kind, name
        samples = family.samples
        assert samples, f"{name} has no samples"
        for sample in samples:
            own = {k for k in sample.labels if k != "le"}
            assert own == set(labels), (name, sample.labels)


def test_no_created_series_are_exposed() -> None:
    m = Metrics()
    touch_every_metric(m)
    assert b"_created" not in m.exposition()


def test_last_tick_starts_at_process_start_then_follows_ticks() -> None:
    before = time.time()
    m = Metrics()
    assert before <= m.last_tick._value.get() <= time.time()
    m.tick_done(0.01, 1_700_000_000.0)
    assert m.last_tick._value.get() == 1_700_000_000.0
    assert m.tick_duration._sum.get() == 0.01


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.paused.set(1)
    assert b.paused._value.get() == 0
    assert a.registry is not b.registry


def test_build_info_carries_the_version() -> None:
    (sample,) = scrape(Metrics())["alura_bot_build_info"].samples
    assert sample.labels == {"version": __version__}
    assert sample.value == 1


def test_observe_request_labels_template_method_code() -> None:
    m = Metrics()
    m.observe_request(RequestRecord("post", "/trading-sessions/{id}/close", 201, 0.2, None))
    m.observe_request(
        RequestRecord("GET", "/trading-sessions/active", None, 15.0, "transport_error")
    )
    m.observe_request(RequestRecord("GET", "/trading-sessions/active", 429, 0.01, "rate_limited"))
    families = scrape(m)
    requests = {
        (s.labels["endpoint"], s.labels["method"], s.labels["code"]): s.value
        for s in families["alura_bot_api_requests_total"].samples
        if s.name.endswith("_total")
    }
    assert requests == {
        ("/trading-sessions/{id}/close", "POST", "201"): 1.0,
        ("/trading-sessions/active", "GET", "none"): 1.0,
        ("/trading-sessions/active", "GET", "429"): 1.0,
    }
    errors = {
        s.labels["kind"]: s.value
        for s in families["alura_bot_api_errors_total"].samples
        if s.name.endswith("_total")
    }
    assert errors == {"transport_error": 1.0, "rate_limited": 1.0}
    counts = {
        s.labels["endpoint"]: s.value
        for s in families["alura_bot_api_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts == {"/trading-sessions/{id}/close": 1.0, "/trading-sessions/active": 2.0}


async def test_transport_hook_labels_use_the_template_never_an_id() -> None:
    """Through the real Transport: many ids in the URL, one bounded series in the registry."""
    m = Metrics()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if request.url.path.endswith("-7") else 200, json={})

    transport = Transport(
        "http://venue.test",
        HttpSettings(rate_limit_per_s=10_000, rate_limit_burst=10_000, retry_attempts=1),
        http_transport=httpx.MockTransport(handler),
        hooks=[m.observe_request],
    )
    ids = [f"sess-{i}" for i in range(10)]
    async with transport:
        for sid in ids:
            with contextlib.suppress(NotFound):
                await transport.request("GET", "/things/{sid}", path={"sid": sid})
    text = m.exposition().decode()
    assert all(sid not in text for sid in ids)
    samples = [
        s for s in scrape(m)["alura_bot_api_requests_total"].samples if s.name.endswith("_total")
    ]
    assert {(s.labels["endpoint"], s.labels["code"], s.value) for s in samples} == {
        ("/things/{sid}", "200", 9.0),
        ("/things/{sid}", "404", 1.0),
    }


def test_decisions_and_vetoes() -> None:
    m = Metrics()
    m.count_decision("ema_cross", "open_quick", "accepted", None)
    m.count_decision("ema_cross", "open_quick", "vetoed", "max_open_sessions")
    m.count_decision("rsi_reversion", "open_quick", "vetoed", "max_open_sessions")
    families = scrape(m)
    vetoes = [s for s in families["alura_bot_vetoes_total"].samples if s.name.endswith("_total")]
    assert [(s.labels, s.value) for s in vetoes] == [({"reason": "max_open_sessions"}, 2.0)]
    decisions = [
        s for s in families["alura_bot_decisions_total"].samples if s.name.endswith("_total")
    ]
    assert len(decisions) == 3


def test_refresh_from_journal_and_account() -> None:
    m = Metrics()
    now_ms = 1_700_000_000_000
    sessions = [SimpleNamespace(asset="BTC"), SimpleNamespace(asset="BTC")]
    journal = SimpleNamespace(
        realized_pnl_total=lambda: Decimal("12.5"),
        realized_pnl_between=lambda start, end: Decimal("-3.25"),
        paused=True,
        unresolved_intents=lambda: [object()],
        open_sessions=lambda: sessions,
    )
    account = AccountState(
        free_balance=Decimal("900"),
        sessions={
            sid: VenueSession(sid, "BTC", "quick", Decimal("50"), None, Decimal(pnl), {})
            for sid, pnl in (("a", "1.5"), ("b", "-0.5"))
        },
    )
    m.refresh_from(journal, account, now_ms)
    assert m.realized_pnl._value.get() == 12.5
    assert m.daily_realized_pnl._value.get() == -3.25
    assert m.paused._value.get() == 1
    assert m.intents_unresolved._value.get() == 1
    assert m.unrealized_pnl._value.get() == 1.0
    assert m.equity._value.get() == 1001.0
    assert m.open_sessions.labels("BTC")._value.get() == 2
    sessions.clear()  # the asset stays as a 0, not a gap
    m.refresh_from(journal, None, now_ms)
    assert m.open_sessions.labels("BTC")._value.get() == 0


def test_refresh_positions() -> None:
    m = Metrics()
    stats = SimpleNamespace(
        open_positions=2,
        closed_positions=5,
        won_positions=3,
        lost_positions=2,
        total_pnl=1_500_000_000,
        win_rate=0.6,
        total_fees_paid=20_000_000,
    )
    units = SimpleNamespace(display=lambda raw: Decimal(raw) / Decimal(10**9))
    m.refresh_positions(stats, units)
    totals = {s.labels["status"]: s.value for s in scrape(m)["alura_bot_positions_total"].samples}
    assert totals == {"open": 2, "closed": 5, "won": 3, "lost": 2}
    assert m.positions_pnl._value.get() == 1.5
    assert m.positions_fees_paid._value.get() == 0.02
    assert m.positions_win_rate._value.get() == 0.6


# -- the HTTP server ----------------------------------------------------------------------


class Probes:
    """Switchable /healthz and /readyz answers."""

    def __init__(self) -> None:
        self.alive = True
        self.ready: tuple[bool, str] = (True, "ok")
        self.raise_ready = False

    def loop_alive(self) -> bool:
        return self.alive

    def is_ready(self) -> tuple[bool, str]:
        if self.raise_ready:
            raise RuntimeError("journal closed")
        return self.ready


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, Probes]]:
    m = Metrics()
    touch_every_metric(m)
    probes = Probes()
    server = MetricsServer(m, port=0).start(loop_alive=probes.loop_alive, is_ready=probes.is_ready)
    try:
        yield server, probes
    finally:
        server.stop()


def test_default_bind_is_loopback() -> None:
    assert Settings.model_fields["metrics_host"].default == "127.0.0.1"
    assert Settings.model_fields["metrics_port"].default == 9108
    server = MetricsServer(Metrics())
    assert (server.host, server.port) == ("127.0.0.1", 9108)


def test_port_zero_binds_loopback_and_reports_the_real_port(
    served: tuple[MetricsServer, Probes],
) -> None:
    server, _ = served
    assert server.port != 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass


def test_ipv6_loopback_bind() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = MetricsServer(Metrics(), host="::1", port=0).start(
            loop_alive=lambda: True, is_ready=lambda: (True, "ok")
        )
    except OSError as exc:
        pytest.skip(f"cannot bind ::1 here: {exc}")
    try:
        assert server.url == f"http://[::1]:{server.port}"
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    finally:
        server.stop()


def test_metrics_endpoint_serves_the_text_format(served: tuple[MetricsServer, Probes]) -> None:
    server, _ = served
    r = httpx.get(server.url + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    names = {
        f.name + "_total" if f.type == "counter" else f.name
        for f in text_string_to_metric_families(r.text)
    }
    assert names == set(EXPECTED)
    assert 'alura_bot_api_requests_total{code="200",endpoint="/health",method="GET"} 1.0' in (
        r.text
    )


def test_healthz_follows_loop_alive(served: tuple[MetricsServer, Probes]) -> None:
    server, probes = served
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    probes.alive = False
    r = httpx.get(server.url + "/healthz", timeout=5)
    assert r.status_code == 503
    assert "stalled" in r.text


def test_readyz_follows_is_ready_with_a_json_reason(
    served: tuple[MetricsServer, Probes],
) -> None:
    server, probes = served
    r = httpx.get(server.url + "/readyz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"ready": True, "reason": "ok"})
    probes.ready = (False, "not authenticated")
    r = httpx.get(server.url + "/readyz", timeout=5)
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"ready": False, "reason": "not authenticated"}
    probes.ready = (False, "last tick 7300 s ago")
    assert httpx.get(server.url + "/readyz", timeout=5).json()["reason"] == "last tick 7300 s ago"


def test_a_failing_probe_is_a_503_not_a_500(served: tuple[MetricsServer, Probes]) -> None:
    server, probes = served
    probes.raise_ready = True
    r = httpx.get(server.url + "/readyz", timeout=5)
    assert r.status_code == 503
    assert r.json() == {"ready": False, "reason": "readiness probe failed: RuntimeError"}


def test_unknown_path_is_404(served: tuple[MetricsServer, Probes]) -> None:
    server, _ = served
    assert httpx.get(server.url + "/nope", timeout=5).status_code == 404


async def test_serves_while_the_event_loop_is_blocked() -> None:
    """The scrape path never needs the asyncio loop: a blocked loop still answers /healthz."""
    server = MetricsServer(Metrics(), port=0).start(
        loop_alive=lambda: False, is_ready=lambda: (False, "starting")
    )
    try:
        # A synchronous request from inside a coroutine blocks this loop until it returns.
        r = httpx.get(server.url + "/healthz", timeout=5)  # noqa: ASYNC210 - on purpose
        assert r.status_code == 503
        await asyncio.sleep(0)
    finally:
        server.stop()


def test_stop_is_prompt_and_frees_the_port() -> None:
    server = MetricsServer(Metrics(), port=0).start(
        loop_alive=lambda: True, is_ready=lambda: (True, "ok")
    )
    port = server.port
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    server.stop()  # idempotent


def test_start_twice_is_refused() -> None:
    with MetricsServer(Metrics(), port=0) as server:
        server.start(loop_alive=lambda: True, is_ready=lambda: (True, "ok"))
        with pytest.raises(RuntimeError):
            server.start(loop_alive=lambda: True, is_ready=lambda: (True, "ok"))
