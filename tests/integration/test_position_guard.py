"""position_guard on user positions: closes what meets its rule, only our own, never in paper."""

from __future__ import annotations

from typing import Any

WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
OTHER = "11111111111111111111111111111111"
HOUR = 3_600_000
GUARD = [
    {
        "name": "position_guard",
        "params": {"positions_max_age_h": 2, "close_on_market_change": False},
    },
    {"name": "always_long", "assets": ["BTC"], "params": {"interval": "1h"}},
]


def place(sim_server: Any, wallet: str) -> int:
    venue = sim_server.sim.positions
    now = sim_server.sim.clock.now_ms()
    market = max(venue.markets(), key=lambda m: m.settles_at_ms)
    assert market.settles_at_ms > now + 10 * HOUR
    return int(
        venue.open_position(
            wallet, market.address, selected_team=1, amount=10**9, multiplier_bps=12000
        ).id
    )


async def test_guard_closes_a_position_past_its_time_stop(
    make_daemon: Any, sim_server: Any
) -> None:
    sim_server.sim.positions.owner_check = False
    mine, theirs = place(sim_server, WALLET), place(sim_server, OTHER)
    daemon = await make_daemon(
        strategies=GUARD, risk={"max_open_sessions": 1}, positions_wallet=WALLET
    )
    sim_server.sim.clock.advance(HOUR)
    first = await daemon.parts.engine.tick("1h")
    assert f"position:{mine}" not in first.closed
    sim_server.sim.clock.advance(2 * HOUR)
    report = await daemon.parts.engine.tick("1h")
    assert f"position:{mine}" in report.closed
    venue = sim_server.sim.positions
    assert venue.get_position(mine).status != 1
    assert venue.get_position(theirs).status == 1
    intent = next(i for i in daemon.parts.journal.intents() if i.kind == "positions_close")
    assert intent.state == "confirmed" and intent.request["position_id"] == mine
    await daemon.stats()
    text = daemon.metrics.exposition().decode()
    assert "alura_bot_positions_open 0.0" in text


async def test_paper_mode_closes_no_position(make_daemon: Any, sim_server: Any) -> None:
    mine = place(sim_server, WALLET)
    daemon = await make_daemon(strategies=GUARD, live=False, positions_wallet=WALLET)
    for _ in range(4):
        sim_server.sim.clock.advance(HOUR)
        await daemon.parts.engine.tick("1h")
    assert sim_server.sim.positions.get_position(mine).status == 1
    assert [i for i in daemon.parts.journal.intents() if i.kind == "positions_close"] == []
    decided = daemon.parts.journal.conn.execute(
        "SELECT COUNT(*) FROM decisions WHERE action='close_position'"
    ).fetchone()[0]
    assert decided >= 1


def place_on(sim_server: Any, *, status: int) -> tuple[int, Any]:
    """A position of ours on a market that has `status` now and is far from settling."""
    venue = sim_server.sim.positions
    now = sim_server.sim.clock.now_ms()
    market = min(
        (m for m in venue.markets() if m.status == status and m.settles_at_ms > now + HOUR),
        key=lambda m: m.starts_at_ms,
    )
    pid = venue.open_position(
        WALLET, market.address, selected_team=1, amount=10**9, multiplier_bps=12000
    ).id
    return int(pid), market


MARKET_GUARD = [
    {"name": "position_guard", "params": {"market_transitions": ["1->2"]}},
    {"name": "always_long", "assets": ["BTC"], "params": {"interval": "1h"}},
]


async def test_guard_closes_when_the_market_goes_live_after_it_was_first_seen_open(
    make_daemon: Any, sim_server: Any
) -> None:
    pid, market = place_on(sim_server, status=1)
    daemon = await make_daemon(strategies=MARKET_GUARD, positions_wallet=WALLET)
    first = await daemon.parts.engine.tick("1h")
    assert f"position:{pid}" not in first.closed
    assert daemon.parts.journal.first_market_status(str(pid)) == 1
    sim_server.sim.clock.set(market.starts_at_ms + 1)
    report = await daemon.parts.engine.tick("1h")
    assert f"position:{pid}" in report.closed
    assert sim_server.sim.positions.get_position(pid).status != 1
    reason = daemon.parts.journal.conn.execute(
        "SELECT reason FROM decisions WHERE action='close_position'"
    ).fetchone()[0]
    assert reason == "market status changed 1 -> 2"


async def test_guard_keeps_a_position_first_seen_on_a_market_already_live(
    make_daemon: Any, sim_server: Any
) -> None:
    _, market = place_on(sim_server, status=1)
    sim_server.sim.clock.set(market.starts_at_ms + 1)
    pid, _ = place_on(sim_server, status=2)
    daemon = await make_daemon(strategies=MARKET_GUARD, positions_wallet=WALLET)
    for _ in range(2):
        report = await daemon.parts.engine.tick("1h")
        assert f"position:{pid}" not in report.closed
    assert daemon.parts.journal.first_market_status(str(pid)) == 2
    assert sim_server.sim.positions.get_position(pid).status == 1


def close_requests(sim_server: Any) -> int:
    return sum(
        1
        for e in sim_server.sim.requests.entries
        if e["method"] == "POST" and e["path"].endswith("/positions/close")
    )


async def test_lost_close_answer_is_reconciled_not_sent_again(
    make_daemon: Any, sim_server: Any
) -> None:
    from bot.sim.faults import FaultProfile

    pid = place(sim_server, WALLET)
    daemon = await make_daemon(strategies=GUARD, positions_wallet=WALLET)
    sim_server.sim.faults = FaultProfile.from_mapping(
        {"rule": [{"kind": "lost_response", "match": "POST */positions/close"}]}
    )
    sim_server.sim.clock.advance(3 * HOUR)
    await daemon.parts.engine.tick("1h")
    sim_server.sim.faults = FaultProfile()
    assert sim_server.sim.positions.get_position(pid).status != 1
    intent = next(i for i in daemon.parts.journal.intents() if i.kind == "positions_close")
    assert intent.state == "confirmed", (intent.state, intent.error)
    assert daemon.parts.journal.positions()[0]["closed_by_intent"] == intent.id
    assert close_requests(sim_server) == 1
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    assert close_requests(sim_server) == 1


async def test_close_of_a_position_with_an_unresolved_intent_is_vetoed(
    make_daemon: Any, sim_server: Any
) -> None:
    pid = place(sim_server, WALLET)
    daemon = await make_daemon(strategies=GUARD, positions_wallet=WALLET)
    daemon.parts.engine.reconciler = None  # the intent stays unknown for this tick
    journal = daemon.parts.journal
    now = sim_server.sim.clock.now_ms()
    stuck = journal.create_intent(
        "positions_close", asset=None, venue="positions", request={"position_id": pid}, now_ms=now
    )
    journal.mark_sent(stuck, now)
    journal.mark_unknown(stuck, "timed out", now)
    sim_server.sim.clock.advance(3 * HOUR)
    report = await daemon.parts.engine.tick("1h")
    assert f"position:{pid}" not in report.closed
    verdicts = [(type(d).__name__, ok, why) for d, ok, why in report.decisions]
    assert ("ClosePosition", False, "asset_has_unresolved_intent") in verdicts
    assert close_requests(sim_server) == 0
    assert sim_server.sim.positions.get_position(pid).status == 1


async def test_reconcile_settles_an_unknown_position_open_from_the_cli(
    make_daemon: Any, sim_server: Any
) -> None:
    pid = place(sim_server, WALLET)
    daemon = await make_daemon(strategies=GUARD, positions_wallet=WALLET)
    journal = daemon.parts.journal
    venue_pos = sim_server.sim.positions.get_position(pid)
    now = sim_server.sim.clock.now_ms()
    request = {
        "wallet_address": WALLET,
        "market_address": venue_pos.market_address,
        "selected_team": 1,
        "amount": 10**9,
        "multiplier_bps": 12000,
    }
    landed = journal.create_intent(
        "positions_open", asset=None, venue="positions", request=request, now_ms=now
    )
    journal.mark_sent(landed, now)
    journal.mark_unknown(landed, "timed out", now)
    never = journal.create_intent(
        "positions_open",
        asset=None,
        venue="positions",
        request={**request, "amount": 7 * 10**9},
        now_ms=now,
    )
    journal.mark_sent(never, now)
    journal.mark_unknown(never, "timed out", now)
    sim_server.sim.clock.advance(HOUR)  # past the settle time: absence is now evidence
    await daemon.reconcile("test")
    by_id = {i.id: i for i in journal.intents()}
    assert by_id[landed].state == "confirmed" and by_id[landed].session_id == str(pid)
    assert by_id[never].state == "failed"


async def test_a_positions_outage_does_not_block_the_start_up_reconcile(
    make_daemon: Any, sim_server: Any
) -> None:
    """The positions service is a separate service: its outage must not hold the daemon
    (start-up reconcile, hence READY) hostage, and sessions still settle."""
    from bot.sim.faults import FaultProfile

    daemon = await make_daemon(
        strategies=[{"name": "always_long", "assets": ["BTC"], "params": {"interval": "1h"}}],
        positions_wallet=WALLET,
        http={"retry_attempts": 1},
    )
    journal = daemon.parts.journal
    now = sim_server.sim.clock.now_ms()
    stuck = journal.create_intent(
        "positions_close", asset=None, venue="positions", request={"position_id": 1}, now_ms=now
    )
    journal.mark_sent(stuck, now)
    journal.mark_unknown(stuck, "timed out", now)
    daemon.parts.engine.reconciler = None
    sim_server.sim.faults = FaultProfile.from_mapping(
        {
            "rule": [
                {"kind": "lost_response", "match": "POST /trading-sessions"},
                {"kind": "status", "status": 503, "match": "GET */positions*"},
            ]
        }
    )
    sim_server.sim.clock.advance(HOUR)
    await daemon.parts.engine.tick("1h")
    report = await daemon._reconcile_unlocked("start-up", raise_errors=True)
    sim_server.sim.faults = FaultProfile()
    assert report is not None
    by_kind = {i.kind: i for i in journal.intents()}
    assert by_kind["open_quick"].state == "confirmed", by_kind["open_quick"].error
    assert [r.asset for r in journal.open_sessions()] == ["BTC"]
    assert by_kind["positions_close"].state == "unknown"


async def test_the_positions_service_goes_through_the_daemons_one_http_client(
    make_daemon: Any,
) -> None:
    daemon = await make_daemon(strategies=GUARD, positions_wallet=WALLET)
    alura = daemon.parts.client.transport
    positions = daemon.parts.engine.positions.transport
    assert positions is not alura and positions._client is alura._client
    assert positions._limiter is not alura._limiter  # its own rate limit and Retry-After
    assert positions.hooks == alura.hooks  # its requests are counted and journaled alike


async def test_the_kill_switch_closes_every_own_position_and_session_on_the_next_tick(
    make_daemon: Any, sim_server: Any
) -> None:
    sim_server.sim.positions.owner_check = False
    mine, theirs = place(sim_server, WALLET), place(sim_server, OTHER)
    guard = [{"name": "position_guard"}, GUARD[1]]  # default rules: only the kill switch acts
    daemon = await make_daemon(strategies=guard, positions_wallet=WALLET)
    sim_server.sim.clock.advance(HOUR)
    first = await daemon.parts.engine.tick("1h")
    assert first.opened and f"position:{mine}" not in first.closed
    daemon.parts.journal.set_paused(True)  # what `alura-bot pause` / `close-all --yes` do
    sim_server.sim.clock.advance(HOUR)
    report = await daemon.parts.engine.tick("1h")
    assert f"position:{mine}" in report.closed and set(first.opened) <= set(report.closed)
    venue = sim_server.sim.positions
    assert venue.get_position(mine).status != 1 and venue.get_position(theirs).status == 1
    assert daemon.parts.journal.open_sessions() == []
