"""The backtest's terminal summary: plain text laid out for the terminal's width.

Plain text rather than rich tables for two reasons: importing and rendering rich cost ~30 ms of a
~0.3 s one-year backtest, and a layout of our own never cuts a number short on an 80-column
terminal. Figures that do not fit beside another move to a line of their own, long lists wrap
between items, table headers wrap between words, and a table still too wide is printed in parts
that each repeat the row names. Nothing is ever truncated: at worst a line overflows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.backtest.stats import Summary, TradeStats

GAP = "  "
"""Between table columns."""
PAIR_GAP = "    "
"""Between the two label/value pairs of a summary line."""

Pair = tuple[str, str]


def num(x: float, digits: int = 2, suffix: str = "") -> str:
    """A figure with thousands separators; n/a for NaN, inf for an unbounded ratio."""
    if not math.isfinite(x):
        return "n/a" if math.isnan(x) else "inf"
    return f"{x:,.{digits}f}{suffix}"


def duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:,.1f} days"
    return f"{hours:,.1f} h"


def timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def pack(items: Sequence[str], width: int, sep: str = ", ") -> list[str]:
    """Greedily join items into lines of at most ``width``; an item is never split (one wider
    than ``width`` gets a line of its own)."""
    lines: list[str] = []
    line = ""
    for i, item in enumerate(items):
        piece = item + (sep.rstrip() if i < len(items) - 1 else "")
        candidate = f"{line} {piece}" if line else piece
        if line and len(candidate) > width:
            lines.append(line)
            candidate = piece
        line = candidate
    if line:
        lines.append(line)
    return lines or [""]


def pairs(rows: Sequence[Sequence[Pair]], width: int) -> list[str]:
    """Label/value pairs, two to a line where they fit side by side, else one to a line.

    Values are right-aligned so figures line up. Rows whose values are too wide to share a line
    (widest first) are printed as one pair per line; a value too wide for a whole line wraps
    between its comma-separated items under its own column.
    """
    left_w = max(len(row[0][0]) for row in rows)
    shared = [row for row in rows if len(row) == 2]
    while shared:
        right_w = max(len(row[1][0]) for row in shared)
        left_v = max(len(row[0][1]) for row in shared)
        right_v = max(len(row[1][1]) for row in shared)
        used = left_w + len(GAP) + left_v + len(PAIR_GAP) + right_w + len(GAP) + right_v
        if used <= width:
            break
        shared.remove(max(shared, key=lambda row: max(len(row[0][1]), len(row[1][1]))))
    value_w = max((len(row[0][1]) for row in shared), default=0)
    lines: list[str] = []
    for row in rows:
        if row in shared:
            (l1, v1), (l2, v2) = row
            lines.append(
                f"{l1:<{left_w}}{GAP}{v1:>{value_w}}{PAIR_GAP}{l2:<{right_w}}{GAP}{v2:>{right_v}}"
            )
            continue
        for label, value in row:
            room = max(width - left_w - len(GAP), 1)
            if len(value) <= value_w:
                lines.append(f"{label:<{left_w}}{GAP}{value:>{value_w}}")
                continue
            wrapped = pack(value.split(", "), room) if len(value) > room else [value]
            lines.append(f"{label:<{left_w}}{GAP}{wrapped[0]}")
            lines += [" " * (left_w + len(GAP)) + more for more in wrapped[1:]]
    return [line.rstrip() for line in lines]


def table(head: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """A table with the row names left-aligned and figures right-aligned, fitted to ``width``.

    First headers wrap between words, the one that saves the most first, until the table fits;
    if it is still too wide its columns are printed in consecutive parts, each repeating the
    names column. Cells are never cut.
    """
    columns = list(zip(head, *rows, strict=True))
    cell_w = [max((len(c) for c in col[1:]), default=0) for col in columns]
    widths = [max(w, len(h)) for w, h in zip(cell_w, head, strict=True)]
    narrowest = [
        max([w, *(len(word) for word in h.split())]) for w, h in zip(cell_w, head, strict=True)
    ]
    while _total(widths) > width and widths != narrowest:
        j = max(range(len(head)), key=lambda i: widths[i] - narrowest[i])
        widths[j] = narrowest[j]  # the header that saves the most wraps first
    parts: list[list[int]] = [[0]]
    for j in range(1, len(head)):
        if len(parts[-1]) > 1 and _total([widths[i] for i in [*parts[-1], j]]) > width:
            parts.append([0])
        parts[-1].append(j)
    lines: list[str] = []
    for k, part in enumerate(parts):
        if k:
            lines.append("")
        header = [pack(head[j].split(), widths[j], sep=" ") for j in part]
        depth = max(len(h) for h in header)
        for r in range(depth):
            cells = []
            for h, j in zip(header, part, strict=True):
                text = h[r - (depth - len(h))] if r >= depth - len(h) else ""
                cells.append(text.ljust(widths[j]) if j == 0 else text.rjust(widths[j]))
            lines.append(GAP.join(cells))
        lines.append(GAP.join("-" * widths[j] for j in part))
        for row in rows:
            cells = [row[j].ljust(widths[j]) if j == 0 else row[j].rjust(widths[j]) for j in part]
            lines.append(GAP.join(cells))
    return [line.rstrip() for line in lines]


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)


def breakdown(
    groups: Mapping[str, TradeStats], buy_hold: Mapping[str, float] | None, width: int
) -> list[str]:
    """The per-asset or per-strategy table."""
    head = ["", "trades", "win %", "net PnL", "fees", "profit factor", "avg trade", "avg hold"]
    if buy_hold is not None:
        head.append("buy & hold")
    rows = []
    for name, g in groups.items():
        row = [
            name,
            f"{g.trades:,}",
            num(g.win_rate, 1),
            num(g.net_pnl, 4),
            num(g.fees, 4),
            num(g.profit_factor),
            num(g.avg_trade, 4),
            duration(g.avg_holding_h),
        ]
        if buy_hold is not None:
            row.append(num(buy_hold.get(name, 0.0), 2, " %"))
        rows.append(row)
    return table(head, rows, width)


def render_summary(
    s: Summary,
    *,
    reentry: str,
    gaps: Mapping[str, tuple[int, int]],
    elapsed_s: float,
    width: int,
    bold: bool = False,
) -> str:
    """The whole terminal summary, every line at most ``width`` wide (barring a single word
    wider than the screen). ``gaps``: per symbol (gap count, missing candles)."""

    def title(text: str) -> str:
        return f"\033[1m{text}\033[0m" if bold else text

    t = s.trade
    by_reason = ", ".join(f"{k} {v}" for k, v in sorted(t.by_reason.items())) or "none"
    vetoes = ", ".join(f"{k} {v}" for k, v in sorted(s.vetoes.items())) or "none"
    rows: list[tuple[Pair, ...]] = [
        (("period", f"{timestamp(s.start_ms)} .. {timestamp(s.end_ms)}"),),
        (("assets", ", ".join(s.assets)), ("candles", f"{s.candles:,}")),
        (("strategies", ", ".join(s.strategies)), ("interval", s.interval)),
        (("starting balance", num(s.balance, 2, " USDC")), ("final equity", num(s.final_equity))),
        (
            ("total return", num(s.total_return_pct, 2, " %")),
            ("annualised return", num(s.annual_return_pct, 2, " %")),
        ),
        (
            ("max drawdown", num(s.max_drawdown_pct, 2, " %")),
            ("drawdown duration", duration(s.max_drawdown_duration_h)),
        ),
        (("Sharpe", num(s.sharpe)), ("Sortino", num(s.sortino))),
        (("Calmar", num(s.calmar)), ("profit factor", num(t.profit_factor))),
        (("trades", f"{t.trades:,}"), ("win rate", num(t.win_rate, 1, " %"))),
        (
            ("avg trade", f"{num(t.avg_trade, 4)} USDC ({num(t.avg_trade_pct, 3, ' %')})"),
            ("avg holding", duration(t.avg_holding_h)),
        ),
        (("net PnL", num(t.net_pnl, 4, " USDC")), ("fees paid", num(t.fees, 4, " USDC"))),
        (("exposure", num(s.exposure_pct, 1, " %")), ("sessions", f"{s.sessions:,}")),
        (
            ("buy & hold", num(s.buy_hold_return_pct, 2, " %")),
            ("fee per side", num(100 * s.fee_rate, 4, " %")),
        ),
        (("decisions", f"{s.decisions:,}"), ("re-entry", reentry)),
        (("vetoed", vetoes),),
        (("exits", by_reason),),
        (("time", f"{elapsed_s:.2f} s"),),
    ]
    lines = [title("Backtest"), *pairs(rows, width)]
    gap_notes = [f"{sym}: {g} gaps, {m} missing candles" for sym, (g, m) in gaps.items() if g]
    if gap_notes:
        lines += pack([f"data gaps (tolerated): {gap_notes[0]}", *gap_notes[1:]], width, sep="; ")
    lines += ["", title("Per asset"), *breakdown(s.by_asset, s.buy_hold_by_asset, width)]
    lines += ["", title("Per strategy"), *breakdown(s.by_strategy, None, width)]
    return "\n".join(lines) + "\n"
