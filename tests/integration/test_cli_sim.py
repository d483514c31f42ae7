"""CLI commands against the real simulator: auth, doctor, sessions open/close, status, pause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.journal import Journal
from tests.conftest import TEST_ADDRESS, TEST_KEY, paper_session_row

runner = CliRunner()


@pytest.fixture
def live_config(sim_server: Any, key_file: Path, tmp_path: Path, clean_env: Path) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(
        f'mode = "live"\nbase_url = "{sim_server.url}"\n'
        f'private_key_file = "{key_file}"\njournal_path = "{tmp_path / "j.sqlite"}"\n'
    )
    return path


def test_auth_prints_address_and_expiry_never_the_token(sim_server: Any, live_config: Path) -> None:
    out = runner.invoke(app, ["auth", "--config", str(live_config)])
    assert out.exit_code == 0, out.output
    assert TEST_ADDRESS in out.output and "token expires:" in out.output
    assert "eyJ" not in out.output and TEST_KEY[2:] not in out.output


def test_doctor_is_green_against_the_simulator(live_config: Path) -> None:
    out = runner.invoke(app, ["doctor", "--config", str(live_config)], env={"COLUMNS": "160"})
    assert out.exit_code == 0, out.output
    assert "fail" not in out.output and out.output.count(" ok ") >= 5


def test_session_open_needs_live_flag_and_yes(live_config: Path) -> None:
    no_live = runner.invoke(
        app,
        [
            "sessions",
            "open",
            "--config",
            str(live_config),
            "--asset",
            "BTC",
            "--budget",
            "50",
            "--yes",
        ],
    )
    assert no_live.exit_code == 2 and "--live" in no_live.output
    no_yes = runner.invoke(
        app,
        [
            "sessions",
            "open",
            "--config",
            str(live_config),
            "--asset",
            "BTC",
            "--budget",
            "50",
            "--live",
        ],
    )
    assert no_yes.exit_code == 2 and "--yes" in no_yes.output


def test_session_open_and_close_are_journaled(
    sim_server: Any, live_config: Path, tmp_path: Path
) -> None:
    opened = runner.invoke(
        app,
        [
            "sessions",
            "open",
            "--config",
            str(live_config),
            "--asset",
            "ETH",
            "--budget",
            "60",
            "--live",
            "--yes",
        ],
    )
    assert opened.exit_code == 0, opened.output
    journal = Journal.open(tmp_path / "j.sqlite")
    (row,) = journal.open_sessions()
    assert row.asset == "ETH" and row.strategy == "(manual)"
    assert sim_server.sim.venue.sessions[row.id].state.is_active
    sim_server.sim.clock.advance(3 * 3_600_000)
    closed = runner.invoke(
        app, ["sessions", "close", row.id, "--config", str(live_config), "--live", "--yes"]
    )
    assert closed.exit_code == 0, closed.output
    assert not sim_server.sim.venue.sessions[row.id].state.is_active
    assert journal.session(row.id).status == "closed"
    assert [i.state for i in journal.intents()] == ["confirmed", "confirmed"]


def test_venue_refusal_fails_the_intent(sim_server: Any, live_config: Path, tmp_path: Path) -> None:
    out = runner.invoke(
        app,
        [
            "sessions",
            "open",
            "--config",
            str(live_config),
            "--asset",
            "SOL",
            "--budget",
            "50000",
            "--live",
            "--yes",
        ],
    )
    assert out.exit_code == 1 and "Insufficient balance" in out.output
    (intent,) = Journal.open(tmp_path / "j.sqlite").intents()
    assert intent.state == "failed"


def test_pause_status_resume(live_config: Path, tmp_path: Path) -> None:
    Journal.open(tmp_path / "j.sqlite").close()
    assert runner.invoke(app, ["pause", "--config", str(live_config)]).exit_code == 0
    status = runner.invoke(app, ["status", "--config", str(live_config)])
    assert "paused: YES" in status.output and "last tick: never" in status.output
    assert runner.invoke(app, ["resume", "--config", str(live_config)]).exit_code == 0
    assert Journal.open(tmp_path / "j.sqlite").paused is False


def test_close_all_refuses_without_yes(live_config: Path, tmp_path: Path) -> None:
    Journal.open(tmp_path / "j.sqlite").close()
    out = runner.invoke(app, ["close-all", "--config", str(live_config)])
    assert out.exit_code == 2 and "--yes" in out.output


def open_eth(live_config: Path) -> Any:
    args = ["sessions", "open", "--config", str(live_config), "--asset", "ETH", "--budget", "60"]
    return runner.invoke(app, [*args, "--live", "--yes"])


def test_a_second_session_on_a_busy_asset_is_refused_before_anything_is_sent(
    sim_server: Any, live_config: Path, tmp_path: Path
) -> None:
    assert open_eth(live_config).exit_code == 0
    sent = len(sim_server.sim.requests.entries)
    again = open_eth(live_config)
    assert again.exit_code == 2 and "already has an open session" in again.output
    assert len(Journal.open(tmp_path / "j.sqlite").intents()) == 1
    posts = [e for e in list(sim_server.sim.requests.entries)[sent:] if e["method"] == "POST"]
    assert posts == []


@pytest.mark.parametrize(
    ("strategies", "says"),
    [
        ("", "position_guard closes the 1 open session(s) on the next tick"),
        (
            '[[strategies]]\nname = "signal_follower"\n',
            "the 1 open session(s) stay open: close them with",
        ),
    ],
    ids=["default strategies (with position_guard)", "no position_guard"],
)
def test_close_all_says_what_will_close_the_sessions(
    sim_server: Any, live_config: Path, tmp_path: Path, strategies: str, says: str
) -> None:
    assert open_eth(live_config).exit_code == 0
    live_config.write_text(live_config.read_text() + strategies)
    out = runner.invoke(app, ["close-all", "--config", str(live_config), "--yes"])
    assert out.exit_code == 0 and says in " ".join(out.output.split()), out.output
    assert Journal.open(tmp_path / "j.sqlite").paused


def test_a_paper_session_in_the_journal_does_not_block_a_live_open(
    sim_server: Any, live_config: Path, tmp_path: Path
) -> None:
    journal = Journal.open(tmp_path / "j.sqlite")
    journal.upsert_session(paper_session_row("paper-1", "ETH", "60"))
    journal.close()
    assert open_eth(live_config).exit_code == 0


def test_status_with_venue_compares_the_journal_with_the_venue(
    sim_server: Any, live_config: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    assert open_eth(live_config).exit_code == 0
    out = runner.invoke(app, ["status", "--config", str(live_config), "--venue"])
    assert out.exit_code == 0, out.output
    assert "venue: 1 active session(s)" in out.output and "venue and journal agree" in out.output
    journal = Journal.open(tmp_path / "j.sqlite")
    journal.upsert_session(replace(paper_session_row("ghost", "BTC"), mode="live"))
    journal.close()
    out = runner.invoke(app, ["status", "--config", str(live_config), "--venue"])
    assert "open in the journal, not active on the venue: ghost" in out.output
    assert "agree" not in out.output


def test_status_without_venue_asks_nothing_of_it(
    sim_server: Any, live_config: Path, tmp_path: Path
) -> None:
    Journal.open(tmp_path / "j.sqlite").close()
    sent = len(sim_server.sim.requests.entries)
    out = runner.invoke(app, ["status", "--config", str(live_config)])
    assert out.exit_code == 0 and "venue:" not in out.output
    assert len(sim_server.sim.requests.entries) == sent


def test_journal_tail_and_sessions_list_show_a_session_opened_by_hand(
    live_config: Path, tmp_path: Path
) -> None:
    import json

    assert open_eth(live_config).exit_code == 0
    (row,) = Journal.open(tmp_path / "j.sqlite").open_sessions()
    listed = runner.invoke(
        app, ["sessions", "list", "--config", str(live_config)], env={"COLUMNS": "200"}
    )
    assert listed.exit_code == 0 and row.id in listed.output and "ETH" in listed.output
    tail = runner.invoke(app, ["journal", "tail", "--journal", str(tmp_path / "j.sqlite")])
    assert tail.exit_code == 0, tail.output
    events = [json.loads(line) for line in tail.output.splitlines()]
    (intent,) = [e for e in events if e["type"] == "intent"]
    assert intent["kind"] == "open_quick" and intent["asset"] == "ETH"
    assert intent["state"] == "confirmed"


async def test_close_all_pauses_and_the_guarded_daemon_closes_every_session(
    make_daemon: Any, sim_server: Any, live_config: Path, tmp_path: Path
) -> None:
    daemon = await make_daemon(
        journal=tmp_path / "j.sqlite",
        strategies=[
            {"name": "always_long", "assets": ["BTC", "ETH"], "params": {"interval": "1h"}},
            {"name": "position_guard"},
        ],
    )
    sim_server.sim.clock.advance(3_600_000)
    await daemon.parts.engine.tick("1h")
    assert len(daemon.parts.journal.open_sessions()) == 2
    out = runner.invoke(app, ["close-all", "--config", str(live_config), "--yes"])
    assert out.exit_code == 0, out.output
    sim_server.sim.clock.advance(3_600_000)
    await daemon.parts.engine.tick("1h")
    assert daemon.parts.journal.open_sessions() == []
    active = [s for s in sim_server.sim.venue.sessions.values() if s.state.is_active]
    assert active == []
    assert daemon.parts.journal.paused
