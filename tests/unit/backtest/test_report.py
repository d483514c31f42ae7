"""Figures of a run, computed by hand on small cases, and the report files."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.backtest import kernel as K
from bot.backtest.engine import BacktestConfig, BacktestResult, Market, run_backtest
from bot.backtest.report import write_report
from bot.backtest.stats import (
    buy_and_hold,
    drawdown,
    max_drawdown_duration_ms,
    summarize,
    trade_stats,
)
from tests.unit.backtest.conftest import HOUR, bars, flags, flat

Cfg = Callable[..., BacktestConfig]


def test_drawdown_and_its_duration() -> None:
    equity = np.array([100.0, 110, 99, 104.5, 112, 100.8, 112])
    dd = drawdown(equity)
    assert dd[2] == pytest.approx(-0.1) and dd[5] == pytest.approx(-0.1) and dd[4] == 0.0
    times = np.arange(7, dtype=np.int64) * HOUR
    # under water from row 1 (peak 110) to row 4 (new high): 3 hours; 4 -> 6: 2 hours
    assert max_drawdown_duration_ms(equity, times) == 3 * HOUR


def test_trade_stats_by_hand() -> None:
    rows = np.zeros((3, K.N_TR))
    rows[:, K.TR_GROSS] = [2.0, -1.0, 0.5]
    rows[:, K.TR_ENTRY_FEE] = 0.045
    rows[:, K.TR_EXIT_FEE] = 0.05
    rows[:, K.TR_MARGIN] = 100.0
    rows[:, K.TR_ENTRY_TS] = 0
    rows[:, K.TR_EXIT_TS] = [HOUR, 2 * HOUR, 3 * HOUR]
    rows[:, K.TR_REASON] = [K.R_TAKE_PROFIT, K.R_STOP_LOSS, K.R_SIGNAL]
    s = trade_stats(rows)
    net = [1.905, -1.095, 0.405]
    assert s.trades == 3 and s.wins == 2 and s.win_rate == pytest.approx(200 / 3)
    assert s.net_pnl == pytest.approx(sum(net))
    assert s.fees == pytest.approx(3 * 0.095)
    assert s.profit_factor == pytest.approx((1.905 + 0.405) / 1.095)
    assert s.avg_holding_h == pytest.approx(2.0)
    assert s.by_reason == {"take_profit": 1, "stop_loss": 1, "exit_signal": 1}
    assert math.isnan(trade_stats(rows[:0]).profit_factor)


def test_buy_and_hold_splits_the_money_and_pays_both_fees() -> None:
    market = Market.from_candles(
        {
            "BTC": bars([(100, 100, 100, 100), (100, 110, 100, 110)]),
            "ETH": bars([(50, 50, 50, 50), (50, 50, 40, 40)], symbol="ETH"),
        }
    )
    curve, by_asset = buy_and_hold(market, 0, 2, 0.001)
    keep = 0.999 * 0.999
    assert by_asset["BTC"] == pytest.approx(100 * (1.1 * keep - 1))
    assert by_asset["ETH"] == pytest.approx(100 * (0.8 * keep - 1))
    assert curve[-1] == pytest.approx((1.1 * keep + 0.8 * keep) / 2)


def test_summary_figures_agree_with_the_trades(loose: Cfg) -> None:
    candles = bars([(100, 100, 100, 100), (100, 102.5, 99.9, 102), *flat(30, 102)])
    result = run_backtest([flags(enter_long=[0])], {"BTC": candles}, loose(reentry=False))
    s = summarize(result)
    assert s.trade.trades == 1 and s.final_equity == pytest.approx(1001.9091)
    assert s.total_return_pct == pytest.approx(0.19091)
    assert s.max_drawdown_pct == pytest.approx(0.0, abs=1e-12)
    assert s.exposure_pct == pytest.approx(100 / 32)  # one of 32 candles held a position
    assert s.decisions == 1 and s.vetoes == {} and s.sessions == 1
    assert json.loads(json.dumps(s.to_json()))["trade"]["profit_factor"] is None  # no loss


def _run(loose: Cfg) -> BacktestResult:
    market = {
        "BTC": bars([(100, 100, 100, 100), (100, 102.5, 99.9, 102), *flat(40, 102)]),
        "ETH": bars([(50, 50, 50, 50), *flat(41, 50)], symbol="ETH"),
    }
    return run_backtest([flags(enter_long=[0, 5], exit_long=[9])], market, loose())


def test_report_writes_the_files_with_png_plots(tmp_path: Path, loose: Cfg) -> None:
    pytest.importorskip("matplotlib")
    result = _run(loose)
    page = write_report(result, summarize(result), tmp_path / "r")
    html = page.read_text()
    import re

    alts = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="([^"]+)"', html)
    # buy & hold moves far more than this strategy's 10 % stake: it gets its own panel
    assert alts == [
        "Equity",
        "Buy &amp; hold",
        "Drawdown",
        "BTC price, entries and exits",
        "ETH price, entries and exits",
    ]
    assert "<script src" not in html and "<link" not in html
    trades = (tmp_path / "r" / "trades.csv").read_text().splitlines()
    assert len(trades) == 1 + result.trade_count


def test_report_without_matplotlib_draws_svg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loose: Cfg
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = _run(loose)
    html = write_report(result, summarize(result), tmp_path / "r").read_text()
    assert "data:image/png" not in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="plot"') == 4


def test_report_moves_the_progress_at_each_file_and_plot(tmp_path: Path, loose: Cfg) -> None:
    pytest.importorskip("matplotlib")
    result = _run(loose)
    heard: list[tuple[str, int, int]] = []
    write_report(result, summarize(result), tmp_path / "r", progress=lambda *a: heard.append(a))
    assert [what for what, _, _ in heard] == [
        "trades.csv",
        "equity.csv",
        "summary.json",
        "plot: Equity",
        "plot: Buy & hold",
        "plot: Drawdown",
        "plot: BTC price",
        "plot: ETH price",
        "report.html",
    ]
    assert [done for _, done, _ in heard] == list(range(len(heard)))
    assert {total for _, _, total in heard} == {len(heard)}


def test_report_without_matplotlib_still_ends_its_progress_at_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loose: Cfg
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = _run(loose)
    heard: list[tuple[str, int, int]] = []
    write_report(result, summarize(result), tmp_path / "r", progress=lambda *a: heard.append(a))
    what, done, total = heard[-1]
    assert what == "report.html" and done == total - 1
