"""Build and run the simulator: options, `--state` persistence, and an in-process server.

`SimServer` runs uvicorn in a background thread on a free loopback port, so the demo and the tests
talk to the simulator over real HTTP exactly as the bot talks to the testnet.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn

from bot.market import session_model as sm
from bot.sim.accounts import Accounts, warm_up
from bot.sim.app import Simulator, agent_key_for, asgi
from bot.sim.clock import SimClock, ms_to_iso
from bot.sim.faults import FaultProfile, quiet_expected_disconnects
from bot.sim.market_feed import MarketFeed
from bot.sim.positions_api import market_wire
from bot.sim.positions_venue import PositionsVenue
from bot.sim.venue import TradingVenue

DEFAULT_START = "2025-01-06T00:00:00Z"


@dataclass(frozen=True)
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    seed: int = 7
    market: str = "synthetic"
    csv_interval: str = "5m"
    csv_exchange: str | None = None
    speed: float = 3600.0
    start: str = DEFAULT_START
    token_ttl_s: int = 86_400
    nonce_ttl_s: int = 300
    initial_balance: Decimal = Decimal("10000")
    builder_fee: float = 0.0
    state: Path | None = None
    faults: Path | None = None
    owner_check: bool = True
    close_status: int = 4
    """Status a positions close gives: 4 cancelled (as the live service does) or 6 early-closed."""
    example_market: bool = False
    """Add the positions document's example market `MarketXYZ123` (`alura-bot sim` does)."""


def parse_start(text: str) -> int:
    """ISO 8601 (with Z or an offset) or integer epoch milliseconds."""
    if text.isdigit():
        return int(text)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def replay_start(feed: MarketFeed, asked_ms: int | None) -> int:
    """Where a CSV replay begins: a time inside the data (refused outside it, where the market
    would be frozen), by default 200 hours in so indicators have history from the first tick."""
    first, last = feed.first_ms, feed.last_ms
    if asked_ms is None:
        return min(first + 200 * 3_600_000, first + (last - first) // 2)
    if not first <= asked_ms < last:
        raise ValueError(
            f"--start {ms_to_iso(asked_ms)} is outside the CSV data "
            f"({ms_to_iso(first)} .. {ms_to_iso(last)}); pick a time inside it"
        )
    return asked_ms


class StateStore:
    """The simulator's `--state` file: one SQLite row holding the JSON of the whole venue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), "
            "saved_at REAL NOT NULL, body TEXT NOT NULL)"
        )
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT body FROM state WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None

    def save(self, data: dict[str, Any]) -> None:
        body = json.dumps(data, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT INTO state (id, saved_at, body) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET saved_at = excluded.saved_at, body = excluded.body",
                (time.time(), body),
            )

    def close(self) -> None:
        self._db.close()


def build_simulator(
    opts: SimOptions, *, clock: SimClock | None = None, feed: MarketFeed | None = None
) -> Simulator:
    """A ready simulator; restores `opts.state` when the file holds a saved venue.

    `feed` lets tests and benchmarks share one prebuilt market between many simulators.
    """
    start_ms = parse_start(opts.start)
    if feed is not None:
        pass
    elif opts.market == "synthetic":
        feed = MarketFeed.synthetic(opts.seed, start_ms)
    elif opts.market.startswith("csv:"):
        feed = MarketFeed.from_csv_dir(
            Path(opts.market[4:]), opts.csv_interval, exchange=opts.csv_exchange
        )
        start_ms = replay_start(feed, None if opts.start == DEFAULT_START else start_ms)
    else:
        raise ValueError(f"market must be 'synthetic' or 'csv:DIR', got {opts.market!r}")
    if clock is None:
        clock = (
            SimClock.accelerated(start_ms, opts.speed)
            if opts.speed > 0
            else SimClock.stepped(start_ms)
        )
    accounts = Accounts(
        token_ttl_s=opts.token_ttl_s,
        nonce_ttl_s=opts.nonce_ttl_s,
        initial_balance=opts.initial_balance,
    )
    venue = TradingVenue(
        feed, accounts, fees=sm.FeeSchedule(builder=opts.builder_fee), seed=opts.seed
    )
    positions = PositionsVenue(
        clock,
        opts.seed,
        owner_check=opts.owner_check,
        close_status=opts.close_status,
        example_market=opts.example_market,
    )
    faults = (
        FaultProfile.from_toml(opts.faults, default_seed=opts.seed)
        if opts.faults
        else FaultProfile(seed=opts.seed)
    )
    sim = Simulator(
        clock=clock,
        feed=feed,
        accounts=accounts,
        venue=venue,
        positions=positions,
        faults=faults,
        agent_key=agent_key_for(opts.seed),
    )
    if opts.state is not None:
        store = StateStore(opts.state)
        saved = store.load()
        if saved is not None:
            sim.load_json(saved)
            # the command line says how to run now; the saved venue keeps its data only
            sim.positions.owner_check = opts.owner_check
            sim.positions.close_status = opts.close_status
        sim.on_change = lambda: store.save(sim.to_json())
    return sim


class SimServer:
    """uvicorn in a background thread; `url` is set once it listens. Use as a context manager."""

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        config = uvicorn.Config(
            asgi(sim), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        quiet_expected_disconnects()
        self._thread = threading.Thread(target=self._server.run, name="alura-sim", daemon=True)
        self.url = ""

    def start(self, timeout_s: float = 10.0) -> SimServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator did not start")
            time.sleep(0.005)
        sock = self._server.servers[0].sockets[0].getsockname()
        self.url = f"http://{sock[0]}:{sock[1]}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _WarmingServer(uvicorn.Server):
    """Once listening, loads what the first requests need (eth-account) in the background."""

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        threading.Thread(target=warm_up, name="alura-sim-warm-up", daemon=True).start()


def markets_banner(sim: Simulator, limit: int = 8) -> list[str]:
    """Start-up lines naming positions markets that take bets now (the example market first, then
    the soonest to close): the service has no market listing, so a user needs them to place a
    first bet."""
    now = sim.now_ms
    rows = [market_wire(m, now) for m in sim.positions.markets(now)]
    taking = sorted(
        (r for r in rows if r["open"]),
        key=lambda r: (r["settles_at"] is not None, str(r["settles_at"]), r["id"]),
    )
    lines = [
        f"positions markets taking bets at {ms_to_iso(now)} (market clock; all of them: "
        "GET /__sim/markets?open=true from loopback):"
    ]
    for r in taking[:limit]:
        until = "never settles" if r["settles_at"] is None else f"settles {r['settles_at']}"
        lines.append(
            f"  fixture_id {r['fixture_id']:>4}  market_address {r['address']}  "
            f"{r['home_team']} v {r['away_team']}  ({until})"
        )
    if len(taking) > limit:
        lines.append(f"  ... and {len(taking) - limit} more")
    return lines


def serve(opts: SimOptions) -> None:
    """Run in the foreground until interrupted (the `alura-bot sim` command)."""
    sim = build_simulator(opts)
    for line in markets_banner(sim):
        print(line, file=sys.stderr, flush=True)
    config = uvicorn.Config(
        asgi(sim),
        host=opts.host,
        port=opts.port,
        log_level="info",
        access_log=False,
        lifespan="off",
    )
    server = _WarmingServer(config)
    quiet_expected_disconnects()
    server.run()
    if not server.started:  # uvicorn has logged why (e.g. the port is taken)
        raise OSError(f"could not listen on {opts.host}:{opts.port}")
