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
