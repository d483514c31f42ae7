"""`alura-bot demo`: the simulator and the daemon in one process, on an accelerated market.

The venue is simulated, so the daemon runs in live mode against it over real HTTP with a
throwaway key that exists only in memory: real signatures, real JWTs, real sessions, no account,
no key file, no network. A live table shows signals, decisions, sessions and PnL.

At the end the summary is read from the journal on disk, the simulator's request counts are
written next to it (`sim-requests.json`), and with `--linger` the metrics server alone keeps
serving the final values, so a real Prometheus can scrape a finished run and be compared with
the journal (tests/deploy/test_prometheus_scrape.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import socket
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from bot.domain import Hold, decision_action
from bot.engine.daemon import Daemon
from bot.engine.tick import TickReport
from bot.journal import Journal
from bot.logs import register_secret
from bot.settings import Settings, StrategyConfig
from bot.sim.app import RequestLog
from bot.sim.server import SimOptions, SimServer, build_simulator

log = logging.getLogger("bot.demo")

DEMO_STRATEGIES = [
    StrategyConfig(
        name="signal_follower",
        params={
            "interval": "1h",
            "min_strength": 0.35,
            "allow_short": True,
            "session": {"budget": 100, "profit_target": 3, "loss_threshold": 2, "max_positions": 1},
        },
    ),
    StrategyConfig(
        name="ema_cross",
        assets=["BTC", "ETH", "SOL"],
        params={
            "interval": "4h",
            "fast": 5,
            "slow": 13,
            "session": {"budget": 150, "profit_target": 2, "loss_threshold": 1},
        },
    ),
    StrategyConfig(name="position_guard", params={"max_age_h": 12, "stop_loss_pct": 4}),
]


class DemoError(Exception):
    """The demo cannot run as asked (e.g. the metrics port is taken)."""


@dataclass
class DemoState:
    decisions: deque[tuple[str, str, str, str, str]] = field(
        default_factory=lambda: deque(maxlen=12)
    )
    ticks: int = 0
    opened: int = 0
    closed: int = 0
    vetoes: int = 0
    errors: int = 0
    signals: dict[str, Any] = field(default_factory=dict)
    """The latest 1h signals: kept across the other intervals' ticks so the table never blanks."""

    def record(self, report: TickReport, snapshot: Any, market_ms: int) -> None:
        """What the live table shows of one finished tick."""
        if snapshot is not None and snapshot.interval == "1h" and snapshot.signals:
            self.signals = dict(snapshot.signals)
        self.ticks += 1
        self.opened += len(report.opened)
        self.closed += len(report.closed)
        self.errors += len(report.errors)
        stamp = datetime.fromtimestamp(market_ms / 1000, UTC).strftime("%m-%d %H:%M")
        for decision, accepted, reason in report.decisions:
            if isinstance(decision, Hold):
                continue
            verdict = "[green]accepted[/]" if accepted else f"[yellow]vetoed: {reason}[/]"
            self.vetoes += 0 if accepted else 1
            self.decisions.append(
                (
                    stamp,
                    decision.strategy,
                    decision_action(decision),
                    getattr(decision, "asset", "") or "",
                    verdict,
                )
            )


@dataclass(frozen=True)
class DemoSummary:
    ticks: int
    opened: int
    closed: int
    still_open: int
    vetoes: int
    realized_pnl: Decimal
    fees: Decimal
    journal: Path
    metrics_url: str | None
    sim_hours: float
    requests_log: Path | None = None
    linger_s: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings(base_url: str, journal: Path, metrics_port: int) -> Settings:
    return Settings(
        base_url=base_url,
        mode="live",
        journal_path=journal,
        metrics_port=metrics_port,
        strategies=[s.model_dump() for s in DEMO_STRATEGIES],
        risk={"max_open_sessions": 4, "cooldown_s": 4 * 3600, "max_total_budget": "600"},
        engine={
            "tick_offset_s": 1.0,
            "lookback_candles": 400,
            "reconcile_every_s": 6 * 3600,
            "stats_every_s": 5,
        },
        http={"rate_limit_per_s": 1000, "rate_limit_burst": 100},
    )


def render(daemon: Daemon, state: DemoState, started: float, duration: float) -> Group:
    assert daemon.parts is not None
    journal = daemon.parts.journal
    market_time = datetime.fromtimestamp(daemon.clock.now_ms() / 1000, UTC)
    header = (
        f"[bold]alura-bot demo[/] — market time {market_time:%Y-%m-%d %H:%M} UTC — "
        f"{time.monotonic() - started:4.0f}/{duration:.0f} s — ticks {state.ticks} — "
        f"opened {state.opened} closed {state.closed} vetoed {state.vetoes}"
    )
    sig = Table(title="signals (1h)", expand=True)
    for col in ("asset", "signal", "strength", "close", "rsi"):
        sig.add_column(col)
    if state.signals:
        for asset, s in sorted(state.signals.items()):
            colour = {"BUY": "green", "SELL": "red"}.get(s.signal.value, "dim")
            sig.add_row(
                asset,
                f"[{colour}]{s.signal.value}[/]",
                f"{s.strength:.2f}",
                f"{s.indicators.get('close', 0):,.4g}",
                f"{s.indicators.get('rsi', 0):.0f}",
            )
    dec = Table(title="recent decisions", expand=True)
    for col in ("time", "strategy", "action", "asset", "verdict"):
        dec.add_column(col)
    for row in reversed(state.decisions):
        dec.add_row(*row)
    sess = Table(title="open sessions", expand=True)
    for col in ("asset", "kind", "strategy", "budget", "opened"):
        sess.add_column(col)
    for r in journal.open_sessions():
        opened = datetime.fromtimestamp(r.opened_at / 1000, UTC)
        sess.add_row(r.asset, r.kind, r.strategy, f"{r.budget}", f"{opened:%m-%d %H:%M}")
    pnl = journal.realized_pnl_total()
    colour = "green" if pnl >= 0 else "red"
    footer = f"realised PnL [{colour}]{pnl:+.4f}[/] USDC — fees {journal.fees_total():.4f} USDC"
    return Group(Panel(header), sig, dec, sess, Panel(footer))


class CountingRequestLog(RequestLog):
    """The simulator's request log that also counts every request by method, path and status.

    The deque keeps only the most recent requests (for `/__sim/requests`); the counts cover the
    whole run in bounded memory, and the demo writes them to `sim-requests.json` so the bot's
    `alura_bot_api_requests_total` can be checked against what the venue actually served.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[tuple[str, str, int]] = Counter()

    def add(self, method: str, path: str, status: int, t: float) -> None:
        super().add(method, path, status, t)
        self.counts[(method, path, status)] += 1

    def write(self, path: Path) -> None:
        rows = [
            {"method": m, "path": p, "status": s, "count": n}
            for (m, p, s), n in sorted(self.counts.items())
        ]
        body = {"total": sum(self.counts.values()), "requests": rows}
        path.write_text(json.dumps(body, indent=1) + "\n")


class DemoDaemon(Daemon):
    """The daemon with a graceful drain: jobs in flight finish before `stop()` closes anything.

    `Daemon.stop()` shuts the scheduler down, which cancels a tick or stats job mid-request. For
    the demo's final numbers (summary, lingering metrics, the simulator's request log) to agree
    exactly, `drain()` first stops new work and waits for the running jobs to return.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jobs: set[asyncio.Task[Any]] = set()

    async def _tracked(self, job: Awaitable[None]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
        try:
            await job
        finally:
            if task is not None:
                self._jobs.discard(task)

    async def tick(self, interval: str) -> None:
        await self._tracked(super().tick(interval))

    async def stats(self) -> None:
        await self._tracked(super().stats())

    async def reconcile(self, why: str = "periodic") -> None:
        await self._tracked(super().reconcile(why))

    async def drain(self) -> None:
        """No new tick, stats or reconcile starts; the running ones finish (bounded)."""
        if self.parts is not None:
            self.parts.engine.stopping = True
        if self.scheduler is not None:
            self.scheduler.pause()
        running = set(self._jobs)
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.engine.shutdown_timeout_s)
            if late:
                log.warning("%d job(s) still running after the drain timeout", len(late))


async def run_demo(
    duration_s: float = 60.0,
    speed: float = 3600.0,
    seed: int = 7,
    workdir: Path | None = None,
    console: Console | None = None,
    live_table: bool = True,
    metrics: Any = None,
    *,
    metrics_port: int | None = None,
    linger_s: float = 0.0,
    on_summary: Callable[[DemoSummary], None] | None = None,
    key: SecretStr | None = None,
) -> DemoSummary:
    """Run the demo; with `metrics`, serve them on 127.0.0.1:`metrics_port` (None: a free port).

    The summary is taken from the journal on disk after the daemon has stopped, so it holds the
    final values. `on_summary` is called with it; then, with `linger_s` > 0, only the metrics
    server stays up (the simulator and the daemon are gone, the gauges hold the final journal
    values) until that many seconds pass or SIGINT/SIGTERM arrives. `key` is the wallet the
    daemon signs in with (default: a new throwaway key held only in memory).
    """
    console = console or Console()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="alura-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    journal_path = workdir / "journal.sqlite"
    requests_path = workdir / "sim-requests.json"
    console.print(f"[dim]building the synthetic market (seed {seed})…[/]")
    sim = build_simulator(SimOptions(speed=speed, seed=seed))
    request_log = sim.requests = CountingRequestLog()  # before SimServer builds the ASGI stack
    state = DemoState()
    finished = False

    def on_tick(report: TickReport) -> None:
        snapshot = daemon.parts.engine.last_snapshot if daemon.parts is not None else None
        state.record(report, snapshot, sim.clock.now_ms())

    metrics_server = None
    try:
        with SimServer(sim) as server:
            port = free_port() if metrics_port is None else metrics_port
            settings = demo_settings(server.url, journal_path, port)
            if key is None:  # a throwaway wallet, unless the caller brings its own
                key = SecretStr("0x" + secrets.token_hex(32))
            register_secret(key.get_secret_value())
            daemon = DemoDaemon(
                settings,
                key=key,
                live=True,
                clock=sim.clock,
                speed=speed,
                metrics=metrics,
                on_tick=on_tick,
            )
            if metrics is not None:
                from bot.metrics import MetricsServer, bind_problem

                # Bound before anything trades: a port in use fails the demo at once.
                try:
                    metrics_server = MetricsServer(metrics, host="127.0.0.1", port=port).start(
                        loop_alive=lambda: finished or daemon.loop_alive(),
                        is_ready=lambda: (
                            (False, "demo over: serving its final metrics only")
                            if finished
                            else daemon.is_ready()
                        ),
                    )
                except OSError as exc:
                    raise DemoError(
                        f"cannot serve metrics on 127.0.0.1:{port}: {bind_problem(exc)} "
                        "(option --metrics-port, the demo's metrics_port): "
                        "pick a free one, 0 for any"
                    ) from exc
            await daemon.start()
            started = time.monotonic()
            try:
                if live_table:
                    with Live(
                        render(daemon, state, started, duration_s),
                        console=console,
                        refresh_per_second=4,
                        transient=False,
                    ) as live:
                        while time.monotonic() - started < duration_s:
                            await asyncio.sleep(0.25)
                            live.update(render(daemon, state, started, duration_s))
                else:
                    await asyncio.sleep(duration_s)
            finally:
                sim_hours = (time.monotonic() - started) * speed / 3600
                await daemon.drain()
                await daemon.stop()
                finished = True
        # The simulator and the daemon are gone; the journal on disk is final.
        request_log.write(requests_path)
        journal = Journal.open(journal_path)
        try:
            if metrics is not None:
                metrics.refresh_from(journal, None, sim.clock.now_ms())
            summary = DemoSummary(
                ticks=state.ticks,
                opened=state.opened,
                closed=state.closed,
                still_open=len(journal.open_sessions()),
                vetoes=state.vetoes,
                realized_pnl=journal.realized_pnl_total(),
                fees=journal.fees_total(),
                journal=journal_path,
                metrics_url=f"{metrics_server.url}/metrics" if metrics_server else None,
                sim_hours=sim_hours,
                requests_log=requests_path,
                linger_s=linger_s if metrics_server else 0.0,
            )
        finally:
            journal.close()
        if on_summary is not None:
            on_summary(summary)
        if metrics_server is not None and linger_s > 0:
            await linger(linger_s)
    finally:
        if metrics_server is not None:
            metrics_server.stop()
    return summary


async def linger(seconds: float) -> bool:
    """Wait `seconds` or until SIGINT/SIGTERM; True when a signal ended the wait."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not Unix
            continue
        installed.append(sig)
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return True


def print_summary(summary: DemoSummary, console: Console) -> None:
    table = Table(title="demo summary", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")  # paths wrap, never cut: the reader copies them
    table.add_row("simulated market time", f"{summary.sim_hours:.0f} h")
    table.add_row("ticks", str(summary.ticks))
    table.add_row(
        "sessions opened / closed / still open",
        f"{summary.opened} / {summary.closed} / {summary.still_open}",
    )
    table.add_row("decisions vetoed by the risk gate", str(summary.vetoes))
    table.add_row("realised PnL", f"{summary.realized_pnl:+.4f} USDC")
    table.add_row("fees", f"{summary.fees:.4f} USDC")
    table.add_row("journal", str(summary.journal))
    if summary.requests_log is not None:
        table.add_row("simulator request log", str(summary.requests_log))
    if summary.metrics_url:
        when = "final values, still served" if summary.linger_s > 0 else "served while it ran"
        table.add_row(f"metrics ({when})", summary.metrics_url)
    console.print(table)
    console.print(
        f"[dim]inspect it: alura-bot journal tail --journal {summary.journal}[/]", soft_wrap=True
    )
    if summary.metrics_url and summary.linger_s > 0:
        console.print(
            f"serving the final metrics at {summary.metrics_url} for {summary.linger_s:g} s "
            "(Ctrl-C or SIGTERM to stop)",
            soft_wrap=True,
        )
