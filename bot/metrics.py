"""Prometheus metrics, `/healthz` and `/readyz`, on 127.0.0.1 by default.

One `Metrics` object owns its own registry (tests make many). Labels are bounded: asset,
strategy, endpoint *template*, action, verdict, error kind — never an id.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from decimal import Decimal
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

from bot import __version__
from bot.api.transport import RequestRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the bot exports; the dashboard and the alert rules are tested against these."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
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
            "alura_bot_daily_loss_limit_usd", "The configured daily loss limit.", registry=r
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
        self.decisions = Counter(
            "alura_bot_decisions",
            "Decisions by strategy, action, verdict.",
            ["strategy", "action", "verdict"],
            registry=r,
        )
        self.vetoes = Counter(
            "alura_bot_vetoes", "RiskGate vetoes by reason.", ["reason"], registry=r
        )
        self.api_requests = Counter(
            "alura_bot_api_requests",
            "HTTP requests to the venues.",
            ["endpoint", "method", "code"],
            registry=r,
        )
        self.api_duration = Histogram(
            "alura_bot_api_request_duration_seconds",
            "HTTP request latency.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.api_errors = Counter(
            "alura_bot_api_errors", "API errors by kind.", ["kind"], registry=r
        )
        self.tick_duration = Histogram(
            "alura_bot_tick_duration_seconds", "Tick duration.", buckets=TICK_BUCKETS, registry=r
        )
        self.last_tick = Gauge(
            "alura_bot_last_tick_timestamp_seconds",
            "Market time of the last tick (Unix seconds).",
            registry=r,
        )
        self.tick_interval = Gauge(
            "alura_bot_tick_interval_seconds", "The shortest configured tick interval.", registry=r
        )
        self.paused = Gauge("alura_bot_paused", "1 while the kill switch is on.", registry=r)
        self.intents_unresolved = Gauge(
            "alura_bot_intents_unresolved", "Intents pending, sent or unknown.", registry=r
        )
        self.build_info = Gauge(
            "alura_bot_build_info", "Build information.", ["version"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
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
        code = str(record.status) if record.status is not None else "none"
        self.api_requests.labels(record.endpoint, record.method, code).inc()
        self.api_duration.labels(record.endpoint).observe(record.duration_s)
        if record.error_kind:
            self.api_errors.labels(record.error_kind).inc()

    def count_decision(
        self, strategy: str, action: str, verdict: str, veto_reason: str | None
    ) -> None:
        self.decisions.labels(strategy, action, verdict).inc()
        if veto_reason:
            self.vetoes.labels(veto_reason).inc()

    def count_error(self, kind: str) -> None:
        self.api_errors.labels(kind).inc()

    def tick_done(self, duration_s: float, market_time_s: float) -> None:
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
        for asset in self._assets_seen | set(counts):
            self.open_sessions.labels(asset).set(counts.get(asset, 0))
        self._assets_seen |= set(counts)
        if account is not None:
            unreal = sum((s.unrealized_pnl for s in account.sessions.values()), Decimal(0))
            locked = sum((s.budget for s in account.sessions.values()), Decimal(0))
            self.unrealized_pnl.set(float(unreal))
            self.equity.set(float(account.free_balance + locked + unreal))

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

    def names(self) -> set[str]:
        """Every sample name a scrape can show (counters with `_total`, histograms' series)."""
        out = set()
        for family in self.registry.collect():
            out.add(family.name)
            for sample in family.samples:
                out.add(sample.name)
        return out

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """`/metrics`, `/healthz`, `/readyz` on a background thread; never blocks the event loop."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 9108) -> None:
        self.metrics = metrics
        self.host = host
        self.requested_port = port
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(
        self, *, loop_alive: Callable[[], bool], is_ready: Callable[[], tuple[bool, str]]
    ) -> MetricsServer:
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    alive = loop_alive()
                    self._send(
                        200 if alive else 503, b"ok\n" if alive else b"loop stalled\n", "text/plain"
                    )
                elif path == "/readyz":
                    ready, why = is_ready()
                    body = json.dumps({"ready": ready, "reason": why}).encode()
                    self._send(200 if ready else 503, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
