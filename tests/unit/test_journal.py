"""The journal: private file, WAL, committed-before-return intents, exact sums, migrations,
a second process flipping the kill switch, and durability under kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain import Hold
from bot.journal import SCHEMA_VERSION, Journal, JournalError, SessionRow


def session(sid: str, asset: str = "BTC", status: str = "open") -> SessionRow:
    return SessionRow(
        id=sid,
        asset=asset,
        kind="quick",
        strategy="s",
        status=status,
        budget=Decimal("100.5"),
        opened_at=1000,
        closed_at=None,
        realized_pnl=None,
        fees=None,
        intent_id=None,
        mode="paper",
        raw={"a": 1},
    )


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "j.sqlite")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_and_wal_are_private(journal: Journal) -> None:
    journal.create_intent("open_quick", asset="BTC", venue="sessions", request={}, now_ms=1)
    assert mode_of(journal.path) == 0o600
    wal = Path(str(journal.path) + "-wal")
    assert wal.exists() and mode_of(wal) == 0o600


def test_wal_mode_and_foreign_keys(journal: Journal) -> None:
    assert journal.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_intent_is_committed_before_return(journal: Journal) -> None:
    iid = journal.create_intent(
        "open_quick", asset="BTC", venue="sessions", request={"budget": "10"}, now_ms=5
    )
    other = sqlite3.connect(journal.path)
    assert other.execute("SELECT state FROM intents WHERE id=?", (iid,)).fetchone() == ("pending",)


def test_intent_transitions_and_terminal_states(journal: Journal) -> None:
    iid = journal.create_intent("open_quick", asset="BTC", venue="sessions", request={}, now_ms=1)
    journal.mark_sent(iid, 2)
    journal.mark_unknown(iid, "timeout", 3)
    assert [i.id for i in journal.unresolved_intents()] == [iid]
    journal.confirm(iid, {"id": "s1"}, "s1", 4)
    journal.confirm(iid, {"id": "s1"}, "s1", 5)  # identical repeat: a no-op
    with pytest.raises(JournalError, match="already confirmed"):
        journal.fail(iid, "late", 6)
    row = journal.intent(iid)
    assert row is not None and row.state == "confirmed" and row.session_id == "s1"
    assert journal.unresolved_intents() == []


def test_sums_are_exact_decimals(journal: Journal) -> None:
    for i, pnl in enumerate(["0.1", "0.2", "-0.3", "1.000001"]):
        journal.upsert_session(session(f"s{i}"))
        journal.close_session(f"s{i}", 10_000 + i, Decimal(pnl), Decimal("0.01"))
    assert journal.realized_pnl_total() == Decimal("1.000001")
    assert journal.fees_total() == Decimal("0.04")


def test_daily_window_sum(journal: Journal) -> None:
    day = 86_400_000
    for i, (closed_at, pnl) in enumerate([(day - 1, "-5"), (day, "2"), (2 * day - 1, "3")]):
        journal.upsert_session(session(f"s{i}"))
        journal.close_session(f"s{i}", closed_at, Decimal(pnl), Decimal(0))
    assert journal.realized_pnl_between(day, 2 * day) == Decimal(5)


def test_second_close_changes_nothing(journal: Journal) -> None:
    journal.upsert_session(session("s1"))
    assert journal.close_session("s1", 5, Decimal(1), Decimal(0)) is True
    assert journal.close_session("s1", 6, Decimal(9), Decimal(0)) is False
    assert journal.realized_pnl_total() == Decimal(1)


def test_cooldown_clock_counts_closes_and_failed_opens(journal: Journal) -> None:
    journal.upsert_session(session("s1", "BTC"))
    journal.close_session("s1", 500, Decimal(0), Decimal(0))
    iid = journal.create_intent("open_quick", asset="ETH", venue="sessions", request={}, now_ms=1)
    journal.fail(iid, "rejected", 700)
    assert journal.last_close_by_asset() == {"BTC": 500, "ETH": 700}


def test_decision_params_keep_decimals_as_text(journal: Journal) -> None:
    from bot.domain import OpenQuick, Side

    d = OpenQuick("s", "BTC", Side.LONG, Decimal("100.10"), Decimal(2), Decimal(1), 1, "why")
    did = journal.record_decision(None, 1, d, "accepted")
    params = journal.conn.execute("SELECT params FROM decisions WHERE id=?", (did,)).fetchone()[0]
    assert '"budget":"100.10"' in params and '"side":1' in params


def test_kill_switch_written_by_another_process_is_seen(journal: Journal) -> None:
    assert journal.paused is False
    code = (
        f"from bot.journal import Journal; j = Journal.open({str(journal.path)!r}); "
        "j.set_paused(True); j.close()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert journal.paused is True


def test_migrates_an_empty_v0_file(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).close()
    j = Journal.open(path)
    assert j.schema_version == SCHEMA_VERSION
    assert j.counts()["intents"] == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer than this alura-bot"):
        Journal.open(path)


def test_tail_lists_decisions_and_intents(journal: Journal) -> None:
    journal.record_decision(None, 1, Hold("s", "BTC", "warming"), "hold")
    journal.create_intent("open_quick", asset="BTC", venue="sessions", request={}, now_ms=2)
    events = journal.tail(10)
    assert [e["type"] for e in events] == ["intent"]


WRITER = """
import sys
from bot.journal import Journal
j = Journal.open(sys.argv[1])
i = 0
while True:
    iid = j.create_intent("open_quick", asset="BTC", venue="sessions",
                          request={"n": i, "pad": "x" * 2000}, now_ms=i)
    print(iid, flush=True)
    i += 1
"""


@pytest.mark.parametrize("kill_after", [1, 7, 40, 150, 400])
def test_committed_intents_survive_kill_9(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "crash.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = [proc.stdout.readline().strip() for _ in range(kill_after)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    journal = Journal.open(path)
    assert journal.integrity_ok()
    stored = {i.id for i in journal.intents()}
    assert set(acknowledged) <= stored
