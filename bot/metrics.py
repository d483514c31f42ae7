"""Prometheus metrics, `/healthz` and `/readyz`, on 127.0.0.1 by default.

One `Metrics` object owns its own registry (tests make many). Labels are bounded: asset,
strategy, endpoint *template*, action, verdict, error kind, veto reason, status — never an id.
The Grafana dashboard and the alert rules in `deploy/` are tested against `Metrics().names()`.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from bot import __version__
from bot.api.transport import RequestRecord

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
NO_RESPONSE = "none"


class Metrics:
    """Every metric the bot exports; the dashboard and the alert rules are tested against these."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # -- money (journal is the source of truth; refreshed by the stats job) ---------------
        self.realized_pnl = Gauge(
            "alura_bot_realized_pnl_usd",
            "Realised PnL of closed sessions, all time (journal).",
            registry=r,
        )
        self.daily_realized_pnl = Gauge(
            "alura_bot_daily_realized_pnl_usd",
            "Realised PnL of sessions closed today (UTC).",
            registry=r,
        )
        self.daily_loss_limit = Gauge(
            "alura_bot_daily_loss_limit_usd",
            "The configured daily loss limit (positive USD; the alert compares against it).",
            registry=r,
        )
        self.unrealized_pnl = Gauge(
            "alura_bot_unrealized_pnl_usd", "Unrealised PnL of open sessions.", registry=r
        )
        self.equity = Gauge(
            "alura_bot_equity_usd", "Free balance + open budgets + unrealised PnL.", registry=r
        )
        self.open_sessions = Gauge(
            "alura_bot_open_sessions", "Open sessions by asset.", ["asset"], registry=r
        )
        # -- decisions ------------------------------------------------------------------------
        self.decisions = Counter(
            "alura_bot_decisions",
            "Decisions by strategy, action, verdict.",
            ["strategy", "action", "verdict"],
            registry=r,
        )
        self.vetoes = Counter(
            "alura_bot_vetoes", "RiskGate vetoes by reason.", ["reason"], registry=r
        )
        self.intents_unresolved = Gauge(
            "alura_bot_intents_unresolved",
            "Intents pending, sent or unknown (reconciliation has not settled them).",
            registry=r,
        )
        # -- HTTP -----------------------------------------------------------------------------
        self.api_requests = Counter(
            "alura_bot_api_requests",
            "HTTP requests to the venues by endpoint template, method and status code.",
            ["endpoint", "method", "code"],
            registry=r,
        )
        self.api_duration = Histogram(
            "alura_bot_api_request_duration_seconds",
            "HTTP request latency by endpoint template.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.api_errors = Counter(
            "alura_bot_api_errors", "API errors by kind.", ["kind"], registry=r
        )
        # -- liveness -------------------------------------------------------------------------
        self.tick_duration = Histogram(
            "alura_bot_tick_duration_seconds", "Tick duration.", buckets=TICK_BUCKETS, registry=r
        )
        self.last_tick = Gauge(
            "alura_bot_last_tick_timestamp_seconds",
            "Market time of the last tick (Unix seconds); process start until the first tick.",
            registry=r,
        )
        # Not 0 before the first tick: the "no tick for 3 intervals" alert then also covers a
        # daemon that never ticks, without firing on one that just started.
        self.last_tick.set(time.time())
        self.tick_interval = Gauge(
            "alura_bot_tick_interval_seconds",
            "The shortest configured tick interval (the no-tick alert waits 3 of them).",
            registry=r,
        )
        self.paused = Gauge("alura_bot_paused", "1 while the kill switch is on.", registry=r)
        self.build_info = Gauge(
            "alura_bot_build_info", "Always 1; the version as a label.", ["version"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        # -- user positions API (issue 7) -----------------------------------------------------
        self.positions_open = Gauge("alura_bot_positions_open", "Open user positions.", registry=r)
        self.positions_total = Gauge(
            "alura_bot_positions_total", "User positions by status.", ["status"], registry=r
        )
        self.positions_pnl = Gauge(
            "alura_bot_positions_pnl", "Positions PnL, display units.", registry=r
        )
        self.positions_win_rate = Gauge(
            "alura_bot_positions_win_rate", "Won / (won + lost).", registry=r
        )
        self.positions_fees_paid = Gauge(
            "alura_bot_positions_fees_paid", "Positions fees paid, display units.", registry=r
        )
        self._assets_seen: set[str] = set()

    # -- hooks ----------------------------------------------------------------------------

    def observe_request(self, record: RequestRecord) -> None:
        """The transport hook: one exchange, labelled by its endpoint template (never a URL)."""
        code = str(record.status) if record.status is not None else NO_RESPONSE
        self.api_requests.labels(record.endpoint, record.method.upper(), code).inc()
        self.api_duration.labels(record.endpoint).observe(record.duration_s)
        if record.error_kind:
            self.api_errors.labels(record.error_kind).inc()

    def count_decision(
        self, strategy: str, action: str, verdict: str, veto_reason: str | None
    ) -> None:
        """One decision after the RiskGate; a veto also counts under its (bounded) reason."""
        self.decisions.labels(strategy, action, verdict).inc()
        if veto_reason:
            self.vetoes.labels(veto_reason).inc()

    def count_error(self, kind: str) -> None:
        """An API error seen outside the transport hook (e.g. raised by a client parse)."""
        self.api_errors.labels(kind).inc()

    def tick_done(self, duration_s: float, market_time_s: float) -> None:
        """Freshness for the no-tick alert and `/readyz`, duration for the tick histogram."""
        self.tick_duration.observe(duration_s)
        self.last_tick.set(market_time_s)

    def refresh_from(self, journal: Any, account: Any, now_ms: int) -> None:
        """Gauges from the journal (the source of truth) and the executor's account state."""
        day = now_ms - now_ms % 86_400_000
        self.realized_pnl.set(float(journal.realized_pnl_total()))
        self.daily_realized_pnl.set(float(journal.realized_pnl_between(day, now_ms + 1)))
        self.paused.set(1 if journal.paused else 0)
        self.intents_unresolved.set(len(journal.unresolved_intents()))
        counts: dict[str, int] = {}
        for row in journal.open_sessions():
            counts[row.asset] = counts.get(row.asset, 0) + 1
        # Assets seen before drop to 0 rather than vanish, so "open sessions by asset" has no gaps.
        for asset in self._assets_seen | set(counts):
            self.open_sessions.labels(asset).set(counts.get(asset, 0))
        self._assets_seen |= set(counts)
        if account is not None:
            self.unrealized_pnl.set(float(account.unrealized_pnl))
            self.equity.set(float(account.equity))

    def refresh_positions(self, stats: Any, units: Any) -> None:
        """Positions gauges from the service's stats, money in display units."""
        self.positions_open.set(stats.open_positions)
        for status, count in (
            ("open", stats.open_positions),
            ("closed", stats.closed_positions),
            ("won", stats.won_positions),
            ("lost", stats.lost_positions),
        ):
            self.positions_total.labels(status).set(count)
        self.positions_pnl.set(float(units.display(stats.total_pnl)))
        self.positions_win_rate.set(stats.win_rate)
        self.positions_fees_paid.set(float(units.display(stats.total_fees_paid)))

    # -- introspection --------------------------------------------------------------------

    def names(self) -> set[str]:
        """Every metric family as a scrape names it, whether or not it has samples yet.

        prometheus_client stores a counter's family without `_total` but exposes it with the
        suffix; histograms keep their base name (series add `_bucket`, `_count`, `_sum`).
        """
        out: set[str] = set()
        for family in self.registry.collect():
            out.add(family.name + "_total" if family.type == "counter" else family.name)
        return out

    def series_names(self) -> set[str]:
        """What PromQL may select: family names plus each histogram's `_bucket/_count/_sum`."""
        out = self.names()
        for family in self.registry.collect():
            if family.type == "histogram":
                out.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
        return out

    def exposition(self) -> bytes:
        """The Prometheus text format of this registry, without `_created` series."""
        return generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated:
    """A registry view that drops prometheus_client's `_created` samples.

    In the text format they become one extra gauge series per counter/histogram child: twice the
    series for counters, and nothing in `deploy/` reads them. Filtering here keeps the switch local
    (prometheus_client's `disable_created_metrics()` is process-global).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            clone = copy.copy(family)
            clone.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield clone


Ready = tuple[bool, str]


def bind_problem(exc: OSError) -> str:
    """Why `MetricsServer.start()` could not bind, in words an operator acts on."""
    import errno

    if exc.errno == errno.EADDRINUSE:
        return "the port is already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "that address is not one of this machine's"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    return exc.strerror or str(exc)


class MetricsServer:
    """`/metrics`, `/healthz`, `/readyz` on a background thread; never blocks the event loop.

    A stdlib threading server keeps the scrape path free of the asyncio loop it reports on: a
    stalled loop must still be able to answer 503 on `/healthz`.
    """

    POLL_S = 0.1  # shutdown() waits at most one poll interval
    CLIENT_TIMEOUT_S = 5.0  # a stuck client cannot hold a handler thread forever

    def __init__(
        self, metrics: Metrics, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.requested_port = port
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(
        self, *, loop_alive: Callable[[], bool], is_ready: Callable[[], Ready]
    ) -> MetricsServer:
        """Bind (port 0 picks a free port, see `.port`) and serve until `stop()`."""
        if self._server is not None:
            raise RuntimeError("metrics server already started")
        handler = _handler_for(self.metrics, loop_alive, is_ready, self.CLIENT_TIMEOUT_S)
        server_cls = _HTTPServer6 if ":" in self.host else ThreadingHTTPServer
        server = server_cls((self.host, self.requested_port), handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self.POLL_S},
            name="metrics-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close the socket, join the thread (well within a second)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=1.0)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _HTTPServer6(ThreadingHTTPServer):
    """The same server on an IPv6 address (`metrics_host = "::1"` or `"::"`)."""

    address_family = socket.AF_INET6


def _handler_for(
    metrics: Metrics,
    loop_alive: Callable[[], bool],
    is_ready: Callable[[], Ready],
    timeout_s: float,
) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one Metrics and the daemon's two probes."""

    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s
        server_version = f"alura-bot/{__version__}"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = _alive(loop_alive)
                self._send(
                    200 if ok else 503,
                    b"ok\n" if ok else b"event loop stalled\n",
                    "text/plain; charset=utf-8",
                )
            elif path == "/readyz":
                ready, reason = _ready(is_ready)
                body = json.dumps({"ready": ready, "reason": reason}).encode()
                self._send(200 if ready else 503, body, "application/json")
            elif path == "/":
                links = b"alura-bot: /metrics /healthz /readyz\n"
                self._send(200, links, "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes every few seconds would flood the journal; stay quiet."""

    return Handler


def _alive(check: Callable[[], bool]) -> bool:
    """A probe that raises counts as "not alive" rather than turning into a 500."""
    try:
        return bool(check())
    except Exception:
        return False


def _ready(check: Callable[[], Ready]) -> Ready:
    """A probe that raises counts as "not ready", with the exception's type as the reason."""
    try:
        ready, reason = check()
    except Exception as exc:
        return False, f"readiness probe failed: {type(exc).__name__}"
    return bool(ready), str(reason)
