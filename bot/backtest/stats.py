"""Figures of a backtest: returns, drawdowns, ratios, trade statistics, buy-and-hold.

Plain numpy over the result's arrays (no pandas): the terminal summary, summary.json, the HTML
report and the sweep's ranking all read the same numbers from here.

Conventions: returns are on the starting balance; Sharpe and Sortino use per-candle returns of
the marked-to-close equity, annualised with sqrt(candles per year) and a zero risk-free rate;
Calmar is the annualised return over the maximum drawdown; the drawdown duration is the longest
time spent below a previous equity peak; exposure is the share of candles with a position open.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.backtest import kernel as K
from bot.backtest.engine import EXIT_REASONS, BacktestResult, Market

F8 = NDArray[np.float64]
YEAR_MS = 365.25 * 86_400_000


@dataclass(frozen=True)
class TradeStats:
    """Trade-level figures for a group of trades (all, one asset, one strategy)."""

    trades: int
    wins: int
    win_rate: float
    net_pnl: float
    gross_pnl: float
    fees: float
    profit_factor: float
    avg_trade: float
    avg_trade_pct: float
    best_trade: float
    worst_trade: float
    avg_holding_h: float
    by_reason: dict[str, int]


@dataclass(frozen=True)
class Summary:
    """Every figure the terminal summary and summary.json show."""

    start_ms: int
    end_ms: int
    candles: int
    assets: list[str]
    strategies: list[str]
    interval: str
    balance: float
    final_equity: float
    total_return_pct: float
    annual_return_pct: float
    max_drawdown_pct: float
    max_drawdown_duration_h: float
    sharpe: float
    sortino: float
    calmar: float
    exposure_pct: float
    trade: TradeStats
    decisions: int
    vetoes: dict[str, int]
    sessions: int
    buy_hold_return_pct: float
    buy_hold_by_asset: dict[str, float]
    by_asset: dict[str, TradeStats]
    by_strategy: dict[str, TradeStats]
    fee_rate: float
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return _finite(out)  # type: ignore[no-any-return]


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as null (profit factor without losses is unbounded)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def trade_stats(rows: F8) -> TradeStats:
    """Figures over trade records (kernel layout)."""
    n = len(rows)
    if n == 0:
        return TradeStats(0, 0, 0.0, 0.0, 0.0, 0.0, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0, {})
    gross = rows[:, K.TR_GROSS]
    fees = rows[:, K.TR_ENTRY_FEE] + rows[:, K.TR_EXIT_FEE]
    net = gross - rows[:, K.TR_ENTRY_FEE] - rows[:, K.TR_EXIT_FEE]
    wins = int(np.count_nonzero(net > 0))
    won = float(net[net > 0].sum())
    lost = float(-net[net < 0].sum())
    pf = won / lost if lost > 0 else (math.inf if won > 0 else math.nan)
    held_h = (rows[:, K.TR_EXIT_TS] - rows[:, K.TR_ENTRY_TS]) / 3_600_000
    reasons, counts = np.unique(rows[:, K.TR_REASON].astype(np.int64), return_counts=True)
    return TradeStats(
        trades=n,
        wins=wins,
        win_rate=100.0 * wins / n,
        net_pnl=float(net.sum()),
        gross_pnl=float(gross.sum()),
        fees=float(fees.sum()),
        profit_factor=pf,
        avg_trade=float(net.mean()),
        avg_trade_pct=float((100.0 * net / rows[:, K.TR_MARGIN]).mean()),
        best_trade=float(net.max()),
        worst_trade=float(net.min()),
        avg_holding_h=float(held_h.mean()),
        by_reason={EXIT_REASONS[int(r)]: int(c) for r, c in zip(reasons, counts, strict=True)},
    )


def drawdown(equity: F8) -> F8:
    """Drawdown from the running peak, as a fraction (0 at a new high, -0.1 at 10 % below)."""
    if len(equity) == 0:
        return np.zeros(0)
    peak = np.maximum.accumulate(equity)
    out: F8 = equity / peak - 1.0
    return out


def max_drawdown_duration_ms(equity: F8, times: NDArray[np.int64]) -> int:
    """The longest time spent below a previous peak (to the end of the data if not recovered)."""
    if len(equity) == 0:
        return 0
    peak = np.maximum.accumulate(equity)
    at_peak = np.flatnonzero(equity >= peak)
    ends = np.append(at_peak[1:], len(equity) - 1)
    spans = times[ends] - times[at_peak]
    return int(spans.max()) if spans.size else 0


def buy_and_hold(market: Market, t0: int, t1: int, fee_rate: float) -> tuple[F8, dict[str, float]]:
    """Equal money in each asset at its first open in the window, fees per side, held to the end.

    Returns the portfolio's value relative to the start (1.0 = flat) per row, and each asset's
    return in %.
    """
    n_assets = len(market.symbols)
    value = np.zeros(t1 - t0)
    by_asset: dict[str, float] = {}
    for a, sym in enumerate(market.symbols):
        opens = market.open[t0:t1, a]
        closes = market.close[t0:t1, a]
        have = np.flatnonzero(~np.isnan(opens))
        if have.size == 0:
            value += 1.0 / n_assets
            by_asset[sym] = 0.0
            continue
        first = int(have[0])
        entry = float(opens[first])
        qty = (1.0 - fee_rate) / entry
        filled = closes.copy()
        filled[:first] = np.nan
        idx = np.where(~np.isnan(filled), np.arange(len(filled)), 0)
        np.maximum.accumulate(idx, out=idx)
        marked = np.where(np.arange(len(filled)) < first, 1.0, qty * filled[idx] * (1 - fee_rate))
        value += marked / n_assets
        by_asset[sym] = 100.0 * (float(marked[-1]) - 1.0)
    return value, by_asset


def summarize(result: BacktestResult) -> Summary:
    raw = result.raw
    market = result.market
    cfg = result.config
    equity = raw.equity
    times = result.times
    n = len(equity)
    balance = cfg.balance
    final = float(equity[-1]) if n else balance
    span_ms = float(times[-1] - times[0] + market.interval_ms) if n else 0.0
    years = span_ms / YEAR_MS
    total = final / balance - 1.0
    annual = (final / balance) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else math.nan
    dd = drawdown(equity)
    max_dd = float(-dd.min()) if n else 0.0
    rets = np.diff(equity, prepend=balance) / np.concatenate(([balance], equity[:-1])) if n else dd
    per_year = YEAR_MS / market.interval_ms
    sd = float(rets.std()) if n else 0.0
    mean = float(rets.mean()) if n else 0.0
    sharpe = mean / sd * math.sqrt(per_year) if sd > 0 else math.nan
    downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2))) if n else 0.0
    sortino = mean / downside * math.sqrt(per_year) if downside > 0 else math.nan
    calmar = annual / max_dd if max_dd > 0 and math.isfinite(annual) else math.nan
    decisions = raw.decisions
    codes = decisions[:, K.DC_CODE].astype(np.int64) if len(decisions) else np.zeros(0, np.int64)
    from bot.engine.risk import REASONS

    vetoes: dict[str, int] = {}
    for code in codes[codes != 0]:
        key = REASONS.get(int(code), str(code))
        vetoes[key] = vetoes.get(key, 0) + 1
    bh_curve, bh_assets = buy_and_hold(market, raw.t0, raw.t1, cfg.fees.rate)
    names = result.strategy_names
    trades = raw.trades
    by_asset = {
        sym: trade_stats(trades[trades[:, K.TR_ASSET] == a]) for a, sym in enumerate(market.symbols)
    }
    by_strategy = {
        name: trade_stats(trades[trades[:, K.TR_STRATEGY] == s]) for s, name in enumerate(names)
    }
    return Summary(
        start_ms=int(market.ts[raw.t0]) if n else 0,
        end_ms=int(times[-1]) if n else 0,
        candles=int(np.count_nonzero(~np.isnan(market.open[raw.t0 : raw.t1]))),
        assets=list(market.symbols),
        strategies=list(names),
        interval=market.interval,
        balance=balance,
        final_equity=final,
        total_return_pct=100.0 * total,
        annual_return_pct=100.0 * annual,
        max_drawdown_pct=100.0 * max_dd,
        max_drawdown_duration_h=max_drawdown_duration_ms(equity, times) / 3_600_000,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        exposure_pct=100.0 * raw.in_market / n if n else 0.0,
        trade=trade_stats(trades),
        decisions=len(decisions),
        vetoes=vetoes,
        sessions=len(raw.sessions),
        buy_hold_return_pct=100.0 * (float(bh_curve[-1]) - 1.0) if n else 0.0,
        buy_hold_by_asset=bh_assets,
        by_asset=by_asset,
        by_strategy=by_strategy,
        fee_rate=cfg.fees.rate,
        elapsed_s=result.elapsed_s,
    )
