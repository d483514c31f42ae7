"""`alura-bot positions` against the simulator: table, JSON, guarded and journaled close."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.journal import Journal

runner = CliRunner()
WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
OTHER = "11111111111111111111111111111111"


@pytest.fixture
def config(sim_server: Any, tmp_path: Path, clean_env: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(
        f'journal_path = "{tmp_path / "j.sqlite"}"\n[positions]\n'
        f'base_url = "{sim_server.url}"\nwallet_address = "{WALLET}"\n'
    )
    return path


def seed(sim_server: Any, wallet: str, n: int) -> list[int]:
    venue = sim_server.sim.positions
    now = sim_server.sim.clock.now_ms()
    market = next(m for m in venue.markets() if m.settles_at_ms > now + 3_600_000)
    return [
        venue.open_position(
            wallet, market.address, selected_team=1, amount=250_000_000, multiplier_bps=12000
        ).id
        for _ in range(n)
    ]


def test_list_shows_a_readable_table(sim_server: Any, config: Path) -> None:
    seed(sim_server, WALLET, 3)
    out = runner.invoke(app, ["positions", "list", "--config", str(config)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "0.250000000" in out.output and "placed" in out.output and "3 position(s)" in out.output


def test_list_json_is_valid(sim_server: Any, config: Path) -> None:
    ids = seed(sim_server, WALLET, 2)
    out = runner.invoke(app, ["positions", "list", "--json", "--config", str(config)])
    rows = json.loads(out.stdout)
    assert sorted(r["id"] for r in rows) == sorted(ids)


def test_close_without_yes_refuses(sim_server: Any, config: Path) -> None:
    (pid,) = seed(sim_server, WALLET, 1)
    out = runner.invoke(app, ["positions", "close", str(pid), "--config", str(config)])
    assert out.exit_code == 2 and "--yes" in out.output
    assert sim_server.sim.positions.get_position(pid).status == 1


def test_close_of_a_foreign_position_refuses(sim_server: Any, config: Path) -> None:
    sim_server.sim.positions.owner_check = False  # like the real service: only we protect it
    (pid,) = seed(sim_server, OTHER, 1)
    out = runner.invoke(app, ["positions", "close", str(pid), "--yes", "--config", str(config)])
    assert out.exit_code == 2 and "not an open position" in out.output
    assert sim_server.sim.positions.get_position(pid).status == 1


def test_close_with_yes_closes_and_journals(sim_server: Any, config: Path, tmp_path: Path) -> None:
    (pid,) = seed(sim_server, WALLET, 1)
    out = runner.invoke(
        app, ["positions", "close", str(pid), "--price", "0.3", "--yes", "--config", str(config)]
    )
    assert out.exit_code == 0, out.output
    position = sim_server.sim.positions.get_position(pid)
    assert position.status != 1 and position.close_pnl == 50_000_000
    journal = Journal.open(tmp_path / "j.sqlite")
    (intent,) = journal.intents()
    assert intent.kind == "positions_close" and intent.state == "confirmed"
    row = journal.positions(WALLET)[0]
    assert row["closed_by_intent"] == intent.id
    assert row["first_market_status"] is not None, "the CLI keeps the market status too"


def test_stats(sim_server: Any, config: Path) -> None:
    seed(sim_server, WALLET, 2)
    out = runner.invoke(app, ["positions", "stats", "--config", str(config)])
    assert out.exit_code == 0 and "positions: 2 (2 open" in out.output


def test_missing_positions_config_exits_2(tmp_path: Path, clean_env: Path) -> None:
    out = runner.invoke(app, ["positions", "list"])
    assert out.exit_code == 2 and "positions.base_url" in out.output
