"""Hostile market data to the daemon: garbage candles and signals never crash a tick, and no
decision is ever made on them.

The daemon ticks against the real simulator (stepped clock, loopback HTTP) behind a thin ASGI
layer that poisons what the venue says about BTC: one candle row with NaN, Infinity, a negative
or zero price, a 1e308 spike, high below low, rows out of order, duplicate times, a broken
timestamp, a missing field, a row that is not an object, or a whole body that is HTML or not
JSON; and signal listings with fields out of range. ETH stays clean as the control. Hypothesis
picks the poison; each example runs a fresh paper daemon (its own journal) for two ticks, the
second one with the venue honest again.

Pass: both ticks finish (journal `ticks.ok = 1`, no tick error); on the poisoned tick BTC gets
only Holds that say why (`no valid market data: ...`) and no intent, while ETH opens as usual;
every candle series the strategies saw passes validation and holds no poisoned value; every
signal the snapshot kept is in range and not about a candle that has not closed yet; on the
honest tick BTC opens.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.engine.daemon import Daemon
from bot.market.data import check_candles
from bot.metrics import Metrics
from bot.settings import Settings
from bot.sim.app import Simulator, asgi
from bot.sim.server import SimOptions, build_simulator
from tests.conftest import TEST_KEY

HOUR = 3_600_000
JOURNALS = itertools.count()
POISONED, CLEAN = "BTC", "ETH"
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CANDLES_PATH = re.compile(r"/api/indicators/candles/(?P<symbol>[A-Za-z]+)/(?P<interval>\w+)")
SIGNALS_PATH = re.compile(r"/api/indicators/signals/all/(?P<interval>\w+)")
LATEST_PATH = "/api/indicators/candles/latest"


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# --------------------------------------------------------------------------- the poison


@dataclass(frozen=True)
class Poison:
    """One way of spoiling a candle listing; `apply` gets the venue's honest rows."""

    kind: str
    row: float = 1.0  # where, as a fraction of the listing (1.0: the last, deciding row)
    field: str = "close"
    value: Any = None

    def apply(self, rows: list[dict[str, Any]]) -> bytes:
        rows = [dict(r) for r in rows]
        if not rows:
            return dumps({"candles": rows})
        i = min(len(rows) - 1, int(self.row * (len(rows) - 1)))
        j = max(1, i)
        if self.kind == "body":
            return bytes(self.value)
        if self.kind == "value":
            rows[i][self.field] = self.value
        elif self.kind == "spike":
            rows[i].update({k: 1e308 for k in ("open", "high", "low", "close")})
        elif self.kind == "high_below_low":
            rows[i]["high"], rows[i]["low"] = rows[i]["low"] * 0.9, rows[i]["high"] * 1.1
        elif self.kind == "swap" and len(rows) > 1:
            rows[j - 1], rows[j] = rows[j], rows[j - 1]
        elif self.kind == "duplicate" and len(rows) > 1:
            rows[j]["time"] = rows[j - 1]["time"]
        elif self.kind == "time":
            rows[i]["time"] = self.value
        elif self.kind == "drop":
            del rows[i][self.field]
        elif self.kind == "row":
            rows[i] = self.value
        return dumps({"candles": rows})


PRICES = ("open", "high", "low", "close")
BAD_PRICE = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, -1e308, "12x", None])
BAD_VOLUME = st.sampled_from([math.nan, math.inf, -1.0, "v", None])
BAD_TIME = st.sampled_from(
    [1e308, -1, 0, 1.5, "noon", None, 2**63, 10**20, math.nan, math.inf, 1_700_000_000]
)
BODIES = st.sampled_from(
    [
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"{",
        b"",
        b"null",
        b"{}",
        b'{"candles": []}',
        b'{"candles": "none"}',
        b'{"candles": [1, 2, 3]}',
        b"\x00\xff\xfe junk",
    ]
)
ROW = st.floats(0, 1)
POISONS = st.one_of(
    st.builds(Poison, st.just("value"), ROW, st.sampled_from(PRICES), BAD_PRICE),
    st.builds(Poison, st.just("value"), ROW, st.just("volume"), BAD_VOLUME),
    st.builds(Poison, st.just("spike"), ROW),
    st.builds(Poison, st.just("high_below_low"), ROW),
    st.builds(Poison, st.just("swap"), ROW),
    st.builds(Poison, st.just("duplicate"), ROW),
    st.builds(Poison, st.just("time"), ROW, st.just("time"), BAD_TIME),
    st.builds(Poison, st.just("drop"), ROW, st.sampled_from([*PRICES, "time"])),
    st.builds(Poison, st.just("row"), ROW, st.just(""), st.sampled_from([None, [], "x", 7, {}])),
    st.builds(Poison, st.just("body"), st.just(1.0), st.just(""), BODIES),
)


class PoisonedMarket:
    """ASGI layer over the simulator: BTC's candles (history and latest) and the signal listing
    come out spoiled while a poison is set; everything else is the simulator's honest answer."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim
        self.candles: Poison | None = None
        self.signals: Callable[[dict[str, Any]], bytes] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            body = self._poisoned(scope)
            if body is not None:
                response = Response(body, media_type="application/json")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _poisoned(self, scope: Scope) -> bytes | None:
        path: str = scope["path"]
        query = parse_qs(scope["query_string"].decode())
        feed, now = self.sim.feed, self.sim.now_ms
        if self.candles is not None:
            found = CANDLES_PATH.fullmatch(path)
            if found and found["symbol"].upper() == POISONED:
                limit = int(query.get("limit", ["200"])[0])
                honest = feed.candles_json(POISONED, found["interval"], now, limit, None, None)
                return self.candles.apply(honest["candles"])
            if path == LATEST_PATH:
                interval = query.get("interval", ["1h"])[0]
                latest = {s: feed.latest_json(s, interval, now) for s in feed.symbols}
                spoiled = self.candles.apply([latest[POISONED]])
                try:
                    latest[POISONED] = json.loads(spoiled)["candles"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    return spoiled
                return dumps(latest)
        found = SIGNALS_PATH.fullmatch(path)
        if self.signals is not None and found:
            interval = found["interval"]
            honest = {
                "interval": interval,
                "signals": [feed.signal_json(s, interval, now) for s in feed.symbols],
            }
            return self.signals(honest)
        return None


@dataclass
class Venue:
    url: str
    sim: Simulator
    market: PoisonedMarket


@pytest.fixture
def hostile_venue(sim_feed: Any, serve_asgi: Callable[[Any], str]) -> Iterator[Venue]:
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    market = PoisonedMarket(asgi(sim), sim)
    yield Venue(serve_asgi(market), sim, market)


# --------------------------------------------------------------------------- the daemon


def daemon_settings(venue: Venue, journal: Path, strategies_dir: Path) -> Settings:
    return Settings(
        base_url=venue.url,
        mode="paper",
        journal_path=journal,
        strategies_dir=strategies_dir,
        strategies=[
            {"name": "always_long", "assets": [POISONED, CLEAN], "params": {"interval": "1h"}}
        ],
        risk={"cooldown_s": 0},
        http={"rate_limit_per_s": 1000, "rate_limit_burst": 100, "retry_attempts": 1},
        engine={"lookback_candles": 200},
    )


@dataclass
class TickSeen:
    ok: bool
    errors: list[str]
    decisions: list[tuple[str, str, str, str]]  # (asset, action, verdict, reason)
    intents: list[str]  # assets
    snapshot: Any


async def two_ticks(
    venue: Venue, journal: Path, strategies_dir: Path, poison: Callable[[], None]
) -> tuple[TickSeen, TickSeen]:
    """A fresh paper daemon: one tick with the poison set, one with the venue honest again."""
    daemon = Daemon(
        daemon_settings(venue, journal, strategies_dir),
        key=SecretStr(TEST_KEY),
        live=False,
        clock=venue.sim.clock,
        metrics=Metrics(),
    )
    daemon.build()
    assert daemon.parts is not None
    engine, j = daemon.parts.engine, daemon.parts.journal
    seen: list[TickSeen] = []
    try:
        await daemon._reconcile_unlocked("test start-up")
        for poisoned in (True, False):
            if poisoned:
                poison()
            else:
                venue.market.candles = venue.market.signals = None
            venue.sim.clock.advance(HOUR)
            before = j.conn.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0]
            report = await engine.tick("1h")
            assert report is not None
            tick = j.conn.execute(
                "SELECT ok, error FROM ticks WHERE id = ?", (report.tick_id,)
            ).fetchone()
            rows = j.conn.execute(
                "SELECT id, asset, action, verdict, reason FROM decisions WHERE id > ?",
                (before,),
            ).fetchall()
            ids = {r[0] for r in rows}
            intents = [i.asset for i in j.intents() if i.decision_id in ids]
            seen.append(
                TickSeen(
                    ok=bool(tick[0]),
                    errors=list(report.errors) + ([tick[1]] if tick[1] else []),
                    decisions=[(r[1], r[2], r[3], r[4]) for r in rows],
                    intents=[a for a in intents if a],
                    snapshot=engine.last_snapshot,
                )
            )
    finally:
        await daemon.parts.client.aclose()
        j.close()
    return seen[0], seen[1]


def assert_snapshot_validated(snapshot: Any, now_ms: int) -> None:
    """What strategies saw: validated candle series, in-range signals about closed candles."""
    for asset, candles in snapshot.candles.items():
        check_candles(candles, allow_gaps=True, source=f"snapshot {asset}")
        for name in (*PRICES, "volume"):
            column = getattr(candles, name)
            assert all(math.isfinite(x) for x in column), f"{asset} {name} not finite"
        assert max(candles.high) < 1e300, f"{asset}: a 1e308 spike reached the strategies"
    for asset, sig in snapshot.signals.items():
        assert 0 <= sig.strength <= 1, (asset, sig.strength)
        assert all(math.isfinite(v) for v in sig.indicators.values()), asset
        assert sig.candle_time <= now_ms, f"{asset}: a signal about a candle not closed yet"


def assert_healthy(tick: TickSeen) -> None:
    assert tick.ok and not tick.errors, tick.errors
    assert (CLEAN, "open_quick", "accepted") in [d[:3] for d in tick.decisions], tick.decisions


def run(venue: Venue, tmp_path: Path, strategies_dir: Path, poison: Callable[[], None]) -> Any:
    journal = tmp_path / f"journal-{next(JOURNALS)}.sqlite"
    return asyncio.run(two_ticks(venue, journal, strategies_dir, poison))


def test_poisoned_candles_hold_the_asset_and_the_loop_goes_on(
    hostile_venue: Venue, tmp_path: Path, strategies_dir: Path
) -> None:
    venue = hostile_venue

    @EXAMPLES
    @given(poison=POISONS)
    def prop(poison: Poison) -> None:
        note(f"poison: {poison!r}")

        def set_poison() -> None:
            venue.market.candles = poison

        bad, good = run(venue, tmp_path, strategies_dir, set_poison)
        assert_healthy(bad)
        btc = [d for d in bad.decisions if d[0] == POISONED]
        assert btc, "the poisoned asset got no decision at all"
        for asset, action, verdict, reason in btc:
            assert (action, verdict) == ("hold", "hold"), (asset, action, verdict, reason)
            assert reason.startswith("no valid market data: "), reason
        assert POISONED not in bad.intents
        assert POISONED not in bad.snapshot.candles
        assert POISONED in bad.snapshot.problems
        assert_snapshot_validated(bad.snapshot, venue.sim.now_ms - HOUR)
        # the venue is honest again: the loop kept going and BTC trades
        assert good.ok and not good.errors, good.errors
        assert POISONED in good.intents

    prop()


@st.composite
def poisoned_signals(draw: st.DrawFn) -> Callable[[dict[str, Any]], bytes]:
    """A listing whose BTC entry has one field out of range, or a body that is not a listing."""
    field = draw(
        st.sampled_from(
            ["strength", "signal", "indicators", "candleTime", "symbol", "body", "list"]
        )
    )
    values = {
        "strength": st.sampled_from([math.nan, math.inf, -0.5, 1.5, 1e308, "strong", None]),
        "signal": st.sampled_from(["MOON", "", None, 1, "buy!"]),
        "indicators": st.sampled_from(
            [{"rsi": math.nan}, {"close": math.inf}, {"rsi": "high"}, [1, 2], "x"]
        ),
        "candleTime": st.sampled_from(["soon", None, 1.5, 2**70, "FUTURE"]),
        "symbol": st.sampled_from([None, 7, ["BTC"]]),
        "body": st.sampled_from([b"<html>oops</html>", b"{", b"", b"[]", b'{"signals": 5}']),
        "list": st.sampled_from([None, "x", 3, {"a": 1}]),
    }
    value = draw(values[field])

    def apply(listing: dict[str, Any]) -> bytes:
        if field == "body":
            return bytes(value)
        signals = listing["signals"]
        for sig in signals:
            if sig["symbol"] == POISONED:
                if field == "list":
                    signals[signals.index(sig)] = value
                elif field == "candleTime" and value == "FUTURE":
                    sig["candleTime"] = sig["candleTime"] + 48 * HOUR
                else:
                    sig[field] = value
                break
        return dumps(listing)

    return apply


def test_poisoned_signals_are_dropped_and_the_loop_goes_on(
    hostile_venue: Venue, tmp_path: Path, strategies_dir: Path
) -> None:
    venue = hostile_venue

    @EXAMPLES
    @given(poison=poisoned_signals())
    def prop(poison: Callable[[dict[str, Any]], bytes]) -> None:
        def set_poison() -> None:
            venue.market.signals = poison

        bad, good = run(venue, tmp_path, strategies_dir, set_poison)
        assert_healthy(bad)
        assert_snapshot_validated(bad.snapshot, venue.sim.now_ms - HOUR)
        assert good.ok and not good.errors, good.errors

    prop()


def test_garbage_in_the_latest_candle_falls_back_to_a_checked_history(
    hostile_venue: Venue, tmp_path: Path, strategies_dir: Path
) -> None:
    venue = hostile_venue
    """Steady state reads `candles/latest`; a spoiled latest row for BTC is not appended to the
    cache: BTC's history is fetched (and checked) on its own, and only the venue's honest
    history reaches the strategy."""

    async def scenario() -> None:
        daemon = Daemon(
            daemon_settings(venue, tmp_path / "latest.sqlite", strategies_dir),
            key=SecretStr(TEST_KEY),
            live=False,
            clock=venue.sim.clock,
            metrics=Metrics(),
        )
        daemon.build()
        assert daemon.parts is not None
        engine = daemon.parts.engine
        try:
            await daemon._reconcile_unlocked("test start-up")
            venue.sim.clock.advance(HOUR)
            assert (await engine.tick("1h")) is not None  # fills the cache
            seen: list[str] = []
            original = venue.market._poisoned

            def latest_only(scope: Scope) -> bytes | None:
                if scope["path"] == LATEST_PATH:
                    seen.append("latest")
                    rows = venue.sim.feed.latest_json(POISONED, "1h", venue.sim.now_ms)
                    body = {
                        s: venue.sim.feed.latest_json(s, "1h", venue.sim.now_ms)
                        for s in venue.sim.feed.symbols
                    }
                    body[POISONED] = {**rows, "high": math.nan}
                    return dumps(body)
                return original(scope)

            venue.market._poisoned = latest_only  # type: ignore[method-assign]
            venue.sim.clock.advance(HOUR)
            report = await engine.tick("1h")
            assert report is not None and not report.errors
            assert seen == ["latest"]
            snap = engine.last_snapshot
            assert snap is not None and POISONED in snap.candles
            assert_snapshot_validated(snap, venue.sim.now_ms)
            honest = venue.sim.feed.candles_json(POISONED, "1h", venue.sim.now_ms, 1, None, None)
            assert int(snap.candles[POISONED].ts[-1]) == honest["candles"][0]["time"]
        finally:
            await daemon.parts.client.aclose()
            daemon.parts.journal.close()

    asyncio.run(scenario())
