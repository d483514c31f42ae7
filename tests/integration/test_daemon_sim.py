"""The daemon against the real simulator over loopback, ticks driven on a stepped market clock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.api.alura import AluraClient
from bot.api.errors import ServerError
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
    ok, error = daemon.parts.journal.conn.execute("SELECT ok, error FROM ticks").fetchone()
    assert ok == 1 and "strategy broken failed: RuntimeError: boom" in error  # journaled


async def test_failing_position_manager_does_not_stop_the_tick(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon(
        strategies=[
            {"name": "broken_manager"},
            {"name": "always_long", "assets": ["ETH"], "params": {"interval": "1h"}},
        ]
    )
    sim_server.sim.clock.advance(HOUR)
    report = await daemon.parts.engine.tick("1h")
    assert any("manager broken_manager failed" in e for e in report.errors), report.errors
    assert [s["asset"] for s in venue_sessions(sim_server)] == ["ETH"]
    ok = daemon.parts.journal.conn.execute("SELECT ok FROM ticks").fetchall()
    assert ok == [(1,)]


async def test_each_decision_and_each_money_moving_request_is_one_log_line(
    make_daemon: Any, sim_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = await make_daemon(
        strategies=[
            {
                "name": "always_long",
                "assets": ["ETH"],
                "params": {"interval": "1h", "exit_every": 2},
            }
        ],
        risk={"max_open_sessions": 1},
    )
    caplog.set_level("INFO", logger="bot")
    for _ in range(4):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    rows = daemon.parts.journal.conn.execute(
        "SELECT id, action, verdict FROM decisions WHERE action != 'hold' ORDER BY id"
    ).fetchall()
    logged = [r for r in caplog.records if r.getMessage().startswith("decision ")]
    assert [getattr(r, "decision_id", None) for r in logged] == [r[0] for r in rows]
    intents = daemon.parts.journal.intents()
    sent = [r for r in caplog.records if getattr(r, "intent", None)]
    assert sorted(r.intent for r in sent) == sorted(i.id for i in intents)  # type: ignore[attr-defined]
    assert {i.kind for i in intents} >= {"open_quick", "close_session"}


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


async def test_candle_history_is_bounded_and_stays_current(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon(
        strategies=[{"name": "always_long", "assets": ["BTC"], "params": {"interval": "1h"}}],
        engine={"lookback_candles": 50, "history_candles": 53},
    )
    lengths = []
    for _ in range(12):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
        series = daemon.parts.engine.market.cache[("BTC", "1h")]
        lengths.append(len(series))
        assert (
            int(series.ts[-1]) + HOUR
            <= sim_server.sim.clock.now_ms()
            < int(series.ts[-1]) + 2 * HOUR
        )
        assert (series.ts[1:] - series.ts[:-1] == HOUR).all()
    assert max(lengths) == 53 and min(lengths) == 50
    assert 50 in lengths[3:], "never cut back"


async def test_reconcile_takes_a_missing_trade_id_from_current_trade(
    make_daemon: Any, sim_server: Any
) -> None:
    from dataclasses import replace

    daemon = await make_daemon(
        strategies=[{"name": "always_long", "assets": ["BTC"], "params": {"interval": "1h"}}]
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    journal = daemon.parts.journal
    (row,) = journal.open_sessions()
    assert row.trade_id
    journal.upsert_session(replace(row, trade_id=None))  # adopted from a listing without one

    def asked() -> int:
        return sum(
            1 for e in sim_server.sim.requests.entries if e["path"].endswith("/current-trade")
        )

    before = asked()
    await daemon.reconcile("test")
    assert journal.session(row.id).trade_id == row.trade_id
    assert asked() == before + 1
    await daemon.reconcile("test")
    assert asked() == before + 1, "current-trade asked although no trade id was missing"


async def test_api_errors_are_journaled_with_their_endpoint_template(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon()
    sim_server.sim.faults = FaultProfile.from_mapping(
        {"rule": [{"kind": "status", "status": 503, "match": "GET /trading-sessions/*/logs"}]}
    )
    await daemon.parts.engine.tick("1h")
    sid = daemon.parts.journal.open_sessions()[0].id
    with pytest.raises(ServerError):
        await daemon.parts.client.session_logs(sid)
    sim_server.sim.faults = FaultProfile()
    rows = daemon.parts.journal.api_errors()
    assert rows and {r["endpoint"] for r in rows} == {"/trading-sessions/{session_id}/logs"}
    assert {(r["method"], r["status"], r["kind"]) for r in rows} == {("GET", 503, "ServerError")}
    assert sid not in str(rows)


async def test_stats_job_journals_a_pnl_snapshot_equal_to_the_metrics(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon()
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    await daemon.stats()
    (snap,) = daemon.parts.journal.pnl_snapshots()
    text = daemon.metrics.exposition().decode()
    assert f"alura_bot_equity_usd {float(snap['equity'])}" in text
    assert snap["open_sessions"] == len(daemon.parts.journal.open_sessions()) == 2
    assert snap["ts"] == sim_server.sim.clock.now_ms()


async def test_a_signals_outage_still_brings_fresh_candles_and_opens_nothing(
    make_daemon: Any, sim_server: Any
) -> None:
    from bot.sim.faults import FaultProfile

    daemon = await make_daemon(
        strategies=[{"name": "signal_follower", "assets": ["BTC"], "params": {"interval": "1h"}}],
        http={"retry_attempts": 1},
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    sim_server.sim.faults = FaultProfile.from_mapping(
        {"rule": [{"kind": "status", "status": 503, "match": "GET /api/indicators/signals/*"}]}
    )
    opened_before = len(daemon.parts.journal.open_sessions())
    sim_server.sim.clock.advance(HOUR)
    report = await daemon.parts.engine.tick("1h")
    snapshot = daemon.parts.engine.last_snapshot
    assert snapshot.problems["*signals"].startswith("signals unavailable")
    assert int(snapshot.candles["BTC"].ts[-1]) == sim_server.sim.clock.now_ms() - HOUR
    assert report.opened == [] and len(daemon.parts.journal.open_sessions()) == opened_before


async def test_live_ticks_ask_for_the_account_while_the_market_snapshot_is_in_flight(
    make_daemon: Any, sim_server: Any
) -> None:
    import asyncio

    daemon = await make_daemon()
    engine = daemon.parts.engine
    account_asked = asyncio.Event()
    real_account, real_snapshot = engine.executor.account, engine.market.snapshot

    async def account(now_ms: int) -> Any:
        account_asked.set()
        return await real_account(now_ms)

    async def snapshot(*args: Any) -> Any:
        await asyncio.wait_for(account_asked.wait(), 10)  # sequential code never gets here
        return await real_snapshot(*args)

    engine.executor.account, engine.market.snapshot = account, snapshot
    sim_server.sim.clock.advance(HOUR)
    report = await engine.tick("1h")
    assert report.errors == [] and report.opened


async def test_paper_ticks_read_the_account_after_the_snapshot_fills(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon(live=False)
    engine = daemon.parts.engine
    order: list[str] = []
    real_account, real_fills = engine.executor.account, engine.executor.on_snapshot

    async def account(now_ms: int) -> Any:
        order.append("account")
        return await real_account(now_ms)

    async def on_snapshot(snapshot: Any) -> Any:
        order.append("fills")
        return await real_fills(snapshot)

    engine.executor.account, engine.executor.on_snapshot = account, on_snapshot
    sim_server.sim.clock.advance(HOUR)
    await engine.tick("1h")
    assert order == ["fills", "account"]


async def test_a_venue_error_that_ends_a_tick_is_one_warning_not_a_traceback(
    make_daemon: Any, sim_server: Any, caplog: Any
) -> None:
    import logging

    from bot.sim.faults import FaultProfile

    daemon = await make_daemon(http={"retry_attempts": 1})
    sim_server.sim.faults = FaultProfile.from_mapping(
        {"rule": [{"kind": "status", "status": 502, "match": "GET /trading-sessions/active"}]}
    )
    sim_server.sim.clock.advance(HOUR)
    with caplog.at_level(logging.WARNING, logger="bot.engine"):
        report = await daemon.parts.engine.tick("1h")
    failed = [r for r in caplog.records if r.getMessage().startswith("tick failed")]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert failed[0].exc_info is None and "502" in failed[0].getMessage()
    assert report.errors and report.opened == []


async def test_a_hung_strategy_costs_only_its_own_decisions_and_is_skipped_while_it_hangs(
    make_daemon: Any, sim_server: Any
) -> None:
    import asyncio

    daemon = await make_daemon(
        strategies=[
            {"name": "stuck", "assets": ["BTC"], "params": {"interval": "1h"}},
            {"name": "always_long", "assets": ["ETH"], "params": {"interval": "1h"}},
        ],
        engine={"strategy_timeout_s": 0.2},
    )
    engine = daemon.parts.engine
    stuck = next(s for s in engine.slots if s.name == "stuck")
    try:
        sim_server.sim.clock.advance(HOUR)
        first = await engine.tick("1h")
        assert [s["asset"] for s in venue_sessions(sim_server)] == ["ETH"]
        assert any("stuck failed: TimeoutError" in e for e in first.errors), first.errors
        sim_server.sim.clock.advance(HOUR)
        second = await engine.tick("1h")
        assert any("still running from an earlier tick" in e for e in second.errors)
    finally:
        type(stuck.strategy).gate.set()
    for _ in range(200):  # the released thread returns; bounded wait for that condition
        if not stuck.worker.busy:
            break
        await asyncio.sleep(0.01)
    sim_server.sim.clock.advance(HOUR)
    third = await engine.tick("1h")
    assert third.errors == []
    errors = [r[0] for r in daemon.parts.journal.conn.execute("SELECT error FROM ticks")]
    assert "stuck" in errors[0] and "stuck" in errors[1] and errors[2] is None


async def test_a_decision_is_journaled_with_the_candle_and_indicator_values_it_was_made_on(
    make_daemon: Any, sim_server: Any
) -> None:
    import json

    daemon = await make_daemon(
        strategies=[{"name": "always_long", "assets": ["ETH"], "params": {"interval": "1h"}}]
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    (raw,) = daemon.parts.journal.conn.execute(
        "SELECT inputs FROM decisions WHERE action = 'open_quick'"
    ).fetchone()
    inputs = json.loads(raw)
    candles = daemon.parts.engine.last_snapshot.candles["ETH"]
    assert inputs["candle_time"] == int(candles.ts[-1])
    assert inputs["close"] == float(candles.close[-1])
    assert inputs["indicators"] == {"last_close": float(candles.close[-1])}
    assert inputs["signal"]["signal"] in {"BUY", "SELL", "NEUTRAL"}


async def test_after_sigterm_no_new_request_starts_in_the_running_tick(
    make_daemon: Any, sim_server: Any
) -> None:
    daemon = await make_daemon()
    engine = daemon.parts.engine
    send = engine.executor.open

    async def open_then_sigterm(*args: Any, **kw: Any) -> Any:
        engine.stopping = True  # SIGTERM arrives while the first open is in flight
        return await send(*args, **kw)

    engine.executor.open = open_then_sigterm
    sim_server.sim.clock.advance(HOUR)
    report = await engine._tick("1h")
    assert len(venue_sessions(sim_server)) == 1
    assert len(daemon.parts.journal.intents()) == 1
    assert "shutting down: 1 accepted decision(s) not sent" in report.errors


async def test_readiness_drops_while_the_venue_refuses_the_login_and_returns_after(
    make_daemon: Any, sim_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.api.errors import Unauthorized

    daemon = await make_daemon()
    daemon.ready = True
    assert daemon.is_ready() == (True, "no tick yet")

    async def refused(*args: Any, **kw: Any) -> Any:
        raise Unauthorized("Signature does not match address", status=401)

    with monkeypatch.context() as m:
        m.setattr("bot.engine.daemon.reconcile", refused)
        await daemon._reconcile_unlocked("periodic")
        assert daemon.is_ready() == (False, "not authenticated")
    await daemon._reconcile_unlocked("periodic")
    assert daemon.is_ready() == (True, "no tick yet")


async def test_a_close_answered_with_an_unreadable_amount_is_reconciled_not_failed(
    make_daemon: Any, sim_server: Any
) -> None:
    from bot.api.models import Generic

    daemon = await make_daemon(
        strategies=[
            {
                "name": "always_long",
                "assets": ["XRP"],
                "params": {"interval": "1h", "exit_every": 2},
            }
        ]
    )
    client = daemon.parts.client
    real = client.close_trade

    async def garbled(trade_id: str) -> Any:
        applied = await real(trade_id)  # the venue closes the trade; its answer arrives mangled
        return Generic.model_validate({**applied.model_dump(mode="json"), "realizedPnl": "abc"})

    client.close_trade = garbled
    for _ in range(6):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    closes = [i for i in daemon.parts.journal.intents() if i.kind == "close_session"]
    assert closes and all(i.state == "confirmed" for i in closes), [i.state for i in closes]
    for intent in closes:
        row = daemon.parts.journal.session(intent.session_id)
        venue = sim_server.sim.venue.sessions[row.id]
        assert row.status == "closed" and not venue.state.is_active
    assert venue_sessions(sim_server, active_only=False)  # nothing was opened twice either
