"""The daemon against the real simulator over loopback, ticks driven on a stepped market clock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.api.alura import AluraClient
from bot.api.models import QuickSessionRequest
from bot.sim.faults import FaultProfile

HOUR = 3_600_000


def venue_sessions(sim_server: Any, active_only: bool = True) -> list[dict[str, Any]]:
    sessions = sim_server.sim.venue.sessions.values()
    return [
        {"id": s.id, "asset": s.asset} for s in sessions if s.state.is_active or not active_only
    ]


def decisions(daemon: Any) -> list[tuple[str, str, str, str | None]]:
    rows = daemon.parts.journal.conn.execute(
        "SELECT strategy, asset, verdict, veto_reason FROM decisions ORDER BY id"
    ).fetchall()
    return [tuple(r) for r in rows]


async def test_signals_lead_to_sessions_on_the_venue(make_daemon: Any, sim_server: Any) -> None:
    daemon = await make_daemon()
    sim_server.sim.clock.advance(HOUR)
    report = await daemon.parts.engine.tick("1h")
    assert len(report.opened) == 2
    assert sorted(s["asset"] for s in venue_sessions(sim_server)) == ["BTC", "ETH"]
    journal = daemon.parts.journal
    assert {r.id for r in journal.open_sessions()} == {s["id"] for s in venue_sessions(sim_server)}
    assert [i.state for i in journal.intents()] == ["confirmed", "confirmed"]


async def test_vetoes_are_journaled_with_reason(make_daemon: Any, sim_server: Any) -> None:
    daemon = await make_daemon(risk={"max_open_sessions": 1})
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    rows = decisions(daemon)
    assert ("always_long", "BTC", "accepted", None) in rows
    assert ("always_long", "ETH", "vetoed", "max_open_sessions") in rows
    assert len(venue_sessions(sim_server)) == 1
    text = daemon.metrics.exposition().decode()
    assert 'alura_bot_vetoes_total{reason="max_open_sessions"} 1.0' in text


async def test_second_tick_does_not_reopen_an_open_asset(make_daemon: Any, sim_server: Any) -> None:
    daemon = await make_daemon()
    for _ in range(3):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    assert len(venue_sessions(sim_server, active_only=False)) == 2


async def test_duplicate_asset_is_reconciled_not_repeated(
    make_daemon: Any, sim_server: Any, sim_client: AluraClient
) -> None:
    daemon = await make_daemon()
    outside = await sim_client.create_quick_session(
        QuickSessionRequest(budget=Decimal(50), profit_target=Decimal(2), asset_index=0)
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    btc = [s for s in venue_sessions(sim_server) if s["asset"] == "BTC"]
    assert [s["id"] for s in btc] == [outside.id]
    intent = next(i for i in daemon.parts.journal.intents() if i.asset == "BTC")
    assert intent.state == "confirmed" and intent.session_id == outside.id
    creates = [
        e
        for e in sim_server.sim.requests.entries
        if e["method"] == "POST" and e["path"] == "/trading-sessions"
    ]
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    creates_after = [
        e
        for e in sim_server.sim.requests.entries
        if e["method"] == "POST" and e["path"] == "/trading-sessions"
    ]
    assert len(creates_after) == len(creates)


async def test_lost_response_leads_to_adoption_not_duplicate(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon(
        strategies=[{"name": "always_long", "assets": ["SOL"], "params": {"interval": "1h"}}]
    )
    sim_server.sim.faults = FaultProfile.from_mapping(
        {"rule": [{"kind": "lost_response", "match": "POST /trading-sessions"}]}
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    sim_server.sim.faults = FaultProfile()
    on_venue = venue_sessions(sim_server)
    assert len(on_venue) == 1
    intent = daemon.parts.journal.intents()[0]
    assert intent.state == "confirmed" and intent.session_id == on_venue[0]["id"]
    for _ in range(2):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    assert len(venue_sessions(sim_server, active_only=False)) == 1


async def test_restart_mid_flight_reconciles(
    make_daemon: Any, sim_server: Any, sim_client: AluraClient, tmp_path: Any
) -> None:
    """A crash after the intent was sent: the next start adopts what the venue has, and fails
    what it does not — nothing is sent again."""
    first = await make_daemon()
    journal = first.parts.journal
    sent = journal.create_intent(
        "open_quick",
        asset="BTC",
        venue="sessions",
        request={"budget": 50},
        now_ms=sim_server.sim.clock.now_ms(),
    )
    journal.mark_sent(sent, sim_server.sim.clock.now_ms())
    never = journal.create_intent(
        "open_quick",
        asset="ETH",
        venue="sessions",
        request={"budget": 50},
        now_ms=sim_server.sim.clock.now_ms(),
    )
    applied = await sim_client.create_quick_session(
        QuickSessionRequest(budget=Decimal(50), profit_target=Decimal(2), asset_index=0)
    )
    second = await make_daemon()
    j2 = second.parts.journal
    assert j2.intent(sent).state == "confirmed" and j2.intent(sent).session_id == applied.id
    assert j2.intent(never).state == "failed"
    assert j2.unresolved_intents() == []


async def test_closed_by_the_venue_is_closed_in_the_journal_with_its_pnl(
    make_daemon: Any, sim_server: Any, sim_client: AluraClient
) -> None:
    daemon = await make_daemon(
        strategies=[{"name": "always_long", "assets": ["DOGE"], "params": {"interval": "1h"}}]
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    sid = daemon.parts.journal.open_sessions()[0].id
    sim_server.sim.clock.advance(3 * HOUR)
    trade = sim_server.sim.venue.sessions[sid].trade_id
    await sim_client.close_trade(trade)
    await daemon._reconcile_unlocked("test")
    row = daemon.parts.journal.session(sid)
    venue_state = sim_server.sim.venue.sessions[sid].state
    assert row.status == "closed"
    assert row.realized_pnl == Decimal(str(round(venue_state.net_realised, 6)))


async def test_exit_signal_closes_the_session(make_daemon: Any, sim_server: Any) -> None:
    daemon = await make_daemon(
        strategies=[
            {
                "name": "always_long",
                "assets": ["XRP"],
                "params": {"interval": "1h", "exit_every": 2},
            }
        ]
    )
    closed = []
    for _ in range(6):
        sim_server.sim.clock.advance(HOUR)
        report = await daemon.parts.engine.tick("1h")
        closed += report.closed
    assert closed
    assert all(daemon.parts.journal.session(s).status == "closed" for s in closed)
    kinds = [i.kind for i in daemon.parts.journal.intents()]
    assert "close_session" in kinds


async def test_kill_switch_vetoes_opening_within_one_tick(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon()
    daemon.parts.journal.set_paused(True)
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    assert venue_sessions(sim_server) == []
    assert {r[3] for r in decisions(daemon)} == {"paused"}


async def test_failing_strategy_does_not_block_the_others(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon(
        strategies=[
            {"name": "broken", "assets": ["BTC"], "params": {"interval": "1h"}},
            {"name": "always_long", "assets": ["ETH"], "params": {"interval": "1h"}},
        ]
    )
    sim_server.sim.clock.advance(HOUR)
    report = await daemon.parts.engine.tick("1h")
    assert any("broken" in e for e in report.errors)
    assert [s["asset"] for s in venue_sessions(sim_server)] == ["ETH"]


async def test_paper_mode_sends_nothing_that_moves_money(make_daemon: Any, sim_server: Any) -> None:
    daemon = await make_daemon(live=False)
    for _ in range(4):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    moving = [e for e in sim_server.sim.requests.entries if e["method"] == "POST"]
    assert moving == []
    rows = daemon.parts.journal.sessions()
    assert {r.asset for r in rows} == {"BTC", "ETH"} and {r.mode for r in rows} == {"paper"}


async def test_metric_values_equal_the_journal(make_daemon: Any, sim_server: Any) -> None:
    daemon = await make_daemon(
        strategies=[
            {
                "name": "always_long",
                "assets": ["BTC", "ETH"],
                "params": {"interval": "1h", "exit_every": 3},
            }
        ]
    )
    for _ in range(8):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    await daemon.stats()
    journal = daemon.parts.journal
    assert journal.realized_pnl_total() != 0
    metrics = daemon.metrics
    assert metrics.realized_pnl._value.get() == float(journal.realized_pnl_total())
    text = metrics.exposition().decode()
    opened = sum(1 for i in journal.intents() if i.kind == "open_quick")
    accepted = [
        line
        for line in text.splitlines()
        if line.startswith('alura_bot_decisions_total{action="open_quick"')
        and 'verdict="accepted"' in line
    ]
    assert sum(float(line.split()[-1]) for line in accepted) == opened
    labelled = [line for line in text.splitlines() if 'endpoint="' in line]
    assert labelled and not [line for line in labelled if "/s0" in line or "/t0" in line]


async def test_steady_ticks_extend_candles_with_one_request(
    make_daemon: Any, sim_server: Any
) -> None:
    assets = ["BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"]
    daemon = await make_daemon(
        strategies=[{"name": "always_long", "assets": assets, "params": {"interval": "1h"}}],
        risk={"max_open_sessions": 1},
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    before = len(sim_server.sim.requests.entries)
    for _ in range(3):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    paths = [e["path"] for e in list(sim_server.sim.requests.entries)[before:]]
    assert paths.count("/api/indicators/candles/latest") == 3
    assert not [p for p in paths if p.startswith("/api/indicators/candles/") and "latest" not in p]
    cache = daemon.parts.engine.market.cache
    for asset in assets:
        mine = cache[(asset, "1h")]
        fresh = await daemon.parts.client.candles(asset, "1h", limit=len(mine))
        assert [c.time for c in fresh.candles] == mine.ts.tolist()
        assert [c.close for c in fresh.candles] == mine.close.tolist()
