"""`positions` sub-app through typer's CliRunner, against the real positions simulator (uvicorn).

Checks what an operator sees (table, JSON, one-line errors, exit codes) and what the safety
rules demand: nothing changes without --yes, a foreign or closed position is never closed even
when the server would allow it, and every change is journaled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import Result
from starlette.applications import Starlette
from typer.testing import CliRunner

from bot.cli_positions import positions_app
from bot.journal import Journal
from bot.sim.clock import SimClock
from bot.sim.positions_api import positions_routes
from bot.sim.positions_venue import MarketStatus, PositionStatus, PositionsVenue, b58encode

START_MS = 1_728_554_400_000  # 2024-10-10T10:00:00Z
WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
OTHER = b58encode(hashlib.sha256(b"another wallet").digest())
UNKNOWN = b58encode(hashlib.sha256(b"nobody").digest())

app = typer.Typer()


@app.callback()
def _root() -> None:
    """A tiny host app, as `alura-bot` will host the sub-app."""


app.add_typer(positions_app, name="positions")
runner = CliRunner()


@pytest.fixture(autouse=True)
def quiet_simulator() -> Iterator[None]:
    """The simulator shares this process: its own error logs are not the CLI's output."""
    sim = logging.getLogger("bot.sim")
    level = sim.level
    sim.setLevel(logging.CRITICAL)
    yield
    sim.setLevel(level)


@pytest.fixture
def venue() -> PositionsVenue:
    return PositionsVenue(SimClock.stepped(START_MS), 7)


@pytest.fixture
def base_url(venue: PositionsVenue, serve_asgi: Callable[[Any], str]) -> str:
    return serve_asgi(Starlette(routes=positions_routes(venue)))


def write_config(path: Path, base_url: str, *, wallet: str = WALLET, layer: str = "proxy") -> Path:
    path.write_text(
        f'journal_path = "{path.parent / "journal.sqlite"}"\n'
        "[http]\nrate_limit_per_s = 10000\nrate_limit_burst = 10000\nretry_attempts = 1\n"
        f'[positions]\nbase_url = "{base_url}"\nwallet_address = "{wallet}"\nlayer = "{layer}"\n'
    )
    return path


@pytest.fixture(params=["proxy", "backend"])
def config(request: pytest.FixtureRequest, base_url: str, clean_env: Path) -> Path:
    return write_config(clean_env / f"{request.param}.toml", base_url, layer=request.param)


def cli(*args: str) -> Result:
    return runner.invoke(app, ["positions", *args])


def market(venue: PositionsVenue, nth: int = 0) -> Any:
    now = venue.clock.now_ms()
    return [
        m
        for m in venue.markets()
        if m.status == MarketStatus.OPEN and m.settles_at_ms > now + 3_600_000
    ][nth]


def seed(
    venue: PositionsVenue, n: int, wallet: str = WALLET, amount: int = 250_000_000
) -> list[int]:
    m = market(venue)
    return [
        venue.open_position(wallet, m.address, 1, amount, 12_000, odds_home_bps=10_500).id
        for _ in range(n)
    ]


def journal_of(config: Path) -> Journal:
    return Journal.open(config.parent / "journal.sqlite")


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- list and stats


def test_list_shows_a_readable_table(config: Path, venue: PositionsVenue) -> None:
    ids = seed(venue, 3)
    venue.close_position(ids[0], wallet_address=WALLET, close_price=300_000_000)
    m = market(venue)
    result = cli("list", "--config", str(config))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("id", "market", "team", "amount", "odds", "status", "pnl", "opened (UTC)"):
        assert header in out
    for pid in ids:
        assert str(pid) in out
    assert f"#{m.fixture_id} {m.home_team} v {m.away_team}" in out
    assert f"1 {m.home_team}" in out  # the chosen team by name
    assert "0.250000000" in out and "1.05x" in out  # display units; the chosen side's odds
    assert out.count("placed") == 2 and "cancelled" in out  # closing marks it cancelled
    assert "+0.049000000" in out  # pnl = (0.3 - 0.25) - fee 0.001
    assert "2024-10-10 10:00" in out and "3 position(s)" in out
    lines = out.splitlines()
    assert lines.index(next(x for x in lines if str(ids[2]) in x)) < lines.index(
        next(x for x in lines if str(ids[0]) in x)
    )  # newest first


def test_list_json_is_valid_json_with_exact_integers(config: Path, venue: PositionsVenue) -> None:
    big = 2**62 + 7
    ids = seed(venue, 2, amount=big)
    result = cli("list", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)  # one document, nothing else on stdout
    assert [r["id"] for r in rows] == ids[::-1]
    assert all(r["amount"] == big and r["wallet_address"] == WALLET for r in rows)
    assert rows[0]["status"] == 1 and rows[0]["created_at"].startswith("2024-10-10T10:00:00")


def test_list_filters(config: Path, venue: PositionsVenue) -> None:
    ids = seed(venue, 3)
    venue.close_position(ids[1], wallet_address=WALLET)
    other = venue.open_position(WALLET, market(venue, 1).address, 2, 5, 10_000).id

    def listed(*args: str) -> list[int]:
        result = cli("list", "--json", "--config", str(config), *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.stdout)]

    assert listed("--status", "open") == [other, ids[2], ids[0]]
    assert listed("--status", "closed") == [ids[1]]
    assert listed("--status", "all") == [other, *ids[::-1]]
    assert listed("--fixture", str(market(venue).id)) == ids[::-1]
    assert listed("--fixture", market(venue, 1).address) == [other]
    assert_one_line_error(cli("list", "--status", "opne", "--config", str(config)), 2, "--status")


def test_unknown_wallet_lists_nothing_on_both_layers(
    base_url: str, clean_env: Path, venue: PositionsVenue
) -> None:
    seed(venue, 1, wallet=OTHER)
    for layer in ("proxy", "backend"):
        config = write_config(clean_env / f"{layer}.toml", base_url, wallet=UNKNOWN, layer=layer)
        result = cli("list", "--config", str(config))
        assert result.exit_code == 0 and "0 position(s)" in result.stdout, result.output
        stats = cli("stats", "--config", str(config))
        assert stats.exit_code == 0 and "positions: 0 (0 open" in stats.stdout, stats.output


def test_stats(config: Path, venue: PositionsVenue) -> None:
    ids = seed(venue, 2)
    venue.close_position(ids[0], wallet_address=WALLET)
    result = cli("stats", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "positions: 2 (1 open, 1 closed; 0 won, 0 lost)" in result.stdout
    assert "volume 0.500000000" in result.stdout and "PnL -0.001000000" in result.stdout
    data = json.loads(cli("stats", "--json", "--config", str(config)).stdout)
    assert data["total_volume"] == 500_000_000 and data["open_positions"] == 1


# --------------------------------------------------------------------------- open


def test_open_without_yes_says_what_it_would_do(config: Path, venue: PositionsVenue) -> None:
    m = market(venue)
    result = cli(
        "open", "--fixture", m.fixture_id, "--team", "2", "--amount", "0.5",
        "--multiplier-bps", "12000", "--odds-away-bps", "20000", "--config", str(config),
    )  # fmt: skip
    assert_one_line_error(result, 2, "would open 0.500000000 on team 2", "2x", "--yes", WALLET)
    assert "expected payout 1.000000000" in result.stderr
    assert venue.wallets() == [] and journal_of(config).intents() == []


def test_open_with_yes_opens_and_journals(config: Path, venue: PositionsVenue) -> None:
    m = market(venue)
    result = cli(
        "open", "--fixture", str(m.id), "--team", "1", "--amount", "1.25",
        "--multiplier-bps", "15000", "--yes", "--config", str(config),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (p,) = venue.list_positions(WALLET).positions
    assert (p.amount, p.selected_team, p.multiplier_bps, p.market_address) == (
        1_250_000_000,
        1,
        15_000,
        m.address,
    )
    assert f"opened position {p.id} (placed)" in result.stdout
    journal = journal_of(config)
    (intent,) = journal.intents()
    assert (intent.kind, intent.state, intent.venue, intent.asset) == (
        "positions_open",
        "confirmed",
        "positions",
        None,
    )
    assert intent.request["amount"] == 1_250_000_000 and intent.request["wallet_address"] == WALLET
    assert journal.positions(WALLET)[0]["id"] == str(p.id)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--amount", "0.0000000001"], "decimal places"),
        (["--amount", "0"], "--amount must be greater than 0"),
        (["--amount", "lots"], "--amount"),
        (["--team", "3"], "selected_team must be 1 or 2"),
        (["--multiplier-bps", "0"], "multiplier_bps"),
    ],
)
def test_open_refuses_bad_input(
    config: Path, venue: PositionsVenue, args: list[str], needle: str
) -> None:
    base = {"--fixture": "1", "--team": "1", "--amount": "1", "--multiplier-bps": "12000"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    assert_one_line_error(cli("open", *flat, "--yes", "--config", str(config)), 2, needle)
    assert venue.wallets() == []


def test_open_whose_answer_is_lost_is_journaled_unknown(
    config: Path, venue: PositionsVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = venue.open_position

    def applied_then_crashed(*args: Any, **kw: Any) -> Any:
        real(*args, **kw)
        raise RuntimeError("crash after commit")

    monkeypatch.setattr(venue, "open_position", applied_then_crashed)
    result = cli(
        "open", "--fixture", str(market(venue).id), "--team", "1", "--amount", "1",
        "--multiplier-bps", "12000", "--yes", "--config", str(config),
    )  # fmt: skip
    assert_one_line_error(result, 1, "outcome unknown", "positions list")
    (intent,) = journal_of(config).intents()
    assert intent.state == "unknown"
    assert len(venue.list_positions(WALLET).positions) == 1  # it did happen: never re-sent


# --------------------------------------------------------------------------- close


def test_close_without_yes_refuses(config: Path, venue: PositionsVenue) -> None:
    (pid,) = seed(venue, 1)
    result = cli("close", str(pid), "--price", "0.3", "--config", str(config))
    assert_one_line_error(result, 2, f"would close position {pid} of {WALLET} at 0.3", "--yes")
    assert venue.get_position(pid).status == PositionStatus.PLACED
    assert journal_of(config).intents() == []


def test_close_of_a_foreign_position_refuses(config: Path, venue: PositionsVenue) -> None:
    venue.owner_check = False  # like the real service: it would close anyone's position
    (pid,) = seed(venue, 1, wallet=OTHER)
    result = cli("close", str(pid), "--yes", "--config", str(config))
    assert_one_line_error(result, 2, f"position {pid} is not an open position of {WALLET}")
    assert venue.get_position(pid).status == PositionStatus.PLACED
    assert [row.action for row in venue.audit_log(pid)] == ["open"]
    assert journal_of(config).intents() == []  # refused before any intent


def test_close_of_a_closed_position_refuses(config: Path, venue: PositionsVenue) -> None:
    (pid,) = seed(venue, 1)
    venue.close_position(pid, wallet_address=WALLET)
    assert_one_line_error(cli("close", str(pid), "--yes", "--config", str(config)), 2, "refused")
    assert len(venue.audit_log(pid)) == 2  # open, the one close


def test_close_with_yes_closes_and_journals(config: Path, venue: PositionsVenue) -> None:
    (pid,) = seed(venue, 1)
    result = cli("close", str(pid), "--price", "0.3", "--yes", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert f"closed position {pid} (cancelled)" in result.stdout
    position = venue.get_position(pid)
    assert position.status != PositionStatus.PLACED and position.close_pnl == 50_000_000
    assert venue.audit_log(pid)[-1].actor == WALLET
    journal = journal_of(config)
    (intent,) = journal.intents()
    assert (intent.kind, intent.state) == ("positions_close", "confirmed")
    assert intent.request["position_id"] == pid and intent.request["close_price"] == 300_000_000
    assert intent.request["listed"]["wallet_address"] == WALLET  # what was checked
    assert journal.positions(WALLET)[0]["closed_by_intent"] == intent.id


def test_close_via_patch(base_url: str, clean_env: Path, venue: PositionsVenue) -> None:
    config = write_config(clean_env / "p.toml", base_url)
    (pid,) = seed(venue, 1)
    result = cli("close", str(pid), "--via", "patch", "--yes", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert venue.get_position(pid).close_pnl == 0
    assert_one_line_error(
        cli("close", str(pid), "--via", "put", "--config", str(config)), 2, "--via"
    )


def test_close_refused_by_the_service_is_journaled_failed(
    config: Path, venue: PositionsVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pid,) = seed(venue, 1)
    real = venue.close_position

    def raced(position_id: int, **kw: Any) -> Any:
        real(position_id, wallet_address=WALLET)  # someone else closed it first
        return real(position_id, **kw)

    monkeypatch.setattr(venue, "close_position", raced)
    result = cli("close", str(pid), "--yes", "--config", str(config))
    assert_one_line_error(result, 1, "CONFLICT")
    (intent,) = journal_of(config).intents()
    assert intent.state == "failed" and "CONFLICT" in (intent.error or "")


# --------------------------------------------------------------------------- errors


def test_unreachable_service_is_one_line_exit_1(clean_env: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    config = write_config(clean_env / "down.toml", f"http://127.0.0.1:{port}")
    assert_one_line_error(cli("list", "--config", str(config)), 1, "positions service:")
    assert_one_line_error(cli("stats", "--config", str(config)), 1, "could not connect")


def test_missing_or_bad_positions_config_exits_2(clean_env: Path, base_url: str) -> None:
    assert_one_line_error(cli("list"), 2, "config error", "positions.base_url")
    bad = write_config(clean_env / "bad.toml", base_url, wallet="0xnot-solana")
    result = cli("stats", "--config", str(bad))
    assert result.exit_code == 2 and "positions.wallet_address" in result.stderr
    assert "Traceback" not in result.output
    assert_one_line_error(cli("list", "--config", str(clean_env / "nope.toml")), 2, "nope.toml")
