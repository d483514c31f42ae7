"""Live/backtest parity: the paper daemon stepped through the simulator's market by its clock makes
exactly the decisions the backtest makes over the same candles (time, asset, action, parameters,
verdict), and realises the same PnL.

The daemon trades through HTTP against the real simulator (candles and signals over loopback,
fills from its PaperExecutor); the backtest runs the compiled loop over the candles the daemon
itself received. Two drivers, one strategy and one session model: any drift shows up here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from typing import Any

import pytest

import strategies
from bot.backtest.engine import BacktestConfig, run_backtest
from bot.domain import Hold, decision_action
from bot.engine.daemon import risk_limits

HOUR = 3_600_000
TICKS = 240
ASSETS = ["BTC", "ETH", "SOL"]


def _fields(decision: Any) -> dict[str, Any]:
    """What a decision asks for: everything but the free-text reason."""
    return {f.name: getattr(decision, f.name) for f in fields(decision) if f.name != "reason"}


async def _paper_run(make_daemon: Any, sim_server: Any, strategy: dict[str, Any]) -> Any:
    daemon = await make_daemon(
        live=False,
        strategies=[strategy],
        risk={"max_open_sessions": 2, "cooldown_s": 2 * 3600},
    )
    made = []
    for _ in range(TICKS):
        sim_server.sim.clock.advance(HOUR)
        report = await daemon.parts.engine.tick("1h")
        assert report is not None and not report.errors, report and report.errors
        made += [
            (report_time, d, accepted, reason)
            for d, accepted, reason in report.decisions
            if not isinstance(d, Hold)
            for report_time in [daemon.parts.engine.last_tick_ms]
        ]
    return daemon, made


@pytest.mark.parametrize(
    "strategy",
    [
        {"name": "ema_cross", "params": {"fast": 3, "slow": 8}},
        {
            "name": "ema_cross",
            "params": {
                "fast": 4,
                "slow": 12,
                "allow_short": True,
                "session": {
                    "kind": "advanced",
                    "budget": 50,
                    "execution_strategy": "Aggressive",
                    "strategy_duration": "1D",
                },
            },
        },
        {
            "name": "rsi_reversion",
            "params": {"period": 6, "oversold": 40, "overbought": 60, "trend_filter": False},
        },
    ],
    ids=["ema_cross-quick", "ema_cross-advanced-short", "rsi_reversion"],
)
async def test_paper_daemon_and_backtest_make_the_same_decisions(
    make_daemon: Any, sim_server: Any, strategy: dict[str, Any]
) -> None:
    config = {
        "name": strategy["name"],
        "assets": ASSETS,
        "params": {**strategy["params"], "interval": "1h"},
    }
    first_tick = sim_server.sim.clock.now_ms() + HOUR
    daemon, live = await _paper_run(make_daemon, sim_server, config)
    candles = {a: daemon.parts.engine.market.cache[(a, "1h")] for a in ASSETS}

    settings = daemon.settings
    result = run_backtest(
        [strategies.create(strategy["name"], config["params"])],
        candles,
        BacktestConfig(
            balance=float(settings.engine.paper_balance),
            limits=risk_limits(settings),
            start_ms=first_tick - HOUR,
        ),
    )
    backtest = [(r.time_ms, r.decision, r.accepted, r.reason) for r in result.decisions()]

    assert len(live) >= 20, f"too few decisions to prove anything: {len(live)}"
    assert any(not accepted for _, _, accepted, _ in live), "no veto was exercised"
    assert any(decision_action(d) == "close_session" for _, d, _, _ in live), (
        "no exit was exercised"
    )
    live_view = [
        (t, d.asset, decision_action(d), _fields(d), ok, "" if ok else why)
        for t, d, ok, why in live
    ]
    backtest_view = [
        (t, d.asset, decision_action(d), _fields(d), ok, "" if ok else why)
        for t, d, ok, why in backtest
    ]
    assert live_view == backtest_view
    with sqlite3.connect(settings.journal_path) as db:
        journaled = db.execute(
            "SELECT ts, asset, action, verdict FROM decisions WHERE verdict != 'hold' ORDER BY id"
        ).fetchall()
    assert journaled == [
        (t, asset, action, "accepted" if ok else "vetoed")
        for t, asset, action, _, ok, _ in live_view
    ]

    # every session the paper daemon closed, the backtest closed at the same time with the
    # same money (the journal keeps 6 decimals)
    by_session: dict[int, list[Any]] = {}
    for trade in result.trades():
        by_session.setdefault(trade.session, []).append(trade)
    backtest_sessions = {
        (ts[0].asset, min(t.entry_ms for t in ts)): (
            max(t.exit_ms for t in ts),
            sum(t.net_pnl for t in ts),
            sum(t.entry_fee + t.exit_fee for t in ts),
        )
        for ts in by_session.values()
    }
    closed = daemon.parts.journal.sessions("closed")
    assert len(closed) >= 10, f"too few closed sessions: {len(closed)}"
    for row in closed:
        end, pnl, fees = backtest_sessions[(row.asset, row.opened_at)]
        assert row.closed_at == end, row
        assert float(row.realized_pnl) == pytest.approx(pnl, abs=1e-6)
        assert float(row.fees) == pytest.approx(fees, abs=1e-6)
