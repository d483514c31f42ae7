"""The journal: private files, WAL, committed-before-return intents, the intent state machine,
exact sums, migrations, a second process on the same file, and durability under kill -9."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain import Hold, OpenAdvanced, OpenQuick, Side, StrategyDuration
from bot.journal import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Journal,
    JournalError,
    _statements,
)
from tests.conftest import paper_session_row

DAY = 86_400_000
session = paper_session_row


def new_intent(journal: Journal, asset: str = "BTC", kind: str = "open_quick") -> str:
    return journal.create_intent(kind, asset=asset, venue="sessions", request={}, now_ms=1)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "j.sqlite")
    yield j
    j.close()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: any file mode we see is the one the code asked for, not the umask's doing."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], check=True, timeout=60, capture_output=True, text=True
    )


# -- the file -------------------------------------------------------------------------------------


def test_new_file_is_created_private(tmp_path: Path, open_umask: None) -> None:
    with Journal.open(tmp_path / "j.sqlite") as j:
        assert mode_of(j.path) == 0o600


def test_wal_and_shm_files_are_private(tmp_path: Path, open_umask: None) -> None:
    with Journal.open(tmp_path / "j.sqlite") as j:
        new_intent(j)
        for suffix in ("-wal", "-shm"):
            side = Path(str(j.path) + suffix)
            assert side.exists()
            assert mode_of(side) == 0o600, suffix


def test_existing_files_are_made_private(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal.open(path).close()
    path.chmod(0o644)
    wal = Path(str(path) + "-wal")
    wal.touch(mode=0o644)
    wal.chmod(0o644)
    with Journal.open(path):
        assert mode_of(path) == 0o600
        assert mode_of(wal) == 0o600


def test_missing_parent_directory_is_created(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "state" / "deeper" / "j.sqlite") as j:
        assert j.path.exists()


def test_wal_mode_is_on(journal: Journal) -> None:
    assert journal.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _transactions(journal: Journal, write: Callable[[], object]) -> list[str]:
    """The statements `write` sends, as SQLite sees them."""
    seen: list[str] = []
    journal.conn.set_trace_callback(seen.append)
    try:
        write()
    finally:
        journal.conn.set_trace_callback(None)
    return seen


def test_tick_records_commit_without_an_fsync_and_restore_full_sync(journal: Journal) -> None:
    sent = _transactions(journal, lambda: journal.tick_started(1000, "1h"))
    assert sent[0] == "PRAGMA synchronous=NORMAL" and sent[-1] == "PRAGMA synchronous=FULL"
    assert journal.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_an_intent_commits_with_a_full_sync(journal: Journal) -> None:
    sent = _transactions(
        journal,
        lambda: journal.create_intent(
            "open_quick", asset="BTC", venue="sessions", request={}, now_ms=1
        ),
    )
    assert not any("synchronous" in s for s in sent)
    assert journal.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_connection_is_durable_and_waits_for_other_writers(journal: Journal) -> None:
    assert journal.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert journal.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert journal.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_foreign_keys_are_enforced(journal: Journal) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        journal.create_intent(
            "open_quick", asset="BTC", venue="sessions", request={}, decision_id=999, now_ms=1
        )
    assert journal.counts()["intents"] == 0


def test_fresh_journal_passes_integrity_check(journal: Journal) -> None:
    assert journal.integrity_ok()


# -- intents --------------------------------------------------------------------------------------


def test_intent_is_committed_before_return(journal: Journal) -> None:
    iid = journal.create_intent(
        "open_quick", asset="BTC", venue="sessions", request={"budget": "10"}, now_ms=5
    )
    other = sqlite3.connect(journal.path)
    try:
        row = other.execute("SELECT state, request FROM intents WHERE id=?", (iid,)).fetchone()
    finally:
        other.close()
    assert row == ("pending", '{"budget":"10"}')


def test_intent_id_is_a_uuid4_idempotency_key(journal: Journal) -> None:
    iid = new_intent(journal)
    assert uuid.UUID(hex=iid).version == 4 and len(iid) == 32


def test_intent_lifecycle_records_attempt_outcome_and_session(journal: Journal) -> None:
    iid = new_intent(journal)
    journal.mark_sent(iid, 2)
    journal.confirm(iid, {"id": "s1", "budget": Decimal("10.5")}, "s1", 3)
    row = journal.intent(iid)
    assert row is not None
    assert (row.state, row.session_id, row.attempts, row.updated_at) == ("confirmed", "s1", 1, 3)
    assert row.response == {"id": "s1", "budget": "10.5"}


def test_identical_second_confirm_is_a_noop(journal: Journal) -> None:
    iid = new_intent(journal)
    journal.confirm(iid, {"id": "s1"}, "s1", 4)
    journal.confirm(iid, {"id": "s1"}, "s1", 5)
    row = journal.intent(iid)
    assert row is not None and row.updated_at == 4


def test_different_second_confirm_is_an_error(journal: Journal) -> None:
    iid = new_intent(journal)
    journal.confirm(iid, {"id": "s1"}, "s1", 4)
    with pytest.raises(JournalError, match="already confirmed with a different outcome"):
        journal.confirm(iid, {"id": "s2"}, "s2", 5)


def test_failed_intent_cannot_be_confirmed(journal: Journal) -> None:
    iid = new_intent(journal)
    journal.fail(iid, "rejected", 2)
    with pytest.raises(JournalError, match="already failed; cannot become confirmed"):
        journal.confirm(iid, {}, "s1", 3)


def test_confirmed_intent_cannot_fail(journal: Journal) -> None:
    iid = new_intent(journal)
    journal.confirm(iid, {}, "s1", 2)
    with pytest.raises(JournalError, match="already confirmed; cannot become failed"):
        journal.fail(iid, "late", 3)


def test_unknown_intent_is_never_sent_again(journal: Journal) -> None:
    iid = new_intent(journal)
    journal.mark_sent(iid, 2)
    journal.mark_unknown(iid, "timeout", 3)
    with pytest.raises(JournalError, match="already unknown; cannot become sent"):
        journal.mark_sent(iid, 4)


def test_unknown_intent_is_resolved_by_reconciliation(journal: Journal) -> None:
    iid = new_intent(journal)
    journal.mark_sent(iid, 2)
    journal.mark_unknown(iid, "timeout", 3)
    journal.fail(iid, "not found on the venue at reconciliation", 4)
    row = journal.intent(iid)
    assert row is not None and row.state == "failed"


def test_transition_of_a_missing_intent_is_an_error(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no intent"):
        journal.mark_sent("0" * 32, 1)


def test_unresolved_lists_pending_sent_and_unknown_only(journal: Journal) -> None:
    pending, sent, unknown, confirmed, failed = (new_intent(journal) for _ in range(5))
    journal.mark_sent(sent, 2)
    journal.mark_sent(unknown, 2)
    journal.mark_unknown(unknown, "timeout", 3)
    journal.confirm(confirmed, {}, "s", 2)
    journal.fail(failed, "no", 2)
    assert [i.id for i in journal.unresolved_intents()] == [pending, sent, unknown]


# -- decisions and ticks --------------------------------------------------------------------------


def test_decision_params_keep_decimals_as_text_and_enums_by_value(journal: Journal) -> None:
    d = OpenQuick("s", "BTC", Side.LONG, Decimal("100.10"), Decimal(2), Decimal(1), 1, "why")
    did = journal.record_decision(None, 1, d, "accepted", inputs={"rsi": Decimal("29.5")})
    params, inputs, action = journal.conn.execute(
        "SELECT params, inputs, action FROM decisions WHERE id=?", (did,)
    ).fetchone()
    assert '"budget":"100.10"' in params and '"side":1' in params
    assert inputs == '{"rsi":"29.5"}' and action == "open_quick"


def test_decision_string_enums_are_stored_by_value(journal: Journal) -> None:
    from bot.domain import ExecutionStrategy

    d = OpenAdvanced(
        "s",
        "ETH",
        Side.SHORT,
        Decimal(50),
        ExecutionStrategy.DEGEN,
        StrategyDuration.D7,
        False,
        "x",
    )
    did = journal.record_decision(None, 1, d, "vetoed", "cooldown")
    params = journal.conn.execute("SELECT params FROM decisions WHERE id=?", (did,)).fetchone()[0]
    assert '"execution_strategy":"Degen"' in params and '"strategy_duration":"7D"' in params


def test_unknown_verdict_is_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        journal.record_decision(None, 1, Hold("s", "BTC", "x"), "maybe")


def test_tick_start_and_finish_round_trip(journal: Journal) -> None:
    assert journal.last_tick() is None
    tick = journal.tick_started(1_000, "1h")
    journal.tick_finished(tick, 1_250, True, None, 4, 2)
    last = journal.last_tick()
    assert last is not None
    assert (last.id, last.started_at, last.finished_at, last.interval, last.ok) == (
        tick,
        1_000,
        1_250,
        "1h",
        True,
    )
    assert (last.n_signals, last.n_decisions) == (4, 2)


def test_tail_lists_decisions_and_intents_but_not_holds(journal: Journal) -> None:
    journal.record_decision(None, 1, Hold("s", "BTC", "warming"), "hold")
    vetoed = OpenQuick("s", "ETH", Side.LONG, Decimal(10), Decimal(2), Decimal(1), 1, "x")
    journal.record_decision(None, 2, vetoed, "vetoed", "cooldown")
    journal.create_intent("open_quick", asset="BTC", venue="sessions", request={}, now_ms=3)
    assert [e["type"] for e in journal.tail(10)] == ["intent", "decision"]


# -- sessions, positions, sums --------------------------------------------------------------------


def test_session_round_trip_keeps_decimals(journal: Journal) -> None:
    journal.upsert_session(session("s1", budget="123.456789"))
    row = journal.session("s1")
    assert row is not None and row.budget == Decimal("123.456789") and row.raw == {"a": 1}
    assert [s.id for s in journal.open_sessions()] == ["s1"]


def test_closed_session_leaves_open_list(journal: Journal) -> None:
    journal.upsert_session(session("s1"))
    journal.close_session("s1", 5, Decimal("-1.5"), Decimal("0.02"))
    row = journal.session("s1")
    assert row is not None and (row.status, row.realized_pnl, row.fees) == (
        "closed",
        Decimal("-1.5"),
        Decimal("0.02"),
    )
    assert journal.open_sessions() == []


def test_sums_are_exact_decimals(journal: Journal) -> None:
    for i, pnl in enumerate(["0.1", "0.2", "-0.3", "1.000001"]):
        journal.upsert_session(session(f"s{i}"))
        journal.close_session(f"s{i}", 10_000 + i, Decimal(pnl), Decimal("0.01"))
    assert journal.realized_pnl_total() == Decimal("1.000001")
    assert journal.fees_total() == Decimal("0.04")


def test_daily_window_is_half_open(journal: Journal) -> None:
    for i, (closed_at, pnl) in enumerate([(DAY - 1, "-5"), (DAY, "2"), (2 * DAY - 1, "3")]):
        journal.upsert_session(session(f"s{i}"))
        journal.close_session(f"s{i}", closed_at, Decimal(pnl), Decimal(0))
    journal.upsert_session(session("s9"))
    journal.close_session("s9", 2 * DAY, Decimal(-100), Decimal(0))
    assert journal.realized_pnl_between(DAY, 2 * DAY) == Decimal(5)


def test_second_close_changes_nothing(journal: Journal) -> None:
    journal.upsert_session(session("s1"))
    assert journal.close_session("s1", 5, Decimal(1), Decimal(0)) is True
    assert journal.close_session("s1", 6, Decimal(9), Decimal(0)) is False
    assert journal.realized_pnl_total() == Decimal(1)


def test_cooldown_clock_counts_closes_and_failed_opens(journal: Journal) -> None:
    journal.upsert_session(session("s1", "BTC"))
    journal.close_session("s1", 500, Decimal(0), Decimal(0))
    opening = new_intent(journal, "ETH")
    journal.fail(opening, "rejected", 700)
    closing = new_intent(journal, "SOL", kind="close_session")
    journal.fail(closing, "rejected", 800)
    assert journal.last_close_by_asset() == {"BTC": 500, "ETH": 700}


def test_position_amounts_stay_exact_at_any_size(journal: Journal) -> None:
    big = 10**30 + 7
    journal.upsert_position("p1", "Wal1", 0, big, -(10**25), None, {"id": "p1"}, 5)
    journal.upsert_position("p1", "Wal1", 1, big, 3, 4, {"id": "p1"}, 6, closed_by_intent="i1")
    (row,) = journal.positions("Wal1")
    assert int(row["amount"]) == big and row["status"] == 1
    assert (row["close_pnl"], row["closed_by_intent"], row["seen_at"]) == ("4", "i1", 6)


def test_pnl_snapshot_keeps_decimal_text(journal: Journal) -> None:
    journal.record_pnl(1, Decimal("0.10"), Decimal("-0.05"), Decimal("1000.05"), 2)
    row = journal.conn.execute("SELECT * FROM pnl_snapshots").fetchone()
    assert row == (1, "0.10", "-0.05", "1000.05", 2)


def test_api_error_message_is_bounded(journal: Journal) -> None:
    journal.record_api_error(1, "/trading-sessions/{id}", "DELETE", 503, "server", "x" * 2000)
    row = journal.conn.execute(
        "SELECT endpoint, status, length(message) FROM api_errors"
    ).fetchone()
    assert row == ("/trading-sessions/{id}", 503, 500)


def test_counts_cover_the_main_tables(journal: Journal) -> None:
    new_intent(journal)
    journal.tick_started(1, "1h")
    counts = journal.counts()
    assert counts["intents"] == 1 and counts["ticks"] == 1 and counts["sessions"] == 0


# -- control: a second process on the same file ---------------------------------------------------


def test_control_values_round_trip(journal: Journal) -> None:
    assert journal.get_control("note") is None
    journal.set_control("note", "a")
    journal.set_control("note", "b")
    assert journal.get_control("note") == "b"


def test_kill_switch_written_by_another_process_is_seen(journal: Journal) -> None:
    assert journal.paused is False
    new_intent(journal)  # the daemon's connection has read and written: a live, open journal
    code = (
        "import sys\nfrom bot.journal import Journal\n"
        "with Journal.open(sys.argv[1]) as j: j.set_paused(True)"
    )
    run_python(code, str(journal.path))
    assert journal.paused is True
    run_python(code.replace("True", "False"), str(journal.path))
    assert journal.paused is False


def test_simultaneous_first_opens_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite"
    code = (
        "import sys\nfrom bot.journal import Journal\nprint('ready', flush=True)\n"
        "sys.stdin.readline()\nwith Journal.open(sys.argv[1]) as j: print(j.schema_version)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {str(SCHEMA_VERSION)}


# -- schema versions ------------------------------------------------------------------------------


def write_v1_file(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO intents (id, created_at, updated_at, kind, asset, venue, request, state) "
        "VALUES ('i1', 1, 2, 'open_quick', 'BTC', 'sessions', '{\"budget\":\"10\"}', 'unknown')"
    )
    conn.execute(
        "INSERT INTO sessions (id, asset, kind, strategy, status, budget, opened_at, closed_at, "
        "realized_pnl, fees, mode) VALUES ('s1', 'ETH', 'quick', 'x', 'closed', '50', 1, 9, "
        "'-0.1', '0.01', 'live')"
    )
    conn.execute("INSERT INTO control VALUES ('paused', '1')")
    conn.close()


def test_migrates_v1_file_to_current_with_data_preserved(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    write_v1_file(path)
    with Journal.open(path) as j:
        assert j.schema_version == SCHEMA_VERSION
        (intent,) = j.unresolved_intents()
        assert (intent.id, intent.state, intent.request) == ("i1", "unknown", {"budget": "10"})
        assert j.realized_pnl_total() == Decimal("-0.1") and j.paused is True
        indexes = {
            r[0] for r in j.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        assert {"sessions_closed_at", "intents_updated_at"} <= indexes
        assert j.integrity_ok()


def test_migrates_an_empty_v0_file(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).close()
    with Journal.open(path) as j:
        assert j.schema_version == SCHEMA_VERSION
        assert j.counts()["intents"] == 0


def test_reopening_a_current_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as j:
        iid = new_intent(j)
    with Journal.open(path) as j:
        assert j.schema_version == SCHEMA_VERSION and j.intent(iid) is not None


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer than this alura-bot knows"):
        Journal.open(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


def test_failed_migration_keeps_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.sqlite"
    Journal.open(path).close()
    broken = [*MIGRATIONS, "CREATE TABLE extra (x INTEGER); SELECT * FROM no_such_table;"]
    monkeypatch.setattr("bot.journal.MIGRATIONS", broken)
    monkeypatch.setattr("bot.journal.SCHEMA_VERSION", len(broken))
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        Journal.open(path)
    monkeypatch.undo()
    with Journal.open(path) as j:
        assert j.schema_version == SCHEMA_VERSION
        assert (
            j.conn.execute("SELECT name FROM sqlite_master WHERE name='extra'").fetchone() is None
        )


def test_migration_statements_split_only_at_real_ends() -> None:
    script = "INSERT INTO t VALUES ('a;b');\n CREATE TABLE u (x);\n"
    assert _statements(script) == ["INSERT INTO t VALUES ('a;b');", "CREATE TABLE u (x);"]


# -- kill -9 -------------------------------------------------------------------------------------

WRITER = """
import sys
from bot.journal import Journal
j = Journal.open(sys.argv[1])
i = 0
while True:
    iid = j.create_intent("open_quick", asset="BTC", venue="sessions",
                          request={"n": i, "pad": "x" * 8000}, now_ms=i)
    print("created", iid, flush=True)
    j.mark_sent(iid, i)
    j.confirm(iid, {"n": i}, f"s{i}", i)
    print("confirmed", iid, flush=True)
    i += 1
"""


@pytest.mark.parametrize("seed", range(5))
def test_committed_intents_survive_kill_9(tmp_path: Path, seed: int) -> None:
    kill_after = random.Random(seed).randint(1, 1200)
    path = tmp_path / "crash.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged: dict[str, str] = {}
    try:
        for _ in range(kill_after):
            line = proc.stdout.readline()
            assert line, "the writer died before it was killed"
            what, iid = line.split()
            acknowledged[iid] = what
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with Journal.open(path) as j:
        assert j.integrity_ok()
        stored = {i.id: i.state for i in j.intents()}
    assert set(acknowledged) <= set(stored)
    confirmed = {iid for iid, what in acknowledged.items() if what == "confirmed"}
    assert all(stored[iid] == "confirmed" for iid in confirmed)
