"""The journal: one SQLite file holding every tick, decision, intent, session and outcome.

The only module with SQL in the daemon. WAL with `synchronous=FULL`, so every committed write
survives `kill -9` (and power loss); the file is created mode 0600 before SQLite touches it.
An intent is committed before the request it stands for is sent (safety rule 2). Money is stored
as Decimal text and summed in Python, never as REAL. The schema version lives in
`PRAGMA user_version`, with forward migrations applied in order on open.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.domain import Decision, decision_action

MIGRATIONS: list[str] = [
    # v1
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
]
SCHEMA_VERSION = len(MIGRATIONS)
TERMINAL = ("confirmed", "failed")
UNRESOLVED = ("pending", "sent", "unknown")


class JournalError(Exception):
    """A journal that cannot be used as is (newer schema, illegal state change)."""


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


@dataclass(frozen=True)
class TickRow:
    id: int
    started_at: int
    finished_at: int | None
    interval: str
    ok: bool | None
    error: str | None


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


def _create_private(path: Path) -> None:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.chmod(side, 0o600)


class Journal:
    """Every write is its own committed transaction; reads are plain queries."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def open(cls, path: str | Path) -> Journal:
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        journal = cls(conn, path)
        journal._migrate()
        _create_private(path)
        return journal

    def _migrate(self) -> None:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path} has schema version {version}, newer than this alura-bot knows "
                f"({SCHEMA_VERSION}); upgrade alura-bot instead of downgrading the journal"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx():
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {target}")

    def _tx(self) -> _Tx:
        return _Tx(self.conn)

    def close(self) -> None:
        self.conn.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_ok(self) -> bool:
        return bool(self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- ticks and decisions ------------------------------------------------------------------

    def tick_started(self, ts: int, interval: str) -> int:
        with self._tx():
            cur = self.conn.execute(
                "INSERT INTO ticks (started_at, interval) VALUES (?, ?)", (ts, interval)
            )
        return int(cur.lastrowid or 0)

    def tick_finished(
        self, tick_id: int, ts: int, ok: bool, error: str | None, n_signals: int, n_decisions: int
    ) -> None:
        with self._tx():
            self.conn.execute(
                "UPDATE ticks SET finished_at=?, ok=?, error=?, n_signals=?, n_decisions=? "
                "WHERE id=?",
                (ts, int(ok), error, n_signals, n_decisions, tick_id),
            )

    def last_tick(self) -> TickRow | None:
        row = self.conn.execute(
            "SELECT id, started_at, finished_at, interval, ok, error FROM ticks "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return TickRow(
            row[0], row[1], row[2], row[3], None if row[4] is None else bool(row[4]), row[5]
        )

    def record_decision(
        self,
        tick_id: int | None,
        ts: int,
        decision: Decision,
        verdict: str,
        veto_reason: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> int:
        with self._tx():
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
        params = {
            k: getattr(decision, k)
            for k in decision.__dataclass_fields__
            if k not in ("strategy", "reason")
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
        with self._tx():
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
        """Commit the intent (state pending) and return its idempotency key."""
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
        with self._tx():
            row = self.conn.execute(
                "SELECT state, response, error, session_id FROM intents WHERE id=?", (intent_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"no intent {intent_id}")
            current = row[0]
            if current in TERMINAL:
                same = current == state and (row[3] == session_id or session_id is None)
                if same:
                    return
                raise JournalError(
                    f"intent {intent_id} is already {current}; cannot become {state}"
                )
            self.conn.execute(
                "UPDATE intents SET state=?, updated_at=?, response=COALESCE(?, response), "
                "error=COALESCE(?, error), session_id=COALESCE(?, session_id), "
                "attempts = attempts + (CASE WHEN ?='sent' THEN 1 ELSE 0 END) WHERE id=?",
                (
                    state,
                    now_ms,
                    _json(response) if response is not None else None,
                    error,
                    session_id,
                    state,
                    intent_id,
                ),
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

    def _intent(self, row: tuple[Any, ...]) -> IntentRow:
        return IntentRow(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            json.loads(row[6]),
            row[7],
            json.loads(row[8]) if row[8] else None,
            row[9],
            row[10],
            row[11],
        )

    _INTENT_COLS = (
        "id, created_at, updated_at, kind, asset, venue, request, state, response, "
        "error, decision_id, session_id"
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
            self.conn.execute(sql + " WHERE state=? ORDER BY created_at", (state,))
            if state
            else self.conn.execute(sql + " ORDER BY created_at")
        )
        return [self._intent(r) for r in rows.fetchall()]

    def unresolved_intents(self) -> list[IntentRow]:
        rows = self.conn.execute(
            f"SELECT {self._INTENT_COLS} FROM intents WHERE state IN ('pending','sent','unknown') "  # noqa: S608
            "ORDER BY created_at"
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
        """Mark a session closed with its realised PnL; a second close changes nothing."""
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
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            Decimal(r[5]),
            r[6],
            r[7],
            _dec(r[8]),
            _dec(r[9]),
            r[10],
            r[11],
            json.loads(r[12]) if r[12] else None,
            r[13],
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
    ) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT INTO positions (id, wallet, status, amount, pnl, close_pnl, raw, seen_at, "
                "closed_by_intent) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "status=excluded.status, pnl=excluded.pnl, close_pnl=excluded.close_pnl, "
                "raw=excluded.raw, seen_at=excluded.seen_at, "
                "closed_by_intent=COALESCE(excluded.closed_by_intent, closed_by_intent)",
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
                ),
            )

    def positions(self, wallet: str | None = None) -> list[dict[str, Any]]:
        table = self.db["positions"]
        rows = table.rows_where("wallet = ?", [wallet]) if wallet else table.rows
        return list(rows)

    # -- PnL, errors, control -----------------------------------------------------------------

    def record_pnl(
        self, ts: int, realized: Decimal, unrealized: Decimal, equity: Decimal, open_sessions: int
    ) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT INTO pnl_snapshots VALUES (?,?,?,?,?)",
                (ts, str(realized), str(unrealized), str(equity), open_sessions),
            )

    def record_api_error(
        self, ts: int, endpoint: str, method: str, status: int | None, kind: str, message: str
    ) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT INTO api_errors VALUES (?,?,?,?,?,?)",
                (ts, endpoint, method, status, kind, message[:500]),
            )

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
        return self._sum(
            "SELECT realized_pnl FROM sessions WHERE status='closed' "
            "AND closed_at >= ? AND closed_at < ?",
            (start_ms, end_ms),
        )

    def last_close_by_asset(self) -> dict[str, int]:
        """When each asset last had a session close or an open fail: the cooldown clock."""
        out: dict[str, int] = {}
        for asset, ts in self.conn.execute(
            "SELECT asset, MAX(closed_at) FROM sessions WHERE status='closed' GROUP BY asset"
        ):
            out[asset] = int(ts)
        for asset, ts in self.conn.execute(
            "SELECT asset, MAX(updated_at) FROM intents WHERE state='failed' "
            "AND kind LIKE 'open_%' AND asset IS NOT NULL GROUP BY asset"
        ):
            out[asset] = max(out.get(asset, 0), int(ts))
        return out

    def counts(self) -> dict[str, int]:
        return {
            t: int(self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # noqa: S608
            for t in ("ticks", "decisions", "intents", "sessions", "positions")
        }

    def tail(self, n: int = 20) -> list[dict[str, Any]]:
        """The latest decisions and intents, newest first."""
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
    """BEGIN IMMEDIATE ... COMMIT: one writer at a time, committed on exit, rolled back on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
