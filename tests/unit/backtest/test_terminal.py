"""The plain-text terminal summary: fitted to the width, never a number cut short."""

from __future__ import annotations

import re

from bot.backtest.stats import Summary, TradeStats
from bot.backtest.terminal import num, pack, render_summary, table

LONG_NAME = "a_rather_long_strategy_name"


def _stats(trades: int, net: float, fees: float) -> TradeStats:
    return TradeStats(
        trades=trades,
        wins=trades // 3,
        win_rate=100 / 3,
        net_pnl=net,
        gross_pnl=net + fees,
        fees=fees,
        profit_factor=0.9612,
        avg_trade=net / trades,
        avg_trade_pct=-0.0241,
        best_trade=5.0,
        worst_trade=-3.0,
        avg_holding_h=8.8,
        by_reason={"end_of_data": 6, "exit_signal": 13_401, "stop_loss": 32_517, "take_profit": 1},
    )


def _summary() -> Summary:
    """Wide figures everywhere: six assets, a long strategy name, seven-digit PnL."""
    assets = ["BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"]
    return Summary(
        start_ms=1_603_440_000_000,
        end_ms=1_718_542_800_000,
        candles=1_234_567,
        assets=assets,
        strategies=["ema_cross", LONG_NAME],
        interval="5m",
        balance=10_000_000.0,
        final_equity=8_765_432.1,
        total_return_pct=-12.3456789,
        annual_return_pct=-3.21,
        max_drawdown_pct=29.6,
        max_drawdown_duration_h=28_476.0,
        sharpe=-0.25,
        sortino=-0.38,
        calmar=-0.09,
        exposure_pct=17.9,
        trade=_stats(45_925, -1_234_567.8901, 587_654.3211),
        decisions=78_812,
        vetoes={"asset_has_session": 5_123, "max_open_sessions": 101, "daily_loss": 7},
        sessions=45_925,
        buy_hold_return_pct=416.06,
        buy_hold_by_asset={a: -29.61 * (i + 1) for i, a in enumerate(assets)},
        by_asset={a: _stats(7_654, -205_761.3151 - i, 97_942.3869) for i, a in enumerate(assets)},
        by_strategy={
            "ema_cross": _stats(40_000, -1_000_000.5, 500_000.25),
            LONG_NAME: _stats(5_925, -234_567.3901, 87_654.0711),
        },
        fee_rate=0.00045,
        elapsed_s=0.2,
    )


def _whole(figure: str, text: str) -> bool:
    """The figure appears with blanks (or the line's ends) on both sides: not cut, not glued."""
    return re.search(rf"(?<!\S){re.escape(figure)}(?!\S)", text) is not None


def test_every_figure_is_whole_at_80_columns() -> None:
    s = _summary()
    text = render_summary(s, reentry="off", gaps={"BTC": (2, 5)}, elapsed_s=0.2, width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    figures = [num(s.final_equity), num(s.trade.net_pnl, 4, " USDC"), f"{s.candles:,}"]
    for groups in (s.by_asset, s.by_strategy):
        for name, g in groups.items():
            figures += [name, f"{g.trades:,}", num(g.net_pnl, 4), num(g.fees, 4)]
            figures += [num(g.avg_trade, 4), num(g.profit_factor), num(g.win_rate, 1)]
    figures += [num(v, 2, " %") for v in s.buy_hold_by_asset.values()]
    figures += ["take_profit 1", "stop_loss 32517,", "asset_has_session 5123,", "daily_loss 7,"]
    missing = [f for f in figures if not _whole(f, text)]
    assert not missing, missing
    assert "BTC: 2 gaps, 5 missing candles" in text


def test_a_wide_terminal_keeps_each_table_in_one_part() -> None:
    text = render_summary(_summary(), reentry="off", gaps={}, elapsed_s=0.2, width=160)
    header = next(line for line in text.splitlines() if "trades" in line and "win %" in line)
    assert "profit factor" in header and "avg trade" in header and "buy & hold" in header
    assert text.count(LONG_NAME) == 2  # the strategies line and its one table row


def test_headers_wrap_between_words_before_a_table_splits() -> None:
    head = ["", "trades", "profit factor", "avg trade"]
    rows = [["BTC", "654", "0.96", "-0.0242"]]
    wide = table(head, rows, width=80)
    assert wide[0] == "     trades  profit factor  avg trade"
    narrow = table(head, rows, width=32)  # 35 wide as is; "profit factor" wrapping saves most
    assert narrow[:2] == ["             profit", "     trades  factor  avg trade"]
    assert narrow[3] == "BTC     654    0.96    -0.0242"
    assert all(len(line) <= 32 for line in narrow)


def test_a_table_too_wide_for_the_screen_is_split_repeating_the_names() -> None:
    head = ["", "net PnL", "fees", "buy & hold"]
    rows = [["BTC", "-1,234,567.8901", "587,654.3211", "416.06 %"], ["DOGE", "1.0000", "2", "x"]]
    lines = table(head, rows, width=30)
    assert all(len(line) <= 30 for line in lines)
    parts = "\n".join(lines).split("\n\n")
    assert len(parts) == 2
    for part in parts:
        assert re.search(r"^BTC ", part, re.M) and re.search(r"^DOGE ", part, re.M)
    for cell in ("-1,234,567.8901", "587,654.3211", "416.06 %"):
        assert _whole(cell, "\n".join(lines))


def test_pack_wraps_between_items_and_never_splits_one() -> None:
    items = ["end_of_data 1", "exit_signal 134", "stop_loss 325", "take_profit 194"]
    assert pack(items, 40) == ["end_of_data 1, exit_signal 134,", "stop_loss 325, take_profit 194"]
    assert pack(["a_very_long_item_indeed", "b"], 10) == ["a_very_long_item_indeed,", "b"]
    assert pack([], 10) == [""]
