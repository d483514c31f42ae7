"""The demo's live table as a terminal shows it, over ticks driven on the simulator's stepped
clock (the process tests run the demo itself with --no-table)."""

from __future__ import annotations

import re
import time
from typing import Any

from rich.console import Console

from bot.demo import DemoState, render

HOUR = 3_600_000
ASSETS = ["BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"]


def screen(daemon: Any, state: DemoState) -> str:
    console = Console(width=120, record=True, force_terminal=False)
    console.print(render(daemon, state, time.monotonic(), 60))
    return console.export_text()


async def test_the_live_table_shows_signals_decisions_sessions_and_pnl(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon(
        strategies=[
            {
                "name": "always_long",
                "assets": ASSETS,
                "params": {"interval": "1h", "exit_every": 3},
            }
        ],
        risk={"max_open_sessions": 2},
    )
    state = DemoState()
    for _ in range(4):
        sim_server.sim.clock.advance(HOUR)
        report = await daemon.parts.engine.tick("1h")
        state.record(report, daemon.parts.engine.last_snapshot, sim_server.sim.clock.now_ms())
    text = screen(daemon, state)
    assert "signals (1h)" in text and "recent decisions" in text and "open sessions" in text
    for asset in ASSETS:
        assert re.search(rf"│ {asset}\s+│ (BUY|SELL|NEUTRAL)\s+│ \d\.\d\d", text), asset
    journal = daemon.parts.journal
    opened = len(journal.sessions())
    closed = len([s for s in journal.sessions() if s.status == "closed"])
    assert opened > 0 and closed > 0
    assert f"ticks 4 — opened {opened} closed {closed} vetoed {state.vetoes}" in text
    assert state.vetoes > 0 and "vetoed: max_open_sessions" in text
    assert len(state.decisions) == 12  # the newest twelve, each shown as the journal holds it
    for stamp, strategy, action, asset, verdict in state.decisions:
        plain = re.sub(r"\[/?[a-z]*\]", "", verdict)
        assert re.search(rf"{stamp}\s+│ {strategy}\s+│ {action}\s+│ {asset}\s+│ {plain}", text)
    accepted = journal.conn.execute(
        "SELECT COUNT(*) FROM decisions WHERE verdict='accepted' AND action='open_quick'"
    )
    assert accepted.fetchone()[0] == opened  # every session shown came from an accepted open
    for row in journal.open_sessions():
        assert re.search(rf"│ {row.asset}\s+│ quick\s+│ always_long", text)
    pnl = journal.realized_pnl_total()
    assert f"realised PnL {pnl:+.4f} USDC — fees {journal.fees_total():.4f} USDC" in text


async def test_the_signals_table_keeps_the_last_hour_between_other_ticks(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon()
    state = DemoState()
    sim_server.sim.clock.advance(HOUR)
    report = await daemon.parts.engine.tick("1h")
    state.record(report, daemon.parts.engine.last_snapshot, sim_server.sim.clock.now_ms())
    hourly = dict(state.signals)
    state.record(report, None, sim_server.sim.clock.now_ms())  # a tick of another interval
    assert hourly and state.signals == hourly
    assert "│ BTC" in screen(daemon, state)
