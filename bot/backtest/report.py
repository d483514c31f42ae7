"""`--report DIR`: trades.csv, equity.csv, summary.json and a self-contained report.html.

The HTML embeds its plots (PNG from matplotlib, the optional ``report`` extra; without it, simple
inline SVG charts drawn here) and its styles, so it opens from a mail attachment or an offline
laptop: no script, font or image is fetched from anywhere. A few lines of inline script confirm
that every plot decoded and mark the page (``data-plots``) for the headless-browser test.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.backtest import kernel as K
from bot.backtest.engine import BacktestResult
from bot.backtest.stats import Summary, TradeStats, buy_and_hold, drawdown

F8 = NDArray[np.float64]

__all__ = ["write_report"]


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_trades_csv(result: BacktestResult, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "asset",
                "strategy",
                "side",
                "session",
                "seq",
                "entry_time",
                "entry_price",
                "exit_time",
                "exit_price",
                "qty",
                "margin",
                "gross_pnl",
                "entry_fee",
                "exit_fee",
                "net_pnl",
                "reason",
                "liquidated",
            ]
        )
        for t in result.trades():
            w.writerow(
                [
                    t.asset,
                    t.strategy,
                    "long" if t.side > 0 else "short",
                    t.session,
                    t.seq,
                    _iso(t.entry_ms),
                    repr(t.entry_price),
                    _iso(t.exit_ms),
                    repr(t.exit_price),
                    repr(t.qty),
                    repr(t.margin),
                    repr(t.gross_pnl),
                    repr(t.entry_fee),
                    repr(t.exit_fee),
                    repr(t.net_pnl),
                    t.reason,
                    int(t.liquidated),
                ]
            )


def write_equity_csv(result: BacktestResult, path: Path, hold: F8) -> None:
    equity = result.equity
    dd = drawdown(equity)
    bal = result.config.balance
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "equity", "drawdown_pct", "buy_hold_equity"])
        for ms, e, d, b in zip(
            result.times.tolist(), equity.tolist(), dd.tolist(), hold.tolist(), strict=True
        ):
            w.writerow([_iso(ms), repr(e), f"{100 * d:.6f}", repr(bal * b)])


# -- plots --------------------------------------------------------------------------------------


def _dates(ms: NDArray[Any]) -> NDArray[Any]:
    return np.asarray(ms, dtype="datetime64[ms]")


def plot_count(result: BacktestResult, hold: F8) -> int:
    """How many plots the report draws: equity, drawdown, one per asset, and buy & hold apart
    when its swings would flatten the strategy's curve on a shared scale."""
    apart = _hold_apart(result.equity, result.config.balance * hold)
    return 2 + len(result.market.symbols) + (1 if apart else 0)


def _hold_apart(equity: F8, held: F8) -> bool:
    span = max(float(equity.max() - equity.min()), 1e-9)
    return float(held.max() - held.min()) > 4 * span


def _png_plots(
    result: BacktestResult, hold: F8, drawing: Callable[[str], None]
) -> list[tuple[str, str]] | None:
    """(title, data URI) per plot, or None when matplotlib is not installed; ``drawing`` hears
    each plot's title as it starts (a plot takes ~0.2 s)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    out: list[tuple[str, str]] = []
    times = _dates(result.times)
    equity = result.equity
    bal = result.config.balance

    def emit(fig: Any, title: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        out.append((title, "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()))

    drawing("Equity")
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.plot(times, equity, color="#1f6feb", lw=1.2, label="strategy equity")
    ax.axhline(bal, color="#444", lw=0.6, ls=":")
    held = bal * hold
    apart = _hold_apart(equity, held)
    bh_return = 100 * (float(hold[-1]) - 1) if len(hold) else 0.0
    if not apart:
        ax.plot(times, held, color="#8b949e", lw=1.0, label="buy & hold (same assets)")
        title = "Equity (marked to each candle's close, fees included)"
    else:
        # buy & hold puts everything in the market; on the strategy's scale it would flatten
        # the strategy's curve into a line, so it gets its own panel below
        title = f"Equity (marked to each close, fees included); buy & hold: {bh_return:+,.1f} %"
    ax.set_ylabel("USDC")
    ax.set_title(title)
    _legend_outside(ax)
    emit(fig, "Equity")
    if apart:
        drawing("Buy & hold")
        fig, ax = plt.subplots(figsize=(11, 2.4))
        ax.plot(times, held, color="#8b949e", lw=1.0)
        ax.set_ylabel("USDC")
        ax.set_title("Buy & hold of the same assets, same starting balance, fees included")
        emit(fig, "Buy & hold")

    drawing("Drawdown")
    fig, ax = plt.subplots(figsize=(11, 2.4))
    dd = 100 * drawdown(equity)
    ax.fill_between(times, dd, 0, color="#d73a49", alpha=0.35, lw=0)
    ax.plot(times, dd, color="#d73a49", lw=0.8)
    ax.set_ylabel("%")
    ax.set_title("Drawdown from the running peak")
    emit(fig, "Drawdown")

    market = result.market
    t0, t1 = result.raw.t0, result.raw.t1
    trades = result.raw.trades
    step = np.timedelta64(market.interval_ms, "ms")
    for a, sym in enumerate(market.symbols):
        drawing(f"{sym} price")
        close = market.close[t0:t1, a]
        have = ~np.isnan(close)
        mine = trades[trades[:, K.TR_ASSET] == a]
        zoom = len(mine) > 30
        fig, axes = plt.subplots(
            2 if zoom else 1, 1, figsize=(11, 6.2 if zoom else 3.2), squeeze=False
        )
        _price_panel(axes[0, 0], times[have] - step, close[have], mine, f"{sym} close")
        axes[0, 0].set_title(f"{sym}: price with entries and exits ({len(mine):,} trades)")
        if zoom:
            first = mine[-20, K.TR_ENTRY_TS]
            lo = int(np.searchsorted(result.times - market.interval_ms, first)) - 24
            keep = np.zeros(len(close), dtype=bool)
            keep[max(0, lo) :] = True
            keep &= have
            recent = mine[mine[:, K.TR_EXIT_TS] >= first]
            _price_panel(axes[1, 0], times[keep] - step, close[keep], recent, f"{sym} close")
            axes[1, 0].set_title(f"{sym}: the last {len(recent)} trades, close up")
        fig.tight_layout()
        emit(fig, f"{sym} price, entries and exits")
    return out


def _price_panel(ax: Any, x: NDArray[Any], close: F8, trades: F8, label: str) -> None:
    import matplotlib.dates as mdates

    ax.plot(x, close, color="#333", lw=0.7, label=label)
    # short tick labels ("31", "Jun", "03"): a close-up's days across a month end collided
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    if len(trades):
        net = trades[:, K.TR_GROSS] - trades[:, K.TR_ENTRY_FEE] - trades[:, K.TR_EXIT_FEE]
        win = net > 0
        size = 22 if len(trades) < 100 else 8
        ax.scatter(
            _dates(trades[:, K.TR_ENTRY_TS].astype(np.int64)),
            trades[:, K.TR_ENTRY_PRICE],
            marker="^",
            s=size,
            color="#2da44e",
            label="entry",
            zorder=3,
        )
        for mask, colour, name in ((win, "#1f6feb", "exit, won"), (~win, "#d73a49", "exit, lost")):
            if mask.any():
                ax.scatter(
                    _dates(trades[mask, K.TR_EXIT_TS].astype(np.int64)),
                    trades[mask, K.TR_EXIT_PRICE],
                    marker="v",
                    s=size,
                    color=colour,
                    label=name,
                    zorder=3,
                )
    _legend_outside(ax)


def _legend_outside(ax: Any) -> None:
    """Right of the plot, so it never hides the start of a curve or a trade."""
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0, frameon=False, fontsize=8
    )


def _svg_line(
    xs: F8, series: Sequence[tuple[F8, str]], title: str, width: int = 1000, height: int = 260
) -> str:
    """A minimal inline-SVG line chart (the fallback without matplotlib)."""
    pad_l, pad_r, pad_t, pad_b = 60, 10, 24, 20
    n = len(xs)
    step = max(1, n // 1500)
    idx = np.arange(0, n, step)
    x = xs[idx].astype(np.float64)
    ys = [s[idx] for s, _ in series]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.zeros(1)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    x0, x1 = float(x[0]), float(x[-1]) if len(x) > 1 else float(x[0]) + 1

    def px(v: float) -> float:
        return pad_l + (v - x0) / max(x1 - x0, 1.0) * (width - pad_l - pad_r)

    def py(v: float) -> float:
        return pad_t + (hi - v) / (hi - lo) * (height - pad_t - pad_b)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{pad_l}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<text x="4" y="{py(hi) + 4:.0f}" font-size="10">{hi:,.2f}</text>',
        f'<text x="4" y="{py(lo):.0f}" font-size="10">{lo:,.2f}</text>',
    ]
    for y, colour in zip(ys, [c for _, c in series], strict=True):
        pts = " ".join(
            f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y, strict=True) if math.isfinite(b)
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1" points="{pts}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_plots(result: BacktestResult, hold: F8) -> list[tuple[str, str]]:
    xs = result.times.astype(np.float64)
    bal = result.config.balance
    out = [
        (
            "Equity",
            _svg_line(
                xs,
                [(result.equity, "#1f6feb"), (bal * hold, "#8b949e")],
                "Equity (blue) and buy & hold (grey), USDC",
            ),
        ),
        (
            "Drawdown",
            _svg_line(
                xs,
                [(100 * drawdown(result.equity), "#d73a49")],
                "Drawdown from the running peak, %",
            ),
        ),
    ]
    market = result.market
    t0, t1 = result.raw.t0, result.raw.t1
    for a, sym in enumerate(market.symbols):
        out.append(
            (f"{sym} price", _svg_line(xs, [(market.close[t0:t1, a], "#333")], f"{sym} close"))
        )
    return out


# -- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;
max-width:1180px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#59636e;margin-bottom:16px}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
td,th{padding:3px 10px;border-bottom:1px solid #e1e4e8;text-align:right}
td:first-child,th:first-child{text-align:left}
.kv td:nth-child(odd){color:#59636e;text-align:left}.kv td:nth-child(even){font-weight:600}
.pos{color:#1a7f37}.neg{color:#cf222e}
figure{margin:12px 0}figure img,figure svg{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:12px;color:#59636e}
.note{font-size:12px;color:#59636e}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure img');
  var svgs = document.querySelectorAll('figure svg');
  var bad = 0;
  imgs.forEach(function (im) { if (!im.complete || im.naturalWidth === 0) { bad++; } });
  if (bad) { console.error('report: ' + bad + ' plot(s) failed to load'); }
  document.body.setAttribute('data-plots', (imgs.length + svgs.length - bad) + '/' +
    (imgs.length + svgs.length));
});
"""


def _fmt(x: float, digits: int = 2, suffix: str = "") -> str:
    if not math.isfinite(x):
        return "n/a" if math.isnan(x) else "∞"
    return f"{x:,.{digits}f}{suffix}"


def _signed(x: float, digits: int = 2, suffix: str = "") -> str:
    cls = "pos" if x > 0 else "neg" if x < 0 else ""
    return f'<span class="{cls}">{_fmt(x, digits, suffix)}</span>'


def _group_table(groups: dict[str, TradeStats], hold: dict[str, float] | None) -> str:
    head = ["", "trades", "win %", "net PnL", "fees", "profit factor", "avg trade", "avg hold (h)"]
    if hold is not None:
        head.append("buy &amp; hold")
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for name, g in groups.items():
        cells = [
            html.escape(name),
            f"{g.trades:,}",
            _fmt(g.win_rate, 1),
            _signed(g.net_pnl, 4),
            _fmt(g.fees, 4),
            _fmt(g.profit_factor),
            _signed(g.avg_trade, 4),
            _fmt(g.avg_holding_h, 1),
        ]
        if hold is not None:
            cells.append(_signed(hold.get(name, 0.0), 2, " %"))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def render_html(result: BacktestResult, s: Summary, plots: list[tuple[str, str]]) -> str:
    t = s.trade
    cfg = result.config
    reentry = "session model" if cfg.reentry is None else ("on" if cfg.reentry else "off")
    kv = [
        ("Period", f"{_iso(s.start_ms)[:16]} → {_iso(s.end_ms)[:16]} UTC"),
        ("Candles", f"{s.candles:,} ({s.interval})"),
        ("Starting balance", _fmt(s.balance, 2, " USDC")),
        ("Final equity", _fmt(s.final_equity, 2, " USDC")),
        ("Total return", _signed(s.total_return_pct, 2, " %")),
        ("Annualised return", _signed(s.annual_return_pct, 2, " %")),
        ("Buy &amp; hold", _signed(s.buy_hold_return_pct, 2, " %")),
        ("Max drawdown", _fmt(s.max_drawdown_pct, 2, " %")),
        ("Drawdown duration", _fmt(s.max_drawdown_duration_h / 24, 1, " days")),
        ("Sharpe", _fmt(s.sharpe)),
        ("Sortino", _fmt(s.sortino)),
        ("Calmar", _fmt(s.calmar)),
        ("Trades", f"{t.trades:,}"),
        ("Win rate", _fmt(t.win_rate, 1, " %")),
        ("Profit factor", _fmt(t.profit_factor)),
        ("Net PnL", _signed(t.net_pnl, 4, " USDC")),
        ("Average trade", f"{_signed(t.avg_trade, 4, ' USDC')} ({_fmt(t.avg_trade_pct, 3)} %)"),
        ("Average holding", _fmt(t.avg_holding_h, 1, " h")),
        ("Fees paid", _fmt(t.fees, 4, " USDC")),
        ("Exposure", _fmt(s.exposure_pct, 1, " %")),
        ("Sessions", f"{s.sessions:,}"),
        ("Decisions", f"{s.decisions:,} ({sum(s.vetoes.values()):,} vetoed)"),
    ]
    cells = [f"<td>{k}</td><td>{v}</td>" for k, v in kv]
    kv_rows = "".join("<tr>" + "".join(cells[i : i + 3]) + "</tr>" for i in range(0, len(cells), 3))
    reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(t.by_reason.items())) or "none"
    vetoes = ", ".join(f"{k}: {v:,}" for k, v in sorted(s.vetoes.items())) or "none"
    figures = "".join(
        f'<figure><img src="{uri}" alt="{html.escape(title)}"><figcaption>{html.escape(title)}'
        "</figcaption></figure>"
        if uri.startswith("data:")
        else f"<figure>{uri}<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, uri in plots
    )
    trades = result.trades()
    shown = trades if len(trades) <= 400 else trades[:200] + trades[-200:]
    trade_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{c}</td>"
            for c in (
                html.escape(tr.asset),
                html.escape(tr.strategy),
                "long" if tr.side > 0 else "short",
                _iso(tr.entry_ms)[:16].replace("T", " "),
                f"{tr.entry_price:.6g}",
                _iso(tr.exit_ms)[:16].replace("T", " "),
                f"{tr.exit_price:.6g}",
                tr.reason,
                _signed(tr.net_pnl, 4),
            )
        )
        + "</tr>"
        for tr in shown
    )
    cut = (
        f'<p class="note">{len(trades):,} trades; the first and last 200 are listed, all are in '
        "trades.csv.</p>"
        if len(shown) < len(trades)
        else ""
    )
    title = f"Backtest: {', '.join(s.strategies)} on {', '.join(s.assets)}"
    params = "; ".join(
        f"{st.name}: {json.dumps(st.params.model_dump(mode='json'), separators=(',', ':'))}"
        for st in result.strategies
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="sub">{s.interval} candles · fee {100 * s.fee_rate:.4f} % per side · re-entry
{reentry} · entries at the next candle's open, TP/SL intrabar (stop first) · risk limits:
{result.config.limits.max_open_sessions} sessions, cooldown {result.config.limits.cooldown_s} s,
daily loss {result.config.limits.daily_loss_limit} USDC</div>
<table class="kv">{kv_rows}</table>
<p class="note">Exits: {reasons}. Vetoes: {vetoes}.</p>
<h2>Plots</h2>{figures}
<h2>Per asset</h2>{_group_table(s.by_asset, s.buy_hold_by_asset)}
<h2>Per strategy</h2>{_group_table(s.by_strategy, None)}
<h2>Trades</h2>{cut}
<table><tr><th>asset</th><th>strategy</th><th>side</th><th>entry (UTC)</th><th>entry price</th>
<th>exit (UTC)</th><th>exit price</th><th>reason</th><th>net PnL</th></tr>{trade_rows}</table>
<p class="note">Parameters: {html.escape(params)}</p>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_report(
    result: BacktestResult,
    summary: Summary,
    out_dir: Path,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Write the four files into ``out_dir`` (created); returns the HTML's path.

    ``progress`` hears (what starts now, parts finished, parts in all) as each file and each
    plot starts: the plots take a second or more, and a bar that stood still would look hung.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    hold, _ = buy_and_hold(result.market, result.raw.t0, result.raw.t1, result.config.fees.rate)
    parts = 4 + plot_count(result, hold)  # three data files, the plots, the page
    finished = 0

    def starting(what: str) -> None:
        nonlocal finished
        if progress is not None:
            progress(what, finished, parts)
        finished += 1

    starting("trades.csv")
    write_trades_csv(result, out_dir / "trades.csv")
    starting("equity.csv")
    write_equity_csv(result, out_dir / "equity.csv", hold)
    starting("summary.json")
    (out_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n")
    plots = _png_plots(result, hold, lambda title: starting(f"plot: {title}"))
    if plots is None:
        plots = _svg_plots(result, hold)
        finished = parts - 1
    starting("report.html")
    page = out_dir / "report.html"
    page.write_text(render_html(result, summary, plots), encoding="utf-8")
    return page
