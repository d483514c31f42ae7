"""The backtest engine on tiny hand-made candle sets, every expected number worked out by hand.

Canonical session unless a test says otherwise: quick, budget 100, maxPositions 1, TP 2 %, SL 1 %,
leverage 1, fee 0.045 % per side. Entry at the open after the signal's candle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest

from bot.backtest.engine import BacktestConfig, run_backtest
from bot.engine.risk import RiskLimits
from tests.unit.backtest.conftest import HOUR, LOOSE, T0, FlagStrategy, bars, flags, flat

Cfg = Callable[..., BacktestConfig]


def test_take_profit_trade_nets_the_canonical_1_9091(loose: Cfg) -> None:
    # signal on bar 0; bar 1 opens at 100 and reaches 102.5 -> TP at 102
    candles = bars([(100, 100, 100, 100), (100, 102.5, 99.5, 102), *flat(2, 102)])
    result = run_backtest([flags(enter_long=[0])], {"BTC": candles}, loose(reentry=False))
    (t,) = result.trades()
    assert (t.entry_ms, t.entry_price) == (T0 + HOUR, 100.0)
    assert (t.exit_ms, t.exit_price, t.reason) == (T0 + 2 * HOUR, 102.0, "take_profit")
    assert t.qty == pytest.approx(1.0)
    assert t.entry_fee == pytest.approx(0.045)
    assert t.exit_fee == pytest.approx(0.0459)
    assert t.net_pnl == pytest.approx(1.9091, abs=1e-12)
    assert result.equity[-1] == pytest.approx(1000 + 1.9091, abs=1e-9)


def test_stop_wins_when_one_bar_touches_both_levels(loose: Cfg) -> None:
    candles = bars([(100, 100, 100, 100), (100, 103, 98, 101), *flat(2, 101)])
    (t,) = run_backtest([flags(enter_long=[0])], {"BTC": candles}, loose(reentry=False)).trades()
    assert (t.exit_price, t.reason) == (99.0, "stop_loss")
    # -1 gross, 0.045 entry fee, 99 * 0.00045 = 0.04455 exit fee
    assert t.net_pnl == pytest.approx(-1.08955, abs=1e-12)


def test_a_gap_through_the_stop_fills_at_the_open(loose: Cfg) -> None:
    candles = bars([(100, 100, 100, 100), *flat(1, 100), (97, 97.5, 96, 97), *flat(1, 97)])
    (t,) = run_backtest([flags(enter_long=[0])], {"BTC": candles}, loose(reentry=False)).trades()
    assert (t.exit_price, t.reason, t.exit_ms) == (97.0, "stop_loss", T0 + 3 * HOUR)
    assert t.net_pnl == pytest.approx(-3 - 0.045 - 97 * 0.00045, abs=1e-12)


def test_exit_signal_closes_at_the_next_open(loose: Cfg) -> None:
    candles = bars([*flat(3, 100), (101, 101.2, 100.8, 101), *flat(1, 101)])
    st = flags(enter_long=[0], exit_long=[2])
    (t,) = run_backtest([st], {"BTC": candles}, loose()).trades()
    assert (t.entry_ms, t.exit_ms) == (T0 + HOUR, T0 + 3 * HOUR)
    assert (t.exit_price, t.reason) == (101.0, "exit_signal")
    assert t.net_pnl == pytest.approx(1 - 0.045 - 101 * 0.00045, abs=1e-12)


def test_short_take_profit_is_two_percent_below(loose: Cfg) -> None:
    candles = bars([(100, 100, 100, 100), (100, 100.5, 97.9, 98), *flat(1, 98)])
    st = flags(enter_short=[0], allow_short=True)
    (t,) = run_backtest([st], {"BTC": candles}, loose(reentry=False)).trades()
    assert (t.side, t.exit_price, t.reason) == (-1, 98.0, "take_profit")
    assert t.net_pnl == pytest.approx(2 - 0.045 - 98 * 0.00045, abs=1e-12)


def test_quick_session_reenters_at_the_next_open_until_the_strategy_closes_it(loose: Cfg) -> None:
    # TP on bar 1; the session re-enters at bar 2's open (102) and is closed on bar 3's signal
    candles = bars(
        [(100, 100, 100, 100), (100, 102.5, 99.9, 102), *flat(2, 102), (102.5, 103, 102, 102.5)]
    )
    st = flags(enter_long=[0], exit_long=[3])
    trades = run_backtest([st], {"BTC": candles}, loose()).trades()
    assert [(t.entry_price, t.exit_price, t.reason, t.seq) for t in trades] == [
        (100.0, 102.0, "take_profit", 1),
        (102.0, 102.5, "exit_signal", 2),
    ]
    assert trades[0].session == trades[1].session
    single = run_backtest([st], {"BTC": candles}, loose(reentry=False)).trades()
    assert [t.reason for t in single] == ["take_profit"]


def test_open_session_at_the_end_closes_at_the_last_close(loose: Cfg) -> None:
    candles = bars([*flat(2, 100), (100, 100.5, 99.5, 100.4)])
    (t,) = run_backtest([flags(enter_long=[0])], {"BTC": candles}, loose()).trades()
    assert (t.exit_price, t.reason, t.exit_ms) == (100.4, "end_of_data", T0 + 3 * HOUR)


def test_no_decision_before_the_warm_up(loose: Cfg) -> None:
    candles = bars(flat(6))
    st = flags(enter_long=[1, 3], warmup_rows=3)
    result = run_backtest([st], {"BTC": candles}, loose(reentry=False))
    assert [d.time_ms for d in result.decisions()] == [T0 + 4 * HOUR]


def test_window_trades_only_inside_from_to(loose: Cfg) -> None:
    candles = bars(flat(10))
    st = flags(enter_long=[1, 5], exit_long=[2, 6])
    cfg = loose(start_ms=T0 + 4 * HOUR, end_ms=T0 + 8 * HOUR)
    trades = run_backtest([st], {"BTC": candles}, cfg).trades()
    assert [(t.entry_ms, t.exit_ms) for t in trades] == [(T0 + 6 * HOUR, T0 + 7 * HOUR)]


def test_advanced_session_time_stop_closes_at_the_first_close_past_its_duration(
    loose: Cfg,
) -> None:
    # Conservative preset: leverage 2, TP 3 % / SL 1.5 % of margin = 1.5 % / 0.75 % of price.
    # Decided at the close of bar 0 (01:00), 1D duration -> ends 01:00 next day = close of bar 24.
    candles = bars([*flat(30, 100)])
    session = {
        "kind": "advanced",
        "budget": 100,
        "execution_strategy": "Conservative",
        "strategy_duration": "1D",
    }
    st = flags(enter_long=[0], session=session)
    (t,) = run_backtest([st], {"BTC": candles}, loose()).trades()
    assert (t.reason, t.exit_ms, t.exit_price) == ("time_stop", T0 + 25 * HOUR, 100.0)
    assert t.qty == pytest.approx(2.0)  # 100 margin x 2 / 100
    assert t.net_pnl == pytest.approx(-2 * 200 * 0.00045, abs=1e-12)


def test_advanced_preset_levels_follow_the_leverage(loose: Cfg) -> None:
    # Conservative: TP at +1.5 % of price -> 101.5; gross 2 x 1.5 = 3 USDC
    candles = bars([(100, 100, 100, 100), (100, 101.6, 99.5, 101.5), *flat(1, 101.5)])
    session = {"kind": "advanced", "budget": 100, "execution_strategy": "Conservative"}
    (t,) = run_backtest(
        [flags(enter_long=[0], session=session)], {"BTC": candles}, loose()
    ).trades()
    assert t.reason == "take_profit"
    assert t.exit_price == pytest.approx(101.5)
    assert t.gross_pnl == pytest.approx(3.0)


def test_max_positions_splits_the_budget_and_opens_one_per_bar(loose: Cfg) -> None:
    candles = bars(flat(5))
    st = flags(enter_long=[0], exit_long=[3], session={"budget": 100, "max_positions": 2})
    trades = run_backtest([st], {"BTC": candles}, loose()).trades()
    assert [(t.margin, t.entry_ms, t.seq) for t in trades] == [
        (50.0, T0 + HOUR, 1),
        (50.0, T0 + 2 * HOUR, 2),
    ]


# -- the RiskGate -------------------------------------------------------------------------------


def test_max_open_sessions_vetoes_the_second_asset(loose: Cfg) -> None:
    market = {"BTC": bars(flat(4)), "ETH": bars(flat(4), symbol="ETH")}
    limits = replace(LOOSE, max_open_sessions=1)
    result = run_backtest([flags(enter_long=[0])], market, loose(limits=limits))
    verdicts = [(d.asset, d.accepted, d.reason) for d in result.decisions()]
    assert verdicts == [("BTC", True, "ok"), ("ETH", False, "max_open_sessions")]
    assert {t.asset for t in result.trades()} == {"BTC"}


def test_one_session_per_asset_across_strategies(loose: Cfg) -> None:
    class Other(FlagStrategy):
        name = "other"

    market = {"BTC": bars(flat(4))}
    result = run_backtest([flags(enter_long=[0]), Other({"enter_long": [0]})], market, loose())
    verdicts = [(d.strategy, d.accepted, d.reason) for d in result.decisions()]
    assert verdicts == [("flags", True, "ok"), ("other", False, "asset_has_session")]


def test_an_owner_only_closes_its_own_session(loose: Cfg) -> None:
    class Other(FlagStrategy):
        name = "other"

    market = {"BTC": bars(flat(5))}
    a = flags(enter_long=[0])
    b = Other({"exit_long": [1]})
    result = run_backtest([a, b], market, loose())
    assert [d.action for d in result.decisions()] == ["open_long"]
    assert [t.reason for t in result.trades()] == ["end_of_data"]


def test_cooldown_counts_from_the_session_close(loose: Cfg) -> None:
    # session closes on bar 2's signal -> booked at 03:00; cooldown 2 h vetoes the entry at
    # 04:00 (bar 3) and allows the one at 05:00 (bar 4)
    candles = bars(flat(8))
    st = flags(enter_long=[0, 3, 4], exit_long=[2])
    cfg = loose(limits=replace(LOOSE, cooldown_s=7200))
    result = run_backtest([st], {"BTC": candles}, cfg)
    verdicts = [(d.time_ms - T0, d.action, d.reason) for d in result.decisions()]
    assert verdicts == [
        (HOUR, "open_long", "ok"),
        (3 * HOUR, "close", "ok"),
        (4 * HOUR, "open_long", "cooldown"),
        (5 * HOUR, "open_long", "ok"),
    ]


def test_daily_loss_stop_holds_until_the_next_utc_day(loose: Cfg) -> None:
    # a stop loss (-1.08955) on day one with a 1 USDC daily limit: no more entries that day;
    # the next day (bar 24 closes at 01:00 on day two) trading resumes
    rows = [(100, 100, 100, 100), (100, 100.2, 98.5, 99), *flat(30, 99)]
    st = flags(enter_long=[0, 3, 23, 24])
    cfg = loose(reentry=False, limits=replace(LOOSE, daily_loss_limit=Decimal(1)))
    result = run_backtest([st], {"BTC": bars(rows)}, cfg)
    verdicts = [(d.time_ms - T0, d.reason) for d in result.decisions()]
    assert verdicts == [(HOUR, "ok"), (4 * HOUR, "daily_loss_stop"), (24 * HOUR, "ok")]


def test_shared_budget_keeps_the_minimum_free_balance(loose: Cfg) -> None:
    market = {sym: bars(flat(4), symbol=sym) for sym in ("BTC", "ETH", "SOL")}
    limits = replace(LOOSE, min_free_balance=Decimal(20))
    result = run_backtest([flags(enter_long=[0])], market, loose(balance=230.0, limits=limits))
    assert [(d.asset, d.reason) for d in result.decisions()] == [
        ("BTC", "ok"),
        ("ETH", "ok"),
        ("SOL", "min_free_balance"),
    ]


def test_total_budget_limit(loose: Cfg) -> None:
    market = {sym: bars(flat(4), symbol=sym) for sym in ("BTC", "ETH")}
    limits = replace(LOOSE, max_total_budget=Decimal(150), max_budget_per_session=Decimal(100))
    result = run_backtest([flags(enter_long=[0])], market, loose(limits=limits))
    assert [d.reason for d in result.decisions()] == ["ok", "total_budget"]


def test_default_limits_are_the_daemons() -> None:
    assert BacktestConfig().limits == RiskLimits()


def test_equity_marks_open_positions_to_the_close_with_exit_fees(loose: Cfg) -> None:
    candles = bars([(100, 100, 100, 100), (100, 101, 99.5, 101), *flat(1, 101)])
    result = run_backtest([flags(enter_long=[0])], {"BTC": candles}, loose())
    # after bar 1: 900 free + 100 margin + 1 gross - 0.045 - 101 * 0.00045
    assert result.equity[1] == pytest.approx(1000 + 1 - 0.045 - 0.04545, abs=1e-9)
    assert result.equity[0] == pytest.approx(1000.0)


def test_decisions_carry_the_value_the_daemon_would_build(loose: Cfg) -> None:
    from bot.domain import CloseSession, OpenQuick, Side

    candles = bars(flat(4))
    st = flags(enter_long=[0], exit_long=[2])
    opened, closed = run_backtest([st], {"BTC": candles}, loose()).decisions()
    assert isinstance(opened.decision, OpenQuick)
    assert opened.decision.side is Side.LONG and opened.decision.budget == Decimal(100)
    assert opened.decision.reason == "long entry on the 2024-01-01 00:00 candle"
    assert isinstance(closed.decision, CloseSession) and closed.decision.asset == "BTC"


def test_union_timeline_on_and_off_the_grid() -> None:
    import numpy as np

    from bot.backtest.engine import _union_timeline

    a = np.array([0, 300, 600, 1500], dtype=np.int64)
    b = np.array([300, 900, 1200, 1500], dtype=np.int64)
    ts, (ra, rb) = _union_timeline([a, b], 300)
    assert ts.tolist() == [0, 300, 600, 900, 1200, 1500]
    assert ts[ra].tolist() == a.tolist() and ts[rb].tolist() == b.tolist()
    c = np.array([100, 700], dtype=np.int64)  # off the 300 ms grid
    ts, (ra, rc) = _union_timeline([a, c], 300)
    assert ts.tolist() == [0, 100, 300, 600, 700, 1500]
    assert ts[rc].tolist() == c.tolist()
