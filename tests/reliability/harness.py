"""Crash-trial and soak harness: the simulator and the daemon as separate processes.

The simulator (`alura-bot sim --state`) is the ground truth; the daemon (`alura-bot run --live`
with `engine.clock = "venue"`) trades it at an accelerated market clock. A trial SIGKILLs the
daemon at a chosen moment — a random time, while a request that moves money is in flight, or at
a named failpoint inside a journal transaction or between a venue's answer and its journaling —
then freezes the venue's clock, reconciles the journal with the code the daemon runs at
start-up, and checks the invariants of issue 9. Used by tests/reliability (short runs, CI) and
bench/crash_trials.py and bench/soak.py (long runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
TEST_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
CREATE_PATHS = ("/trading-sessions", "/trading-sessions/advance")
UNRESOLVED = ("pending", "sent", "unknown")
SESSION = "budget = 20, profit_target = 0.5, loss_threshold = 0.5"
# The daemon's schedule and retry budget in `Bot`'s config; the venue-outage bound is built on them.
RETRY_ATTEMPTS = 3
STATS_EVERY_S = 1
# The journal learns a session's PnL closed behind its back from the venue's per-position logs,
# each rounded to 6 decimals; the venue's total is rounded once.
PNL_TOLERANCE = Decimal("0.00001")

STRATEGY = '''
import numpy as np
from strategies.base import Signals, Strategy, StrategyParams


class ChurnParams(StrategyParams):
    exit_every: int = 3


class Churn(Strategy[ChurnParams]):
    """Reliability trials: wants a session on every candle, exits every Nth: many intents."""

    name = "churn"
    Params = ChurnParams

    @property
    def warmup(self) -> int:
        return 2

    def indicators(self, candles):
        return {}

    def signals(self, candles, columns):
        n = len(candles)
        step = candles.ts // candles.interval_ms
        return Signals.long_only(np.ones(n, dtype=bool), step % self.params.exit_every == 0)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALURA_BOT_")}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), **extra})
    return env


# -- the venue --------------------------------------------------------------------------------

COLLECT_OVERLAP_S = 30.0
"""Longer than any request stays in the venue (the bot's read timeout is 3 s, a spike 0.7 s)."""


@dataclass
class Venue:
    """`alura-bot sim` as a process with persisted state; restartable on the same port."""

    workdir: Path
    speed: float = 3600.0
    seed: int = 7
    faults: str | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        cmd = [sys.executable, "-m", "bot", "sim", "--port", str(self.port)]
        cmd += ["--speed", str(self.speed), "--seed", str(self.seed), "--balance", "1000000"]
        cmd += ["--state", str(self.workdir / "venue.sqlite")]
        if self.faults:
            path = self.workdir / "faults.toml"
            path.write_text(self.faults)
            cmd += ["--faults", str(path)]
        log = (self.workdir / "sim.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env())
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited {self.proc.returncode}; see sim.log")
            try:
                httpx.get(f"{self.url}/health", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.05)  # polling another process's start-up
        raise RuntimeError("simulator did not answer in time")

    def kill(self) -> None:
        """SIGKILL; keeps the request log collected so far (it lives in the process)."""
        if self.proc is None:
            return
        self.collect()
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def ctl(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, f"{self.url}/__sim/{path}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def pause(self) -> None:
        self.ctl("POST", "clock", {"paused": True})

    def resume(self) -> None:
        self.ctl("POST", "clock", {"paused": False})

    def wait_quiet(self, timeout: float = 30.0) -> None:
        """Until the venue handles no request: one a dead client sent may still be applied."""
        deadline = time.monotonic() + timeout
        while self.state()["inFlight"] > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("venue never became quiet")
            time.sleep(0.01)  # polling another process

    def state(self) -> dict[str, Any]:
        return dict(self.ctl("GET", "state"))

    def collect(self) -> None:
        """Move the simulator's in-memory request log into `self.requests` (it dies with it).

        The log is in answer order and `t` is the arrival time: a request still being handled
        at the last collect arrived before entries already taken, so the next one reaches back
        `COLLECT_OVERLAP_S` and drops what it already has. `self.requests` stays in answer order.
        """
        recent = self.requests[-500:]
        since = max(e["t"] for e in recent) - COLLECT_OVERLAP_S if recent else 0.0
        got = self.ctl("GET", f"requests?since={since}")["requests"]
        seen = {(e["t"], e["method"], e["path"]) for e in self.requests if e["t"] >= since}
        self.requests += [e for e in got if (e["t"], e["method"], e["path"]) not in seen]


# -- the daemon -------------------------------------------------------------------------------


@dataclass
class Bot:
    """`alura-bot run --live` against the venue, with its own journal, key and notify socket."""

    workdir: Path
    venue: Venue
    interval: str = "1h"
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        key = self.workdir / "private-key"
        key.write_text(TEST_KEY + "\n")
        key.chmod(0o600)
        strategies = self.workdir / "strategies"
        strategies.mkdir(exist_ok=True)
        (strategies / "churn.py").write_text(STRATEGY)
        assets = ", ".join(f'"{a}"' for a in self.assets)
        self.config.write_text(
            f"""mode = "live"
base_url = "{self.venue.url}"
private_key_file = "{key}"
journal_path = "{self.journal_path}"
strategies_dir = "{strategies}"
log_level = "INFO"
log_format = "json"
metrics_port = {self.metrics_port}

[http]
rate_limit_per_s = 200
rate_limit_burst = 50
connect_timeout_s = 2
read_timeout_s = 3
write_timeout_s = 3
retry_attempts = {RETRY_ATTEMPTS}
retry_total_s = 5
retry_max_wait_s = 2

[risk]
max_open_sessions = 6
max_budget_per_session = "1000"
max_total_budget = "100000"
daily_loss_limit = "1000000"
cooldown_s = 0
min_free_balance = "0"
stale_after_intervals = 3

[engine]
clock = "venue"
tick_offset_s = 30
reconcile_every_s = {self.venue.speed}
stats_every_s = {STATS_EVERY_S}
lookback_candles = 60
shutdown_timeout_s = 5

[[strategies]]
name = "churn"
assets = [{assets}]
params = {{ interval = "{self.interval}", session = {{ {SESSION} }} }}
{self.extra_config}
"""
        )

    @property
    def config(self) -> Path:
        return self.workdir / "alura-bot.toml"

    @property
    def journal_path(self) -> Path:
        return self.workdir / "journal.sqlite"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bot.log"

    def start(self, *, failpoints: str = "", seed: int = 0, ready_timeout: float = 60.0) -> bool:
        """Start and wait for READY=1 (sent after the start-up reconcile). False when the process
        died before that (a failpoint can fire during start-up)."""
        notify = self.workdir / "notify.sock"
        notify.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(notify))
        sock.settimeout(0.2)
        env = _env(NOTIFY_SOCKET=str(notify))
        if failpoints:
            env.update(ALURA_BOT_FAILPOINTS=failpoints, ALURA_BOT_FAILPOINTS_SEED=str(seed))
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "bot", "run", "--config", str(self.config), "--live"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + ready_timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if b"READY=1" in sock.recv(4096):
                        return True
                except TimeoutError:
                    continue
        finally:
            sock.close()
        raise RuntimeError("daemon sent no READY=1 in time; see bot.log")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait_for_intent_in_flight(self, timeout: float) -> bool:
        """Poll the journal (a second reader, as an operator's sqlite3 would be) until an intent
        is written but its answer has not come: state pending or sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                with sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True) as db:
                    row = db.execute(
                        "SELECT 1 FROM intents WHERE state IN ('pending','sent') LIMIT 1"
                    ).fetchone()
            except sqlite3.Error:
                row = None
            if row:
                return True
            time.sleep(0.002)  # polling another process's journal
        return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def reconcile(self) -> dict[str, list[str]]:
        """The daemon's own start-up reconciliation, run in this process while no daemon runs."""
        from pydantic import SecretStr

        from bot.engine.daemon import Daemon
        from bot.settings import load_settings

        settings = load_settings(self.config)
        daemon = Daemon(settings, key=SecretStr(TEST_KEY), live=True)
        # the venue is quiet (no request in flight, clock frozen): nothing can still land
        self.venue.wait_quiet()
        daemon.settle_ms = lambda: 0  # type: ignore[method-assign]

        async def once() -> Any:
            parts = daemon.build()
            try:
                await daemon._follow_venue_clock()
                return await daemon._reconcile_unlocked("harness", raise_errors=True)
            finally:
                await parts.client.aclose()
                parts.journal.close()

        report = asyncio.run(once())
        return {k: list(v) for k, v in vars(report).items()}


# -- invariants -------------------------------------------------------------------------------


@dataclass
class Check:
    problems: list[str]
    venue_sessions: int
    intents: int
    duplicate_attempts: int
    creates_at_venue: int
    sent_open_intents: int


def wallet_address() -> str:
    from eth_account import Account

    return str(Account.from_key(TEST_KEY).address)


def check_invariants(venue: Venue, journal_path: Path) -> Check:
    """Issue 9's after-trial checks, with the venue's clock frozen and no daemon running."""
    problems: list[str] = []
    me = wallet_address().lower()
    state = venue.state()
    mine = [s for s in state["sessions"] if str(s.get("wallet", "")).lower() == me]
    active = Counter(s["asset"] for s in mine if s["status"] == "active")
    problems += [f"{n} active sessions on {a}" for a, n in active.items() if n > 1]

    with sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True) as db:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("journal integrity_check failed")
        intents = db.execute("SELECT id, kind, state, error, attempts FROM intents").fetchall()
        sessions = {
            r[0]: r[1:]
            for r in db.execute("SELECT id, status, realized_pnl, fees FROM sessions").fetchall()
        }
    left = [i for i in intents if i[2] in UNRESOLVED]
    problems += [f"intent {i[0]} ({i[1]}) left {i[2]}" for i in left]
    for s in mine:
        if s["id"] not in sessions:
            problems.append(f"venue session {s['id']} ({s['asset']}, {s['status']}) not journaled")
            continue
        status, pnl, _ = sessions[s["id"]]
        if s["status"] == "active" and status != "open":
            problems.append(f"session {s['id']} active on the venue, {status} in the journal")
        if s["status"] != "active":
            if status != "closed":
                problems.append(f"session {s['id']} closed on the venue, {status} in the journal")
            elif abs(Decimal(pnl) - Decimal(str(s["realizedPnl"]))) > PNL_TOLERANCE:
                problems.append(f"session {s['id']}: journal PnL {pnl}, venue {s['realizedPnl']}")
    venue_closed = sum(
        (Decimal(str(s["realizedPnl"])) for s in mine if s["status"] != "active"), Decimal(0)
    )
    journal_closed = sum(
        (Decimal(v[1]) for v in sessions.values() if v[0] == "closed" and v[1] is not None),
        Decimal(0),
    )
    if abs(venue_closed - journal_closed) > Decimal("0.0001"):
        problems.append(f"realised PnL: journal {journal_closed}, venue {venue_closed}")

    venue.collect()
    creates = sum(1 for e in venue.requests if e["method"] == "POST" and e["path"] in CREATE_PATHS)
    sent_opens = sum(
        1 for i in intents if i[1] in ("open_quick", "open_advanced") and (i[4] or 0) > 0
    )
    if creates > sent_opens:
        problems.append(f"{creates} session creates reached the venue for {sent_opens} intents")
    duplicates = sum(1 for i in intents if i[3] and "Duplicate asset" in i[3])
    return Check(problems, len(mine), len(intents), duplicates, creates, sent_opens)


# -- trials -----------------------------------------------------------------------------------

KILL_MODES = ("random", "in_flight", "journal_commit", "open_answered", "close_answered")
FAILPOINTS = {
    "journal_commit": "journal.commit=0.03",
    "open_answered": "open.answered=0.5",
    "close_answered": "close.answered=0.5",
}


@dataclass
class TrialStats:
    trials: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    not_ready: int = 0
    duplicates: int = 0
    unresolved_after: int = 0
    orphans: int = 0
    adopted: int = 0
    failed_intents: int = 0
    intents: int = 0
    venue_sessions: int = 0
    venue_restarts: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["kills"] = dict(self.kills)
        out["problems"] = self.problems[:50]
        return out


def run_trials(
    workdir: Path,
    trials: int,
    *,
    seed: int = 1,
    venue_restart_every: int = 0,
    progress: Any = None,
) -> TrialStats:
    """`trials` SIGKILLs of the daemon, cycling through the kill modes; returns the figures."""
    rng = random.Random(seed)
    venue = Venue(
        workdir / "venue",
        seed=seed,
        faults=(
            "seed = 1\n"
            "[[rule]]\nkind = 'latency'\nmatch = 'POST /trading-sessions*'\nlatency_ms = 150\n"
            "[[rule]]\nkind = 'latency'\nmatch = 'POST /trading-sessions/trades/*'\n"
            "latency_ms = 150\n"
            "[[rule]]\nkind = 'lost_response'\nmatch = 'POST /trading-sessions'\n"
            "probability = 0.1\n"
        ),
    )
    venue.workdir.mkdir(parents=True, exist_ok=True)
    venue.start()
    bot = Bot(workdir / "bot", venue)
    stats = TrialStats()
    try:
        for n in range(trials):
            mode = KILL_MODES[n % len(KILL_MODES)]
            ready = bot.start(failpoints=FAILPOINTS.get(mode, ""), seed=rng.randrange(1 << 30))
            if not ready:
                stats.not_ready += 1
            if bot.alive():
                if mode == "random":
                    deadline = time.monotonic() + rng.uniform(0.1, 2.5)
                    while time.monotonic() < deadline and bot.alive():
                        time.sleep(0.01)  # a random moment, by design
                elif mode == "in_flight":
                    bot.wait_for_intent_in_flight(timeout=10)
                else:
                    deadline = time.monotonic() + 10
                    while bot.alive() and time.monotonic() < deadline:
                        time.sleep(0.01)  # until the failpoint fires
            died_alone = not bot.alive()
            bot.kill()
            stats.kills[mode if mode in ("random", "in_flight") or died_alone else "timer"] += 1
            if venue_restart_every and (n + 1) % venue_restart_every == 0:
                venue.kill()
                venue.start()
                stats.venue_restarts += 1
            venue.pause()
            try:
                report = bot.reconcile()
                result = check_invariants(venue, bot.journal_path)
            finally:
                venue.resume()
            stats.trials += 1
            stats.adopted += len(report["adopted"])
            stats.orphans += len(report["orphans"])
            stats.failed_intents += len(report["failed_intents"])
            stats.duplicates += result.duplicate_attempts
            stats.unresolved_after += sum(1 for p in result.problems if " left " in p)
            stats.intents = result.intents
            stats.venue_sessions = result.venue_sessions
            stats.problems += [f"trial {n} ({mode}): {p}" for p in result.problems]
            if progress is not None:
                progress(n, mode, result, report)
    finally:
        bot.kill()
        venue.kill()
    return stats


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Poll another process's observable state until `condition` holds; False at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)  # polling another process
    return True


def _journal_count(journal: Path, sql: str, *args: Any) -> int:
    """One COUNT/MAX over the journal as a second, read-only reader (the daemon keeps writing)."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return int(db.execute(sql, args).fetchone()[0] or 0)


def last_tick_id(journal: Path) -> int:
    return _journal_count(journal, "SELECT MAX(id) FROM ticks")


def ticks_since(journal: Path, since_id: int, *, ok: bool) -> int:
    sql = "SELECT COUNT(*) FROM ticks WHERE id > ? AND ok = ?"
    return _journal_count(journal, sql, since_id, 1 if ok else 0)


def last_intent_row(journal: Path) -> int:
    return _journal_count(journal, "SELECT MAX(rowid) FROM intents")


def confirmed_intents_since(journal: Path, since_row: int) -> int:
    """Intents written after row `since_row` (rowids grow in insertion order) and confirmed."""
    sql = "SELECT COUNT(*) FROM intents WHERE rowid > ? AND state = 'confirmed'"
    return _journal_count(journal, sql, since_row)


# -- venue outages ----------------------------------------------------------------------------


class CountingListener:
    """Holds a dead venue's port: accepts every connection, counts it, and closes it at once.

    A refused connection leaves no trace outside the client; an accepted one does. So the
    daemon's attempts to reach the venue are counted on the venue's side of the wire (as the soak
    measures Retry-After there), and each still fails at once, as against a dead venue.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepts = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dead-venue", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepts += 1
            conn.close()

    def __enter__(self) -> CountingListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def outage_attempt_bound(bot: Bot, seconds: float) -> int:
    """The most connections the daemon's schedule and retry budget allow in `seconds` of outage.

    Three jobs reach the venue, each at most once a period (max_instances=1, coalesced): the
    tick (one candle interval of market time), the reconcile (`reconcile_every_s` of market
    time) and the stats job (`stats_every_s`). Against a dead venue a run asks for at most: a
    tick, the signals, the latest candles, the profile, the active sessions and each asset's
    candles (the latest having failed), plus a reconcile's two reads if an open it had sent died
    with the venue; a reconcile, the venue's clock and the active sessions; a stats run, the
    profile and the active sessions. Each read makes at most `retry_attempts` attempts. A run
    already going when the venue died and one starting as the window closes add one run each.
    A client without back-off would open thousands of connections a second to a dead port.
    """
    from bot.domain import INTERVAL_SECONDS

    speed = bot.venue.speed
    jobs = (
        (INTERVAL_SECONDS[bot.interval] / speed, 4 + len(bot.assets) + 2),
        (speed / speed, 2),  # reconcile_every_s = speed in `Bot`'s config: 1 s of wall time
        (float(STATS_EVERY_S), 2),
    )
    runs = sum((int(seconds // period) + 2) * reads for period, reads in jobs)
    return RETRY_ATTEMPTS * runs


@dataclass
class Outage:
    """One venue outage under a running daemon, as measured from outside it."""

    seconds: float
    attempts: int
    bound: int
    failed_ticks: int
    recovery_s: float
    """Venue back up (answering /health) to the daemon's first successful tick."""
    resumed: bool
    """An intent written after the restart was confirmed: the daemon trades again."""
    same_process: bool
    clock_kept: bool
    """The restarted venue's market time did not go back (its `--state` held)."""


def venue_outage(bot: Bot, venue: Venue, *, failed_ticks: int = 2, timeout: float = 60.0) -> Outage:
    """SIGKILL the venue under the running daemon, hold its port with a `CountingListener`
    until the daemon has journaled `failed_ticks` failed ticks, then restart the venue on its
    `--state` and wait for a successful tick and a newly confirmed intent."""
    assert bot.proc is not None and bot.alive(), "the daemon must be running"
    pid = bot.proc.pid
    journal = bot.journal_path
    clock_before = venue.state()["clockMs"]
    venue.kill()
    down_from = last_tick_id(journal)
    with CountingListener(venue.port) as dead:
        started = time.monotonic()
        wait_until(
            lambda: not bot.alive() or ticks_since(journal, down_from, ok=False) >= failed_ticks,
            timeout,
        )
        seconds = time.monotonic() - started
        attempts = dead.accepts
    failed = ticks_since(journal, down_from, ok=False)
    venue.start()
    up = time.monotonic()
    up_from, intents_from = last_tick_id(journal), last_intent_row(journal)
    ticked = wait_until(lambda: ticks_since(journal, up_from, ok=True) >= 1, timeout)
    recovery_s = time.monotonic() - up if ticked else float("inf")
    resumed = wait_until(lambda: confirmed_intents_since(journal, intents_from) >= 1, timeout)
    return Outage(
        seconds=seconds,
        attempts=attempts,
        bound=outage_attempt_bound(bot, seconds),
        failed_ticks=failed,
        recovery_s=recovery_s,
        resumed=resumed,
        same_process=bot.alive() and bot.proc is not None and bot.proc.pid == pid,
        clock_kept=venue.state()["clockMs"] >= clock_before,
    )


@dataclass
class OutageStats:
    outages: int = 0
    survived: int = 0
    resumed: int = 0
    attempts: int = 0
    bound: int = 0
    outage_seconds: float = 0.0
    recovery_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["problems"] = self.problems[:50]
        return out


def run_venue_outages(
    workdir: Path, outages: int, *, seed: int = 1, progress: Any = None
) -> OutageStats:
    """`outages` times: start the daemon, let it trade, kill and restart the venue under it
    (`venue_outage`), stop the daemon, reconcile and check the invariants."""
    venue = Venue(workdir / "venue", seed=seed)
    venue.workdir.mkdir(parents=True, exist_ok=True)
    venue.start()
    bot = Bot(workdir / "bot", venue)
    stats = OutageStats()
    try:
        for n in range(outages):
            if not bot.start():
                stats.problems.append(f"outage {n}: the daemon died before READY")
                continue
            since = last_tick_id(bot.journal_path)
            wait_until(lambda s=since: ticks_since(bot.journal_path, s, ok=True) >= 2, 30)
            o = venue_outage(bot, venue)
            stats.outages += 1
            stats.survived += o.same_process
            stats.resumed += o.resumed
            stats.attempts += o.attempts
            stats.bound += o.bound
            stats.outage_seconds += o.seconds
            stats.recovery_s.append(round(o.recovery_s, 2))
            where = f"outage {n}"
            if not o.same_process:
                stats.problems.append(f"{where}: the daemon did not survive it")
            if o.attempts > o.bound:
                stats.problems.append(f"{where}: {o.attempts} attempts, bound {o.bound}")
            if not o.resumed:
                stats.problems.append(f"{where}: no confirmed intent after the restart")
            if not o.clock_kept:
                stats.problems.append(f"{where}: the venue's market time went back")
            code = bot.terminate() if bot.alive() else None
            if code != 0:
                stats.problems.append(f"{where}: the daemon exited {code} on SIGTERM")
            venue.pause()
            try:
                bot.reconcile()
                result = check_invariants(venue, bot.journal_path)
            finally:
                venue.resume()
            stats.problems += [f"{where}: {p}" for p in result.problems]
            if progress is not None:
                progress(n, o)
        stats.problems += [f"log: {line}" for line in log_problems(bot.log_path)]
    finally:
        bot.kill()
        venue.kill()
    return stats


def log_problems(path: Path) -> list[str]:
    """Lines of a JSON-lines daemon log that show an unhandled error."""
    bad = []
    for line in path.read_text(errors="replace").splitlines():
        if "Traceback" in line or "Unhandled" in line or "unhandled" in line:
            bad.append(line[:300])
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") in ("critical", "CRITICAL"):
            bad.append(line[:300])
    return bad


def metric_values(text: str, name: str) -> dict[str, float]:
    """{labels: value} for one metric family of a Prometheus exposition."""
    out = {}
    labels = r'(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?'  # label values may hold braces
    for m in re.finditer(rf"^{re.escape(name)}{labels} (\S+)$", text, re.M):
        out[m.group(1) or ""] = float(m.group(2))
    return out


# -- fault soak ---------------------------------------------------------------------------------

HOSTILE = """
seed = 11
# When several rules fire for one request they act in this order and the first that answers
# wins; the others still count as fired. So the two that only add something (a latency spike,
# token expiry) come first and take effect whenever they fire, and each read endpoint has one
# answering fault: what fired there is what the bot got. A create can draw three (503, builder
# fee, lost answer); the venue's logged status says which one it got (see `fault_tallies`).
# No latency on the rate-limited candles: a 429 then leaves when it arrives, which is what the
# Retry-After measurement (taken from arrival times) needs.
[[rule]]
kind = "latency"
match = "GET /trading-sessions/*"
probability = 0.05
latency_ms = 700
[[rule]]
kind = "latency"
match = "GET /api/indicators/signals/*"
probability = 0.05
latency_ms = 700
[[rule]]
kind = "latency"
match = "GET /user/*"
probability = 0.05
latency_ms = 700
[[rule]]
kind = "token_expiry"
match = "GET /trading-sessions/active"
every = 40
[[rule]]
kind = "rate_limit"
match = "GET /api/indicators/candles/*"
probability = 0.12
retry_after = "1"
[[rule]]
kind = "status"
match = "GET /trading-sessions/active"
probability = 0.08
status = 502
[[rule]]
kind = "drop"
match = "GET /api/indicators/signals/*"
every = 10
[[rule]]
kind = "status"
match = "POST /trading-sessions"
probability = 0.05
status = 503
[[rule]]
kind = "builder_fee"
match = "POST /trading-sessions"
every = 6
[[rule]]
kind = "lost_response"
match = "POST /trading-sessions"
probability = 0.1
[[rule]]
kind = "lost_response"
match = "POST /trading-sessions/trades/*/close"
probability = 0.1
"""
CREATE = ("POST", "/trading-sessions")
CLOSE = ("POST", "/trading-sessions/trades/{trade_id}/close")
SIGNALS = "/api/indicators/signals/"
SLOW_S = "0.5"
"""A histogram bucket bound below HOSTILE's 700 ms spike: slower exchanges include every spike."""
ERROR_KINDS = {
    "RateLimited",
    "ServerError",
    "TransportError",
    "OutcomeUnknown",
    "BuilderFeeApprovalFailed",
    "Unauthorized",
}
"""The error kinds HOSTILE can cause; any other one is an error nothing injected."""


@dataclass(frozen=True)
class VenueCounts:
    """What the venue had done at one moment: faults fired by kind, answers by status."""

    fired: dict[str, int]
    answers: Counter[tuple[str, str, int]]
    """(method, path, status) of every request the venue had answered."""

    def answered(self, status: int, method: str = "", path: str = "") -> int:
        return sum(
            n
            for (m, p, st), n in self.answers.items()
            if st == status and (not method or m == method) and (not path or p == path)
        )

    @classmethod
    def of(cls, fired: dict[str, int], requests: list[dict[str, Any]]) -> VenueCounts:
        answers = Counter((e["method"], e["path"], int(e["status"])) for e in requests)
        return cls(dict(fired), answers)


@dataclass(frozen=True)
class BotCounts:
    """The bot's own counters in one scrape of its /metrics."""

    exchanges: dict[tuple[str, str, str], float]
    """(method, endpoint template, code) -> `alura_bot_api_requests_total`; code "none" is an
    exchange that ended without an answer (reset, cut, timeout: `bot.metrics.NO_RESPONSE`)."""
    errors: dict[str, float]
    """kind -> `alura_bot_api_errors_total` (one per failed exchange, `ApiError.kind`)."""
    slow: float
    """Exchanges slower than `SLOW_S`, from `alura_bot_api_request_duration_seconds`."""

    def n(
        self,
        code: str,
        method: str = "",
        endpoint: Callable[[str], bool] | str = "",
    ) -> float:
        def wanted(e: str) -> bool:
            return endpoint(e) if callable(endpoint) else not endpoint or e == endpoint

        return sum(
            v
            for (m, e, c), v in self.exchanges.items()
            if c == code and (not method or m == method) and wanted(e)
        )

    @classmethod
    def parse(cls, text: str) -> BotCounts:
        def label(labels: str, name: str) -> str:
            found = re.search(rf'{name}="([^"]*)"', labels)
            return found.group(1) if found else ""

        exchanges = {
            (label(k, "method"), label(k, "endpoint"), label(k, "code")): v
            for k, v in metric_values(text, "alura_bot_api_requests_total").items()
        }
        errors = {
            label(k, "kind"): v
            for k, v in metric_values(text, "alura_bot_api_errors_total").items()
        }
        family = "alura_bot_api_request_duration_seconds"
        total = sum(metric_values(text, f"{family}_count").values())
        fast = sum(
            v
            for k, v in metric_values(text, f"{family}_bucket").items()
            if label(k, "le") == SLOW_S
        )
        return cls(exchanges, errors, total - fast)


@dataclass(frozen=True)
class Tally:
    """One injected fault, or one error kind, against what the bot counted: the bot's figure
    must lie in [low, high], the same relation taken on the venue before and after the scrape
    (a request in flight across it may be counted on one side only)."""

    fault: str
    relation: str
    low: float
    bot: float
    high: float

    @property
    def ok(self) -> bool:
        return self.low <= self.bot <= self.high


def fault_tallies(low: VenueCounts, bot: BotCounts, high: VenueCounts) -> list[Tally]:
    """Every fault kind of HOSTILE, and every error kind it causes, checked against the bot's
    metrics: exact where the venue can say what it did, a stated bound where it cannot."""
    inf = float("inf")
    create, close = CREATE[1], CLOSE[1]
    lost_creates = bot.n("none", "POST", create)
    lost_all = lost_creates + bot.n("none", "POST", close)
    reads_5xx = bot.n("502", "GET") + bot.n("503", "GET")
    writes_5xx = bot.n("502", "POST") + bot.n("503", "POST")
    bot_401 = bot.n("401")
    # a create answered 503 or 400 never reached the app, so a lost-answer (or, after the 503
    # rule, a builder-fee) rule that fired for it too did nothing: fired exceeds what happened
    # by at most those answers
    shadowed_lost = high.answered(503, *CREATE) + high.answered(400, *CREATE)
    shadowed_fee = high.answered(503, *CREATE)

    def fired(counts: VenueCounts, kind: str) -> int:
        return counts.fired.get(kind, 0)

    def kind(name: str) -> float:
        return bot.errors.get(name, 0.0)

    return [
        Tally(
            "rate_limit",
            "429 answers counted = fired",
            fired(low, "rate_limit"),
            bot.n("429"),
            fired(high, "rate_limit"),
        ),
        Tally("rate_limit", "errors{RateLimited} = 429 answers", *[bot.n("429")] * 3),
        Tally(
            "status",
            "502 + 503 answers counted = fired",
            fired(low, "status"),
            bot.n("502") + bot.n("503"),
            fired(high, "status"),
        ),
        Tally(
            "status",
            "errors{ServerError} = 5xx to reads",
            reads_5xx,
            kind("ServerError"),
            reads_5xx,
        ),
        Tally(
            "drop",
            "reads of signals without an answer = fired",
            fired(low, "drop"),
            bot.n("none", "GET", lambda e: e.startswith(SIGNALS)),
            fired(high, "drop"),
        ),
        Tally(
            "drop",
            "errors{TransportError} = reads without an answer",
            bot.n("none", "GET"),
            kind("TransportError"),
            bot.n("none", "GET"),
        ),
        Tally(
            "lost_response",
            "creates without an answer = creates the venue cut (logged 200, not 201)",
            low.answered(200, *CREATE),
            lost_creates,
            high.answered(200, *CREATE),
        ),
        Tally(
            "lost_response",
            "fired - creates answered 503/400 <= creates + closes without an answer <= fired",
            fired(low, "lost_response") - shadowed_lost,
            lost_all,
            fired(high, "lost_response"),
        ),
        Tally(
            "lost_response",
            "errors{OutcomeUnknown} = writes answered 5xx or not at all",
            writes_5xx + lost_all,
            kind("OutcomeUnknown"),
            writes_5xx + lost_all,
        ),
        Tally(
            "builder_fee",
            "errors{BuilderFeeApprovalFailed} = creates answered 400",
            low.answered(400, *CREATE),
            kind("BuilderFeeApprovalFailed"),
            high.answered(400, *CREATE),
        ),
        Tally(
            "builder_fee",
            "fired - creates answered 503 <= errors{BuilderFeeApprovalFailed} <= fired",
            fired(low, "builder_fee") - shadowed_fee,
            kind("BuilderFeeApprovalFailed"),
            fired(high, "builder_fee"),
        ),
        Tally(
            "token_expiry",
            "401 answers counted = the venue's 401s",
            low.answered(401),
            bot_401,
            high.answered(401),
        ),
        # every request still carrying the expired token is refused, and how many are in flight
        # at that instant depends on scheduling: at least one per expiry, no fixed upper bound
        Tally(
            "token_expiry", "401 answers counted >= fired", fired(low, "token_expiry"), bot_401, inf
        ),
        Tally(
            "token_expiry",
            "errors{Unauthorized} = 401 answers",
            bot_401,
            kind("Unauthorized"),
            bot_401,
        ),
        # a spike delays its answer by 700 ms; other exchanges may be slow too (a loaded CPU)
        Tally(
            "latency",
            f"exchanges slower than {SLOW_S} s >= fired",
            fired(low, "latency"),
            bot.slow,
            inf,
        ),
        Tally(
            "(none)",
            "errors of any other kind",
            0,
            sum(v for k, v in bot.errors.items() if k not in ERROR_KINDS),
            0,
        ),
    ]


@dataclass
class SoakResult:
    seconds: float
    alive_throughout: bool
    exit_code: int | None
    log_problems: list[str]
    check: Check
    injected: dict[str, int]
    tallies: list[Tally]
    retry_after_violations: list[str]
    ticks: int
    requests: int


IN_FLIGHT_S = 0.2
"""Requests arriving this soon after a 429 left the bot before that answer reached it
(concurrent candle fetches): they could not have known. Normally they arrive within 15 ms of
each other, but a loaded 2-core machine stalls an event loop now and then: in one 10-minute
soak the two candle fetches started in the same gather as a 429'd one arrived 154 ms after it,
at the same millisecond. A bot that ignored Retry-After would still show several requests in
the rest of the second after each 429 (it sends about seven a second)."""


def retry_after_violations(requests: list[dict[str, Any]], wait_s: float) -> list[str]:
    """Requests the bot sent within `wait_s` of a 429 answer (the venue's clock, one process).

    `requests` is in the venue's answer order, `t` the arrival time. A request answered before
    the 429 had arrived before the 429 left, so the bot sent it before it could know: only those
    answered after it are candidates (a 429 itself answers at once: HOSTILE adds no latency to
    the rate-limited endpoint, so its arrival time is when it left)."""
    bad = []
    for i, e in enumerate(requests):
        if e["status"] != 429:
            continue
        for later in requests[i + 1 :]:
            if e["t"] + IN_FLIGHT_S <= later["t"] < e["t"] + wait_s - 0.05:
                gap = later["t"] - e["t"]
                bad.append(f"{later['method']} {later['path']} {gap:.3f} s after a 429")
    return bad


def _caught_up(low: VenueCounts, bot: BotCounts) -> bool:
    """The bot has counted at least what the venue had done at `low` (the lower bounds hold):
    answers the venue had sent may still be on their way to it."""
    return all(t.bot >= t.low for t in fault_tallies(low, bot, low))


def run_soak(
    workdir: Path, seconds: float, *, faults: str = HOSTILE, speed: float = 3600.0
) -> SoakResult:
    """The daemon against a hostile venue for `seconds`; then count, SIGTERM, reconcile, check.

    The bot keeps sending while it is counted, so the venue is read twice: before the scrape
    (what the bot must have counted once the answers in flight have arrived: polled for) and
    after it (more than the bot can have counted)."""
    venue = Venue(workdir / "venue", speed=speed, faults=faults)
    venue.workdir.mkdir(parents=True, exist_ok=True)
    venue.start()
    bot = Bot(workdir / "bot", venue)
    alive = True
    exit_code: int | None = None
    metrics = ""
    try:
        assert bot.start(), "daemon died before READY"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not bot.alive():
                alive = False
                break
            time.sleep(0.25)  # the soak's duration, by design
        venue.pause()
        fired_low = venue.state()["faults"]["fired"]
        venue.collect()
        low = VenueCounts.of(fired_low, venue.requests)
        if bot.alive():

            def scraped() -> bool:
                nonlocal metrics
                metrics = bot.metrics()
                return _caught_up(low, BotCounts.parse(metrics))

            wait_until(scraped, timeout=30, every=0.1)
        scrape_done = time.time()
        fired_high = venue.state()["faults"]["fired"]
        (workdir / "metrics.txt").write_text(metrics)
        exit_code = bot.terminate() if bot.alive() else bot.proc.returncode if bot.proc else None
        bot.reconcile()
        check = check_invariants(venue, bot.journal_path)
        injected = dict(venue.state()["faults"]["fired"])
    finally:
        bot.kill()
        venue.kill()
    (workdir / "venue-requests.json").write_text(json.dumps(venue.requests))
    # a request that reached the venue after the scrape cannot be in it
    high = VenueCounts.of(fired_high, [e for e in venue.requests if e["t"] < scrape_done])
    with sqlite3.connect(f"file:{bot.journal_path}?mode=ro", uri=True) as db:
        ticks = db.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]
    tallies = fault_tallies(low, BotCounts.parse(metrics), high)
    (workdir / "tallies.json").write_text(json.dumps([vars(t) for t in tallies], indent=1))
    return SoakResult(
        seconds=seconds,
        alive_throughout=alive,
        exit_code=exit_code,
        log_problems=log_problems(bot.log_path),
        check=check,
        injected=injected,
        tallies=tallies,
        retry_after_violations=retry_after_violations(venue.requests, 1.0),
        ticks=int(ticks),
        requests=len(venue.requests),
    )
