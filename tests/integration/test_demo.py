"""The demo's live table, as a terminal shows it (the process tests run it with --no-table)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from bot.demo import run_demo

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


async def test_the_live_table_shows_signals_decisions_sessions_and_pnl(tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, height=60)
    summary = await run_demo(duration_s=4, workdir=tmp_path, console=console, live_table=True)
    text = ANSI.sub("", screen.getvalue())
    last = text[text.rindex("alura-bot demo") :]  # the final frame
    assert "signals (1h)" in last and "recent decisions" in last and "open sessions" in last
    for asset in ("BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"):
        assert re.search(rf"│ {asset}\s+│ (BUY|SELL|NEUTRAL)", last), asset
    # The summary may count a tick that finished after the last frame, never fewer.
    shown = re.search(r"opened (\d+) closed (\d+)", last)
    assert shown and 0 < int(shown.group(1)) <= summary.opened, last
    assert int(shown.group(2)) <= summary.closed
    assert re.search(r"(open_quick|open_advanced)\s+│ \w+\s+│ accepted", last)
    assert re.search(r"realised PnL [-+]\d+\.\d{4} USDC — fees \d+\.\d{4} USDC", last)
