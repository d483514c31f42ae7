"""`alura-bot demo`: the simulator and the daemon in one process, on an accelerated market.

The venue is simulated, so the daemon runs in live mode against it over real HTTP with a
throwaway key that exists only in memory: real signatures, real JWTs, real sessions, no account,
no key file, no network. A live table shows signals, decisions, sessions and PnL.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import tempfile
import time
from collections import deque
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
from bot.settings import Settings, StrategyConfig
from bot.sim.server import SimOptions, SimServer, build_simulator

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
    snap = daemon.parts.engine.last_snapshot
    market_time = datetime.fromtimestamp(daemon.clock.now_ms() / 1000, UTC)
    header = (
        f"[bold]alura-bot demo[/] — market time {market_time:%Y-%m-%d %H:%M} UTC — "
        f"{time.monotonic() - started:4.0f}/{duration:.0f} s — ticks {state.ticks} — "
        f"opened {state.opened} closed {state.closed} vetoed {state.vetoes}"
    )
    sig = Table(title="signals (1h)", expand=True)
    for col in ("asset", "signal", "strength", "close", "rsi"):
        sig.add_column(col)
    if snap is not None and snap.interval == "1h":
        for asset, s in sorted(snap.signals.items()):
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


async def run_demo(
    duration_s: float = 60.0,
    speed: float = 3600.0,
    seed: int = 7,
    workdir: Path | None = None,
    console: Console | None = None,
    live_table: bool = True,
    metrics: Any = None,
) -> DemoSummary:
    console = console or Console()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="alura-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    journal_path = workdir / "journal.sqlite"
    console.print(f"[dim]building the synthetic market (seed {seed})…[/]")
    sim = build_simulator(SimOptions(speed=speed, seed=seed))
    state = DemoState()

    def on_tick(report: TickReport) -> None:
        state.ticks += 1
        state.opened += len(report.opened)
        state.closed += len(report.closed)
        state.errors += len(report.errors)
        stamp = datetime.fromtimestamp(sim.clock.now_ms() / 1000, UTC).strftime("%m-%d %H:%M")
        for decision, accepted, reason in report.decisions:
            if isinstance(decision, Hold):
                continue
            verdict = "[green]accepted[/]" if accepted else f"[yellow]vetoed: {reason}[/]"
            state.vetoes += 0 if accepted else 1
            state.decisions.append(
                (
                    stamp,
                    decision.strategy,
                    decision_action(decision),
                    getattr(decision, "asset", "") or "",
                    verdict,
                )
            )

    with SimServer(sim) as server:
        port = free_port()
        settings = demo_settings(server.url, journal_path, port)
        key = SecretStr("0x" + secrets.token_hex(32))
        metrics_server = None
        if metrics is not None:
            from bot.metrics import MetricsServer

            metrics_server = MetricsServer(metrics, host="127.0.0.1", port=port)
        daemon = Daemon(
            settings,
            key=key,
            live=True,
            clock=sim.clock,
            speed=speed,
            metrics=metrics,
            on_tick=on_tick,
        )
        await daemon.start()
        if metrics_server is not None:
            metrics_server.start(loop_alive=daemon.loop_alive, is_ready=daemon.is_ready)
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
            assert daemon.parts is not None
            journal = daemon.parts.journal
            summary = DemoSummary(
                ticks=state.ticks,
                opened=state.opened,
                closed=state.closed,
                still_open=len(journal.open_sessions()),
                vetoes=state.vetoes,
                realized_pnl=journal.realized_pnl_total(),
                fees=journal.fees_total(),
                journal=journal_path,
                metrics_url=f"http://127.0.0.1:{port}/metrics" if metrics_server else None,
                sim_hours=sim_hours,
            )
            await daemon.stop()
            if metrics_server is not None:
                metrics_server.stop()
    return summary


def print_summary(summary: DemoSummary, console: Console) -> None:
    table = Table(title="demo summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
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
    if summary.metrics_url:
        table.add_row("metrics (served while the demo ran)", summary.metrics_url)
    console.print(table)
    console.print(f"[dim]inspect it: alura-bot journal tail --journal {summary.journal}[/]")
