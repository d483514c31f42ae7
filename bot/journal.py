"""The journal: one SQLite file holding every tick, decision, intent, session and outcome.

The only module with SQL in the daemon. WAL, so every committed write survives `kill -9`; money
state (intents, sessions, positions, controls) commits with `synchronous=FULL`, so it survives a
power loss too. Records of what happened (ticks, decisions, PnL snapshots, API errors) commit
with `synchronous=NORMAL`, without an fsync each: a power loss can cost the last few of them,
never their order, since the next FULL commit syncs every earlier frame of the WAL with it (a
decision is always durable before the intent it led to is). The file is created mode 0600
before SQLite touches it, and SQLite gives its -wal/-shm files the same mode. An intent is
committed before the request it stands for is sent (safety rule 2). Money is stored as Decimal
text and summed in Python, never as REAL. The schema version lives in `PRAGMA user_version`,
with forward migrations applied in order on open; a file from a newer alura-bot is refused
rather than guessed at.

Two processes use the file at once (the daemon, and the CLI's `pause`/`resume`/`sessions`), so
every write is a short `BEGIN IMMEDIATE` transaction and readers never block writers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlite_utils

from bot import failpoints
from bot.domain import Decision, decision_action

if TYPE_CHECKING:
    from bot.api.positions import Position

# Forward migrations, in order: MIGRATIONS[n] takes a file from version n to n + 1. Never edit a
# released entry (files in the field already ran it); append a new one instead.
MIGRATIONS: list[str] = [
    # v1: the tables
    """
    CREATE TABLE ticks (
        id INTEGER PRIMARY KEY, started_at INTEGER NOT NULL, finished_at INTEGER,
        interval TEXT NOT NULL, ok INTEGER, error TEXT, n_signals INTEGER, n_decisions INTEGER);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY, tick_id INTEGER REFERENCES ticks(id), ts INTEGER NOT NULL,
        strategy TEXT NOT NULL, asset TEXT, action TEXT NOT NULL, params TEXT NOT NULL,
        inputs TEXT, reason TEXT NOT NULL, verdict TEXT NOT NULL, veto_reason TEXT);
    CREATE TABLE intents (
        id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        kind TEXT NOT NULL, asset TEXT, venue TEXT NOT NULL, request TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','sent','confirmed','failed','unknown')),
        response TEXT, error TEXT, decision_id INTEGER REFERENCES decisions(id),
        session_id TEXT, attempts INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX intents_state ON intents(state);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY, asset TEXT NOT NULL, kind TEXT NOT NULL, strategy TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open','closed')), budget TEXT NOT NULL,
        opened_at INTEGER NOT NULL, closed_at INTEGER, realized_pnl TEXT, fees TEXT,
        intent_id TEXT REFERENCES intents(id), mode TEXT NOT NULL, raw TEXT, trade_id TEXT);
    CREATE INDEX sessions_status ON sessions(status);
    CREATE TABLE positions (
        id TEXT PRIMARY KEY, wallet TEXT NOT NULL, status INTEGER NOT NULL, amount TEXT NOT NULL,
        pnl TEXT, close_pnl TEXT, raw TEXT, seen_at INTEGER NOT NULL, closed_by_intent TEXT);
    CREATE TABLE pnl_snapshots (
        ts INTEGER NOT NULL, realized TEXT NOT NULL, unrealized TEXT NOT NULL,
        equity TEXT NOT NULL, open_sessions INTEGER NOT NULL);
    CREATE TABLE api_errors (
        ts INTEGER NOT NULL, endpoint TEXT NOT NULL, method TEXT NOT NULL, status INTEGER,
        kind TEXT NOT NULL, message TEXT);
    CREATE TABLE control (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # v2: the journal only grows, so the daily-loss sum, `journal tail` and time-range reads
    # must not scan whole tables after months of ticks
    """
    CREATE INDEX sessions_closed_at ON sessions(closed_at) WHERE closed_at IS NOT NULL;
    CREATE INDEX intents_updated_at ON intents(updated_at);
    CREATE INDEX decisions_tick ON decisions(tick_id);
    CREATE INDEX pnl_snapshots_ts ON pnl_snapshots(ts);
    CREATE INDEX api_errors_ts ON api_errors(ts);
    """,
    # v3: the market status a user position was first seen with, so position_guard closes on a
    # change of it (a position first seen on a market that is already live is not a change)
    """
    ALTER TABLE positions ADD COLUMN first_market_status INTEGER;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
BUSY_TIMEOUT_MS = 10_000

TERMINAL = ("confirmed", "failed")
UNRESOLVED = ("pending", "sent", "unknown")
VERDICTS = ("accepted", "vetoed", "hold")
# An unknown outcome is only ever resolved by reconciliation (confirmed or failed), never re-sent:
# the request may have taken effect (safety rule 2). `sent -> sent` is an explicit retry of a
# request known not to have been processed, counted in `attempts`.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"sent", "confirmed", "failed", "unknown"}),
    "sent": frozenset({"sent", "confirmed", "failed", "unknown"}),
    "unknown": frozenset({"unknown", "confirmed", "failed"}),
    "confirmed": frozenset(),
    "failed": frozenset(),
}


class JournalError(Exception):
    """A journal that cannot be used as is (newer schema, illegal state change, unknown id)."""


class JournalBusy(JournalError):
    """Another running alura-bot owns this journal (two writers deciding at once would race)."""


class OwnerLock:
    """An exclusive `flock` on `<journal>.lock` for as long as a daemon (or a command that must
    not run beside one, such as `reconcile`) uses the journal. The kernel drops it when the
    process dies, `kill -9` included, so a crash never leaves a stale lock."""

    def __init__(self, journal_path: str | Path) -> None:
        self.path = Path(str(journal_path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> OwnerLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JournalBusy(
                f"{self.path.with_suffix('')} is in use by another alura-bot (pid {holder}); "
                "stop it first, or give this one its own journal_path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _json(value: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, Enum):
            return o.value
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return json.dumps(value, default=default, separators=(",", ":"), sort_keys=True)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _statements(script: str) -> list[str]:
    """Split a migration into statements at `;` that really end one (not inside a string)."""
    out: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \n\t;"):
        raise JournalError(f"incomplete SQL statement in migration: {buf.strip()[:80]!r}")
    return out


@dataclass(frozen=True)
class TickRow:
    id: int
    started_at: int
    finished_at: int | None
    interval: str
    ok: bool | None
    error: str | None
    n_signals: int | None = None
    n_decisions: int | None = None


@dataclass(frozen=True)
class DecisionRow:
    id: int
    tick_id: int | None
    ts: int
    strategy: str
    asset: str | None
    action: str
    verdict: str
    veto_reason: str | None
    reason: str


@dataclass(frozen=True)
class IntentRow:
    id: str
    created_at: int
    updated_at: int
    kind: str
    asset: str | None
    venue: str
    request: dict[str, Any]
    state: str
    response: dict[str, Any] | None
    error: str | None
    decision_id: int | None
    session_id: str | None
    attempts: int = 0


@dataclass(frozen=True)
class SessionRow:
    id: str
    asset: str
    kind: str
    strategy: str
    status: str
    budget: Decimal
    opened_at: int
    closed_at: int | None
    realized_pnl: Decimal | None
    fees: Decimal | None
    intent_id: str | None
    mode: str
    raw: dict[str, Any] | None
    trade_id: str | None = None


def _make_private(path: Path) -> None:
    """Create the file 0600 before SQLite opens it; SQLite then creates -wal/-shm with its mode."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.chmod(side, 0o600)


def _enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch to WAL, retrying while another process holds the file: SQLite answers BUSY to a
    journal-mode change at once, without its busy handler (two first opens of a new file)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.002
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    if str(mode).lower() != "wal":
        raise JournalError(f"{path}: SQLite refused WAL mode (got {mode!r})")


class Journal:
    """Every write is its own committed transaction; reads are plain queries."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def open(cls, path: str | Path) -> Journal:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _make_private(path)
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _enable_wal(conn, path)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            journal = cls(conn, path)
            journal._migrate()
        except BaseException:
            conn.close()
            raise
        return journal

    def _migrate(self) -> None:
        """Apply each missing step in its own transaction, re-reading the version under the
        write lock, so two processes opening an old file at once migrate it exactly once."""
        while True:
            with self._tx():
                version = self.schema_version
                if version > SCHEMA_VERSION:
                    raise JournalError(
                        f"{self.path} has schema version {version}, newer than this alura-bot "
                        f"knows ({SCHEMA_VERSION}); upgrade alura-bot instead of downgrading "
                        "the journal"
                    )
                if version == SCHEMA_VERSION:
                    return
                for statement in _statements(MIGRATIONS[version]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")

    def _tx(self, durable: bool = True) -> _Tx:
        return _Tx(self.conn, durable)

    def atomic(self) -> _Tx:
        """One transaction around several journal writes (nested writes join it)."""
        return _Tx(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_ok(self) -> bool:
        return bool(self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- ticks and decisions ------------------------------------------------------------------

    def tick_started(self, ts: int, interval: str) -> int:
        with self._tx(durable=False):
            cur = self.conn.execute(
                "INSERT INTO ticks (started_at, interval) VALUES (?, ?)", (ts, interval)
            )
        return int(cur.lastrowid or 0)

    def tick_finished(
        self, tick_id: int, ts: int, ok: bool, error: str | None, n_signals: int, n_decisions: int
    ) -> None:
        with self._tx(durable=False):
            self.conn.execute(
                "UPDATE ticks SET finished_at=?, ok=?, error=?, n_signals=?, n_decisions=? "
                "WHERE id=?",
                (ts, int(ok), error, n_signals, n_decisions, tick_id),
            )

    def last_tick(self) -> TickRow | None:
        row = self.conn.execute(
            "SELECT id, started_at, finished_at, interval, ok, error, n_signals, n_decisions "
            "FROM ticks ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        ok = None if row[4] is None else bool(row[4])
        return TickRow(row[0], row[1], row[2], row[3], ok, row[5], row[6], row[7])

    def record_decision(
        self,
        tick_id: int | None,
        ts: int,
        decision: Decision,
        verdict: str,
        veto_reason: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> int:
        with self._tx(durable=False):
            return self._insert_decision(tick_id, ts, decision, verdict, veto_reason, inputs)

    def _insert_decision(
        self,
        tick_id: int | None,
        ts: int,
        decision: Decision,
        verdict: str,
        veto_reason: str | None,
        inputs: dict[str, Any] | None,
    ) -> int:
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        params = {
            f.name: getattr(decision, f.name)
            for f in dataclasses.fields(decision)
            if f.name not in ("strategy", "reason")
        }
        cur = self.conn.execute(
            "INSERT INTO decisions (tick_id, ts, strategy, asset, action, params, inputs, "
            "reason, verdict, veto_reason) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                tick_id,
                ts,
                decision.strategy,
                getattr(decision, "asset", None),
                decision_action(decision),
                _json(params),
                _json(inputs) if inputs else None,
                decision.reason,
                verdict,
                veto_reason,
            ),
        )
        return int(cur.lastrowid or 0)

    def record_decisions(
        self,
        tick_id: int | None,
        ts: int,
        rows: list[tuple[Decision, str, str | None, dict[str, Any] | None]],
    ) -> list[int]:
        """All of a tick's decisions in one transaction (one fsync), ids in the given order."""
        ids: list[int] = []
        if not rows:
            return ids
        with self._tx(durable=False):
            for decision, verdict, veto_reason, inputs in rows:
                ids.append(
                    self._insert_decision(tick_id, ts, decision, verdict, veto_reason, inputs)
                )
        return ids

    def decision(self, decision_id: int) -> DecisionRow | None:
        row = self.conn.execute(
            "SELECT id, tick_id, ts, strategy, asset, action, verdict, veto_reason, reason "
            "FROM decisions WHERE id=?",
            (decision_id,),
        ).fetchone()
        return None if row is None else DecisionRow(*row)

    # -- intents ------------------------------------------------------------------------------

    def create_intent(
        self,
        kind: str,
        *,
        asset: str | None,
        venue: str,
        request: dict[str, Any],
        decision_id: int | None = None,
        now_ms: int,
    ) -> str:
        """Commit the intent (state pending) and return its idempotency key: once this returns,
        the intent is on disk, so the request may be sent."""
        intent_id = uuid.uuid4().hex
        with self._tx():
            self.conn.execute(
                "INSERT INTO intents (id, created_at, updated_at, kind, asset, venue, request, "
                "state, decision_id) VALUES (?,?,?,?,?,?,?,'pending',?)",
                (intent_id, now_ms, now_ms, kind, asset, venue, _json(request), decision_id),
            )
        return intent_id

    def _transition(
        self,
        intent_id: str,
        state: str,
        now_ms: int,
        *,
        response: dict[str, Any] | None = None,
        error: str | None = None,
        session_id: str | None = None,
    ) -> None:
        response_json = None if response is None else _json(response)
        with self._tx():
            row = self.conn.execute(
                "SELECT state, response, error, session_id FROM intents WHERE id=?", (intent_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"no intent {intent_id}")
            current = row[0]
            if current in TERMINAL and state == current:
                same = (
                    (row[1], row[3]) == (response_json, session_id)
                    if state == "confirmed"
                    else row[2] == error
                )
                if same:
                    return
                raise JournalError(
                    f"intent {intent_id} is already {current} with a different outcome"
                )
            if state not in TRANSITIONS[current]:
                raise JournalError(
                    f"intent {intent_id} is already {current}; cannot become {state}"
                )
            self.conn.execute(
                "UPDATE intents SET state=?, updated_at=?, response=COALESCE(?, response), "
                "error=COALESCE(?, error), session_id=COALESCE(?, session_id), "
                "attempts = attempts + (CASE WHEN ?='sent' THEN 1 ELSE 0 END) WHERE id=?",
                (state, now_ms, response_json, error, session_id, state, intent_id),
            )

    def mark_sent(self, intent_id: str, now_ms: int) -> None:
        self._transition(intent_id, "sent", now_ms)

    def confirm(
        self, intent_id: str, response: dict[str, Any], session_id: str | None, now_ms: int
    ) -> None:
        self._transition(intent_id, "confirmed", now_ms, response=response, session_id=session_id)

    def fail(self, intent_id: str, error: str, now_ms: int) -> None:
        self._transition(intent_id, "failed", now_ms, error=error)

    def mark_unknown(self, intent_id: str, error: str, now_ms: int) -> None:
        self._transition(intent_id, "unknown", now_ms, error=error)

    _INTENT_COLS = (
        "id, created_at, updated_at, kind, asset, venue, request, state, response, "
        "error, decision_id, session_id, attempts"
    )

    def _intent(self, row: tuple[Any, ...]) -> IntentRow:
        return IntentRow(
            id=row[0],
            created_at=row[1],
            updated_at=row[2],
            kind=row[3],
            asset=row[4],
            venue=row[5],
            request=json.loads(row[6]),
            state=row[7],
            response=json.loads(row[8]) if row[8] else None,
            error=row[9],
            decision_id=row[10],
            session_id=row[11],
            attempts=row[12],
        )

    def intent(self, intent_id: str) -> IntentRow | None:
        row = self.conn.execute(
            f"SELECT {self._INTENT_COLS} FROM intents WHERE id=?",  # noqa: S608
            (intent_id,),
        ).fetchone()
        return None if row is None else self._intent(row)

    def intents(self, state: str | None = None) -> list[IntentRow]:
        sql = f"SELECT {self._INTENT_COLS} FROM intents"  # noqa: S608
        rows = (
            self.conn.execute(sql + " WHERE state=? ORDER BY created_at, rowid", (state,))
            if state
            else self.conn.execute(sql + " ORDER BY created_at, rowid")
        )
        return [self._intent(r) for r in rows.fetchall()]

    def attributed_ids(self, kind: str) -> set[str]:
        """Ids (`session_id`) that confirmed intents of `kind` already claim, so reconciliation
        never attributes one venue object to two intents."""
        rows = self.conn.execute(
            "SELECT session_id FROM intents WHERE kind=? AND state='confirmed' "
            "AND session_id IS NOT NULL",
            (kind,),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def unresolved_intents(self) -> list[IntentRow]:
        """Pending, sent or unknown: what reconciliation must settle before anything new."""
        rows = self.conn.execute(
            f"SELECT {self._INTENT_COLS} FROM intents "  # noqa: S608
            "WHERE state IN ('pending','sent','unknown') ORDER BY created_at, rowid"
        ).fetchall()
        return [self._intent(r) for r in rows]

    # -- sessions -----------------------------------------------------------------------------

    def upsert_session(self, row: SessionRow) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT INTO sessions (id, asset, kind, strategy, status, budget, opened_at, "
                "closed_at, realized_pnl, fees, intent_id, mode, raw, trade_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "status=excluded.status, raw=excluded.raw, trade_id=excluded.trade_id",
                (
                    row.id,
                    row.asset,
                    row.kind,
                    row.strategy,
                    row.status,
                    str(row.budget),
                    row.opened_at,
                    row.closed_at,
                    None if row.realized_pnl is None else str(row.realized_pnl),
                    None if row.fees is None else str(row.fees),
                    row.intent_id,
                    row.mode,
                    _json(row.raw) if row.raw is not None else None,
                    row.trade_id,
                ),
            )

    def close_session(
        self, session_id: str, closed_at: int, realized_pnl: Decimal, fees: Decimal
    ) -> bool:
        """Mark a session closed with its realised PnL; a second close changes nothing, so a
        late duplicate cannot count the same PnL twice."""
        with self._tx():
            cur = self.conn.execute(
                "UPDATE sessions SET status='closed', closed_at=?, realized_pnl=?, fees=? "
                "WHERE id=? AND status='open'",
                (closed_at, str(realized_pnl), str(fees), session_id),
            )
        return cur.rowcount == 1

    _SESSION_COLS = (
        "id, asset, kind, strategy, status, budget, opened_at, closed_at, "
        "realized_pnl, fees, intent_id, mode, raw, trade_id"
    )

    def _session(self, r: tuple[Any, ...]) -> SessionRow:
        return SessionRow(
            id=r[0],
            asset=r[1],
            kind=r[2],
            strategy=r[3],
            status=r[4],
            budget=Decimal(r[5]),
            opened_at=r[6],
            closed_at=r[7],
            realized_pnl=_dec(r[8]),
            fees=_dec(r[9]),
            intent_id=r[10],
            mode=r[11],
            raw=json.loads(r[12]) if r[12] else None,
            trade_id=r[13],
        )

    def session(self, session_id: str) -> SessionRow | None:
        row = self.conn.execute(
            f"SELECT {self._SESSION_COLS} FROM sessions WHERE id=?",  # noqa: S608
            (session_id,),
        ).fetchone()
        return None if row is None else self._session(row)

    def sessions(self, status: str | None = None) -> list[SessionRow]:
        sql = f"SELECT {self._SESSION_COLS} FROM sessions"  # noqa: S608
        rows = (
            self.conn.execute(sql + " WHERE status=? ORDER BY opened_at, id", (status,))
            if status
            else self.conn.execute(sql + " ORDER BY opened_at, id")
        )
        return [self._session(r) for r in rows.fetchall()]

    def open_sessions(self) -> list[SessionRow]:
        return self.sessions("open")

    # -- positions (user positions API) -------------------------------------------------------

    def record_position(
        self, position: Position, seen_at: int, closed_by_intent: str | None = None
    ) -> None:
        """The one way a listed or answered position becomes a journal row, so the daemon,
        reconciliation and the CLI all keep the same fields (market status included)."""
        self.upsert_position(
            str(position.id),
            position.wallet_address,
            int(position.status),
            position.amount,
            position.pnl,
            position.close_pnl,
            position.model_dump(mode="json"),
            seen_at,
            closed_by_intent,
            market_status=position.market.status if position.market else None,
        )

    def upsert_position(
        self,
        position_id: str,
        wallet: str,
        status: int,
        amount: int,
        pnl: int | None,
        close_pnl: int | None,
        raw: dict[str, Any],
        seen_at: int,
        closed_by_intent: str | None = None,
        *,
        market_status: int | None = None,
    ) -> None:
        """Amounts are raw integer token units, kept as text so no size loses precision.

        `market_status` is the position's market status as seen now; the first one ever seen
        (not None) is kept in `first_market_status` and never overwritten.
        """
        with self._tx():
            self.conn.execute(
                "INSERT INTO positions (id, wallet, status, amount, pnl, close_pnl, raw, seen_at, "
                "closed_by_intent, first_market_status) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET "
                "status=excluded.status, pnl=excluded.pnl, close_pnl=excluded.close_pnl, "
                "raw=excluded.raw, seen_at=excluded.seen_at, "
                "closed_by_intent=COALESCE(excluded.closed_by_intent, closed_by_intent), "
                "first_market_status=COALESCE(first_market_status, excluded.first_market_status)",
                (
                    position_id,
                    wallet,
                    status,
                    str(amount),
                    None if pnl is None else str(pnl),
                    None if close_pnl is None else str(close_pnl),
                    _json(raw),
                    seen_at,
                    closed_by_intent,
                    market_status,
                ),
            )

    def first_market_status(self, position_id: str) -> int | None:
        """The market status the position was first seen with (None: never seen with one)."""
        row = self.conn.execute(
            "SELECT first_market_status FROM positions WHERE id=?", (position_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def positions(self, wallet: str | None = None) -> list[dict[str, Any]]:
        table = self.db["positions"]
        rows = table.rows_where("wallet = ?", [wallet]) if wallet else table.rows
        return list(rows)

    # -- PnL, errors, control -----------------------------------------------------------------

    def record_pnl(
        self, ts: int, realized: Decimal, unrealized: Decimal, equity: Decimal, open_sessions: int
    ) -> None:
        with self._tx(durable=False):
            self.conn.execute(
                "INSERT INTO pnl_snapshots (ts, realized, unrealized, equity, open_sessions) "
                "VALUES (?,?,?,?,?)",
                (ts, str(realized), str(unrealized), str(equity), open_sessions),
            )

    def record_api_error(
        self,
        ts: int,
        endpoint: str,
        method: str,
        status: int | None,
        kind: str,
        message: str | None = None,
    ) -> None:
        """`endpoint` is the path template (bounded), `message` is cut to 500 characters."""
        with self._tx(durable=False):
            self.conn.execute(
                "INSERT INTO api_errors (ts, endpoint, method, status, kind, message) "
                "VALUES (?,?,?,?,?,?)",
                (ts, endpoint, method, status, kind, None if message is None else message[:500]),
            )

    def api_errors(self, since_ms: int = 0) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT ts, endpoint, method, status, kind, message FROM api_errors WHERE ts >= ? "
            "ORDER BY rowid",
            (since_ms,),
        ).fetchall()
        keys = ("ts", "endpoint", "method", "status", "kind", "message")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def pnl_snapshots(self, since_ms: int = 0) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT ts, realized, unrealized, equity, open_sessions FROM pnl_snapshots "
            "WHERE ts >= ? ORDER BY ts, rowid",
            (since_ms,),
        ).fetchall()
        return [
            {
                "ts": r[0],
                "realized": Decimal(r[1]),
                "unrealized": Decimal(r[2]),
                "equity": Decimal(r[3]),
                "open_sessions": r[4],
            }
            for r in rows
        ]

    def set_control(self, key: str, value: str) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT INTO control (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def get_control(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM control WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def paused(self) -> bool:
        """The kill switch; read from the file each time, so a CLI `pause` is seen at once."""
        return self.get_control("paused") == "1"

    def set_paused(self, paused: bool) -> None:
        self.set_control("paused", "1" if paused else "0")

    # -- sums ---------------------------------------------------------------------------------

    def _sum(self, sql: str, args: tuple[Any, ...] = ()) -> Decimal:
        return sum(
            (Decimal(r[0]) for r in self.conn.execute(sql, args) if r[0] is not None), Decimal(0)
        )

    def realized_pnl_total(self) -> Decimal:
        return self._sum("SELECT realized_pnl FROM sessions WHERE status='closed'")

    def fees_total(self) -> Decimal:
        return self._sum("SELECT fees FROM sessions WHERE status='closed'")

    def realized_pnl_between(self, start_ms: int, end_ms: int) -> Decimal:
        """Realised PnL of sessions closed in [start_ms, end_ms): the daily loss stop's input."""
        return self._sum(
            "SELECT realized_pnl FROM sessions WHERE status='closed' "
            "AND closed_at >= ? AND closed_at < ?",
            (start_ms, end_ms),
        )

    def last_close_by_asset(self) -> dict[str, int]:
        """When each asset last had a session close or an open fail: the cooldown clock."""
        out: dict[str, int] = {}
        for asset, ts in self.conn.execute(
            "SELECT asset, MAX(closed_at) FROM sessions WHERE status='closed' "
            "AND closed_at IS NOT NULL GROUP BY asset"
        ):
            out[asset] = int(ts)
        for asset, ts in self.conn.execute(
            "SELECT asset, MAX(updated_at) FROM intents WHERE state='failed' "
            "AND kind IN ('open_quick', 'open_advanced') AND asset IS NOT NULL GROUP BY asset"
        ):
            out[asset] = max(out.get(asset, 0), int(ts))
        return out

    def counts(self) -> dict[str, int]:
        return {
            t: int(self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # noqa: S608
            for t in ("ticks", "decisions", "intents", "sessions", "positions")
        }

    def tail(self, n: int = 20) -> list[dict[str, Any]]:
        """The latest decisions and intents, newest first; holds are left out (one per tick and
        strategy, they would push every real event off the screen)."""
        decisions = [
            {
                "type": "decision",
                "ts": r[0],
                "strategy": r[1],
                "asset": r[2],
                "action": r[3],
                "verdict": r[4],
                "veto_reason": r[5],
                "reason": r[6],
            }
            for r in self.conn.execute(
                "SELECT ts, strategy, asset, action, verdict, veto_reason, reason FROM decisions "
                "WHERE verdict != 'hold' ORDER BY id DESC LIMIT ?",
                (n,),
            )
        ]
        intents = [
            {
                "type": "intent",
                "ts": r[0],
                "kind": r[1],
                "asset": r[2],
                "state": r[3],
                "session_id": r[4],
                "error": r[5],
                "id": r[6],
            }
            for r in self.conn.execute(
                "SELECT updated_at, kind, asset, state, session_id, error, id FROM intents "
                "ORDER BY updated_at DESC LIMIT ?",
                (n,),
            )
        ]
        return sorted(decisions + intents, key=lambda e: e["ts"], reverse=True)[:n]


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT: one writer at a time, committed on exit, rolled back on error
    (including a failed COMMIT, so the connection is never left inside a dead transaction).

    Inside `Journal.atomic()` a write joins the open transaction instead, so several writes
    that must stand or fall together (an intent confirmed and its session recorded) do.
    `durable=False` commits without an fsync (see the module docstring for why that is safe)."""

    def __init__(self, conn: sqlite3.Connection, durable: bool = True) -> None:
        self.conn = conn
        self.joined = False
        self.durable = durable

    def __enter__(self) -> None:
        if self.conn.in_transaction:
            self.joined = True
            return
        if not self.durable:
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.joined:
            return
        try:
            if exc_type is not None:
                self.conn.execute("ROLLBACK")
                return
            failpoints.hit("journal.commit")
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        finally:
            if not self.durable:
                self.conn.execute("PRAGMA synchronous=FULL")
