"""Backtests: the daemon's strategies and RiskGate over candle history, money via session_model.

`run_backtest(strategies, candles, config)` is the whole thing; the steps are public so sweeps
and tests can reuse them: `Market.from_candles` aligns assets on one timeline,
`strategy_flags` runs a strategy's vectorised `indicators`/`signals` per asset (the same calls the
live engine makes on its window), `session_row` resolves the session a strategy opens through
`session_model.quick_spec` / `advanced_spec`, and `simulate` runs the compiled loop
(`bot.backtest.kernel`). Entries fill at the next candle's open, TP/SL intrabar (stop first),
fees per side, strategy exits at the next open; see the kernel's docstring for the event order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.backtest import kernel as K
from bot.domain import DEFAULT_ASSETS, Decision, ExecutionStrategy, Side
from bot.engine.risk import REASONS, RiskLimits
from bot.market import indicators
from bot.market import session_model as sm
from bot.market.data import Candles, interval_ms
from strategies.base import Strategy

__all__ = [
    "EXIT_REASONS",
    "BacktestConfig",
    "BacktestResult",
    "DecisionRecord",
    "Market",
    "Trade",
    "run_backtest",
    "session_row",
    "simulate",
    "strategy_flags",
]

F8 = NDArray[np.float64]
I8 = NDArray[np.int64]
U1 = NDArray[np.uint8]

EXIT_REASONS: dict[int, str] = {
    K.R_TAKE_PROFIT: "take_profit",
    K.R_STOP_LOSS: "stop_loss",
    K.R_SIGNAL: "exit_signal",
    K.R_TIME_STOP: "time_stop",
    K.R_END: "end_of_data",
    K.R_COMPLETED: "completed",
    K.R_EXHAUSTED: "budget_exhausted",
}


@dataclass(frozen=True)
class BacktestConfig:
    """How to run: the wallet, fees, the daemon's risk limits, and the window to trade in.

    ``reentry=None`` follows the session model (quick sessions re-enter at the next open after a
    TP/SL until the strategy closes them, as the paper daemon does); ``False`` makes every session
    end with its positions, so each trade needs a fresh entry signal (the convention of
    freqtrade, vectorbt and backtesting.py, and the canonical benchmark). ``decision_delay_ms``
    is how long after a candle closes the daemon decides (its tick offset); the session clock
    (time stops, cooldowns, the UTC day) starts then, so a parity run can match the daemon.
    """

    balance: float = 1000.0
    fees: sm.FeeSchedule = field(default_factory=sm.FeeSchedule)
    limits: RiskLimits = field(default_factory=RiskLimits)
    reentry: bool | None = None
    decision_delay_ms: int = 0
    start_ms: int | None = None
    end_ms: int | None = None
    presets: Mapping[ExecutionStrategy, sm.AdvancedPreset] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.balance) and self.balance > 0):
            raise ValueError(f"balance must be a positive number of USDC, got {self.balance!r}")
        if self.decision_delay_ms < 0:
            raise ValueError(f"decision_delay_ms must be >= 0, got {self.decision_delay_ms}")
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError("the window's end must be after its start")

    def risk_row(self) -> F8:
        lim = self.limits
        row = np.zeros(K.N_RP)
        row[K.RP_BALANCE] = self.balance
        row[K.RP_FEE_RATE] = self.fees.rate
        row[K.RP_MAX_OPEN] = lim.max_open_sessions
        row[K.RP_MAX_BUDGET] = float(lim.max_budget_per_session)
        row[K.RP_MAX_TOTAL] = float(lim.max_total_budget)
        row[K.RP_DAILY_LOSS] = float(lim.daily_loss_limit)
        row[K.RP_COOLDOWN_S] = float(lim.cooldown_s)
        row[K.RP_MIN_FREE] = float(lim.min_free_balance)
        return row


@dataclass(frozen=True, eq=False)
class Market:
    """Several assets' candles on one timeline (the union of their open times), NaN-padded.

    Price arrays are (rows, assets): the loop reads one timestamp of every asset at a time.
    """

    symbols: tuple[str, ...]
    interval: str
    ts: I8
    open: F8
    high: F8
    low: F8
    close: F8
    rows: tuple[I8, ...]
    """For each asset, the timeline index of each of its candles."""
    candles: Mapping[str, Candles]

    @classmethod
    def from_candles(cls, candles: Mapping[str, Candles]) -> Market:
        if not candles:
            raise ValueError("no candles to backtest")
        intervals = {c.interval for c in candles.values()}
        if len(intervals) != 1:
            raise ValueError(f"all assets need one interval, got {', '.join(sorted(intervals))}")
        for sym, c in candles.items():
            if len(c) == 0:
                raise ValueError(f"{sym}: no candles")
        symbols = tuple(candles)
        stamps = [candles[s].ts for s in symbols]
        ts, rows = _union_timeline(stamps, interval_ms(next(iter(intervals))))
        n = len(ts)
        cols: dict[str, F8] = {}
        for name in ("open", "high", "low", "close"):
            arr = np.full((n, len(symbols)), np.nan)
            for a, sym in enumerate(symbols):
                arr[rows[a], a] = getattr(candles[sym], name)
            cols[name] = arr
        return cls(
            symbols,
            intervals.pop(),
            np.ascontiguousarray(ts, dtype=np.int64),
            cols["open"],
            cols["high"],
            cols["low"],
            cols["close"],
            rows,
            dict(candles),
        )

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.interval)

    def __len__(self) -> int:
        return len(self.ts)

    def window(self, start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
        """Timeline rows [t0, t1) whose candles open in [start_ms, end_ms)."""
        t0 = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, side="left"))
        t1 = len(self.ts) if end_ms is None else int(np.searchsorted(self.ts, end_ms, "left"))
        return t0, max(t0, t1)


def _union_timeline(stamps: list[I8], step: int) -> tuple[I8, tuple[I8, ...]]:
    """The sorted union of several assets' open times, and where each asset's rows fall in it.

    Candles on one grid (the usual case) are placed by arithmetic, ~50x faster than sorting the
    concatenation; anything off the grid takes the general path.
    """
    if len(stamps) == 1:
        only = np.ascontiguousarray(stamps[0], dtype=np.int64)
        return only, (np.arange(len(only), dtype=np.int64),)
    lo = min(int(s[0]) for s in stamps)
    if all(not np.any((s - lo) % step) for s in stamps):
        slots = [(s - lo) // step for s in stamps]
        present = np.zeros(max(int(x[-1]) for x in slots) + 1, dtype=np.bool_)
        for x in slots:
            present[x] = True
        position = np.cumsum(present) - 1
        ts = lo + np.flatnonzero(present).astype(np.int64) * step
        return ts, tuple(position[x].astype(np.int64) for x in slots)
    ts = np.unique(np.concatenate(stamps))
    return ts, tuple(np.searchsorted(ts, s).astype(np.int64) for s in stamps)


def strategy_flags(strategy: Strategy[Any], market: Market) -> U1:
    """Entry/exit bits per (timeline row, asset), from the strategy's own vectorised arrays.

    Rows before the strategy's warm-up carry none: the live engine holds there too (it needs
    ``warmup`` closed candles before it reads the last row).
    """
    pack = indicators.compiled_twin("pack_flags_into")  # routed in when a compiled loop loads
    n_assets = len(market.symbols)
    out: U1 | None = None
    warm = max(0, strategy.warmup - 1)
    for a, sym in enumerate(market.symbols):
        candles = market.candles[sym]
        s = strategy.run(candles)
        parts = (s.enter_long, s.exit_long, s.enter_short, s.exit_short)
        if pack is not None and _booleans_of_length(parts, len(candles)):
            bits = np.empty(len(candles), dtype=np.uint8)
            pack(*(p.view(np.uint8) for p in parts), warm, bits)
        else:
            bits = _pack(*parts)
            if bits.ndim != 1 or len(bits) != len(candles):
                raise ValueError(
                    f"strategy {strategy.name} returned "
                    f"{len(bits) if bits.ndim == 1 else bits.shape} signal rows for "
                    f"{len(candles)} {sym} candles"
                )
            bits[:warm] = 0
        rows = market.rows[a]
        if n_assets == 1 and len(rows) == len(market):
            return bits[:, None]  # one asset on its own timeline: its bits are the table
        if out is None:
            out = np.zeros((len(market), n_assets), dtype=np.uint8)
        if len(rows) and int(rows[-1]) - int(rows[0]) == len(rows) - 1:
            out[int(rows[0]) : int(rows[-1]) + 1, a] = bits  # no gap: a slice, not a scatter
        else:
            out[rows, a] = bits
    assert out is not None  # a Market has at least one asset
    return out


def _pack(enter_long: Any, exit_long: Any, enter_short: Any, exit_short: Any) -> U1:
    """The four signal arrays as one byte of bits per row, each read as uint8 (``arr * bit`` as
    uint8 arithmetic). Boolean arrays are read in place and all-False ones (the short side of a
    long-only strategy) skipped: ~5x faster than casting and or-ing all four, same bytes."""
    parts = [_as_u8(x) for x in (enter_long, exit_long, enter_short, exit_short)]
    if any(p.shape != parts[0].shape for p in parts):  # broadcasting: the plain expression
        return np.asarray(
            parts[0] * K.ENTER_LONG
            | parts[1] * K.EXIT_LONG
            | parts[2] * K.ENTER_SHORT
            | parts[3] * K.EXIT_SHORT,
            dtype=np.uint8,
        )
    bits = parts[0].copy()  # ENTER_LONG is 1
    for part, bit in zip(parts[1:], (K.EXIT_LONG, K.ENTER_SHORT, K.EXIT_SHORT), strict=True):
        if part.any():
            bits |= part * bit
    return bits


def _booleans_of_length(parts: Sequence[Any], n: int) -> bool:
    """True when every part is a C-contiguous boolean array of n rows: what the compiled packer
    takes (it checks nothing itself)."""
    for p in parts:
        if not (
            isinstance(p, np.ndarray)
            and p.dtype == np.bool_
            and p.shape == (n,)
            and p.flags.c_contiguous
        ):
            return False
    return True


def _as_u8(x: Any) -> U1:
    """``np.asarray(x, dtype=np.uint8)``, but a boolean array as a view (no copy)."""
    if isinstance(x, np.ndarray) and x.dtype == np.bool_:
        return x.view(np.uint8)
    return np.asarray(x, dtype=np.uint8)


def session_row(
    strategy: Strategy[Any],
    config: BacktestConfig,
    asset_index: int = 0,
) -> F8:
    """The session a strategy opens, resolved and validated by session_model, as numbers."""
    s = strategy.params.session
    row = np.zeros(K.N_SP)
    if s.kind == "quick":
        spec = sm.quick_spec(
            float(s.budget),
            float(s.profit_target),
            float(s.loss_threshold),
            s.max_positions,
            asset_index,
            0,
        )
    else:
        spec = sm.advanced_spec(
            float(s.budget),
            s.execution_strategy,
            s.strategy_duration,
            asset_index,
            0,
            presets=config.presets,
            free_balance=None,
            max_wallet_budget=False,
        )
    row[K.SP_BUDGET] = spec.budget
    row[K.SP_TP] = spec.tp_pct
    row[K.SP_SL] = spec.sl_pct
    row[K.SP_LEVERAGE] = spec.leverage
    row[K.SP_MAX_POSITIONS] = spec.max_positions
    row[K.SP_DURATION_MS] = 0.0 if spec.duration_s is None else spec.duration_s * 1000.0
    reentry = spec.reentry if config.reentry is None else (spec.reentry and config.reentry)
    row[K.SP_REENTRY] = 1.0 if reentry else 0.0
    row[K.SP_MAX_WALLET] = 1.0 if (s.kind == "advanced" and s.max_wallet_budget) else 0.0
    return row


@dataclass(frozen=True, eq=False)
class RawRun:
    """The loop's output arrays, trimmed to what it wrote."""

    trades: F8
    decisions: F8
    sessions: F8
    equity: F8
    in_market: int
    t0: int
    t1: int


def simulate(
    market: Market,
    flags: U1,
    sessions: F8,
    config: BacktestConfig,
    *,
    kernel: Callable[..., int] | None = None,
    window: tuple[int, int] | None = None,
) -> RawRun:
    """Run the compiled loop over ``window`` (default: the config's) and return its records.

    ``flags`` is (rows, strategies, assets), strategies in slot order.
    """
    from bot.backtest import compiled

    fn = kernel or compiled.load()
    t0, t1 = window if window is not None else market.window(config.start_ms, config.end_ms)
    slots = int(sessions[:, K.SP_MAX_POSITIONS].max()) if len(sessions) else 1
    ip = np.array([t0, t1, market.interval_ms, config.decision_delay_ms, slots], dtype=np.int64)
    rp = config.risk_row()
    # A first guess at the record counts (a full array is grown and the run repeated), from the
    # window's size rather than its candles, and arrays left uninitialised (the loop writes every
    # record it counts and every equity row of the window): counting and zeroing took ~30 µs a
    # call on a year of hourly candles, a tenth of the loop itself.
    cells = (t1 - t0) * len(market.symbols)
    caps = [max(64, cells // 16), max(64, cells // 16), max(64, cells // 32)]
    equity = np.empty(len(market))
    counts = np.zeros(K.N_CT, dtype=np.int64)
    flags_c = np.ascontiguousarray(flags, dtype=np.uint8)
    sess_c = np.ascontiguousarray(sessions, dtype=np.float64)
    while True:
        trades = np.empty((caps[0], K.N_TR))
        decisions = np.empty((caps[1], K.N_DC))
        sess_out = np.empty((caps[2], K.N_SE))
        status = fn(
            market.ts,
            market.open,
            market.high,
            market.low,
            market.close,
            flags_c,
            sess_c,
            rp,
            ip,
            trades,
            decisions,
            sess_out,
            equity,
            counts,
        )
        if status == K.STATUS_OK:
            break
        caps[status - 1] *= 4
    return RawRun(
        trades[: counts[K.CT_TRADES]],
        decisions[: counts[K.CT_DECISIONS]],
        sess_out[: counts[K.CT_SESSIONS]],
        equity[t0:t1],
        int(counts[K.CT_IN_MARKET]),
        t0,
        t1,
    )


@dataclass(frozen=True)
class Trade:
    """One closed position, as the trades table and trades.csv show it."""

    asset: str
    strategy: str
    side: int
    session: int
    seq: int
    entry_ms: int
    entry_price: float
    exit_ms: int
    exit_price: float
    qty: float
    margin: float
    gross_pnl: float
    entry_fee: float
    exit_fee: float
    reason: str
    liquidated: bool

    @property
    def fees(self) -> float:
        return self.entry_fee + self.exit_fee

    @property
    def net_pnl(self) -> float:
        return self.gross_pnl - self.entry_fee - self.exit_fee


@dataclass(frozen=True)
class DecisionRecord:
    """A decision the backtest made at a candle close, with the RiskGate's verdict.

    ``decision`` is the same value the live engine would build (`Strategy.open_decision` or a
    `CloseSession`), so a parity test can compare the two drivers field by field.
    """

    time_ms: int
    asset: str
    strategy: str
    action: str  # open_long | open_short | close
    accepted: bool
    reason: str
    session: int
    decision: Any


@dataclass(eq=False)
class BacktestResult:
    """Everything a run produced; figures come from `bot.backtest.stats`."""

    market: Market
    strategies: tuple[Strategy[Any], ...]
    config: BacktestConfig
    raw: RawRun
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def strategy_names(self) -> tuple[str, ...]:
        """Names as shown in tables (a strategy used twice gets #2, #3...)."""
        names: list[str] = []
        for st in self.strategies:
            name = st.name
            k = 2
            while name in names:
                name = f"{st.name}#{k}"
                k += 1
            names.append(name)
        return tuple(names)

    @property
    def equity(self) -> F8:
        return self.raw.equity

    @property
    def times(self) -> I8:
        """Close time (ms) of each equity row."""
        t0, t1 = self.raw.t0, self.raw.t1
        out: I8 = self.market.ts[t0:t1] + self.market.interval_ms
        return out

    @property
    def trade_count(self) -> int:
        return len(self.raw.trades)

    def trades(self) -> list[Trade]:
        names = self.strategy_names
        out = []
        for r in self.raw.trades:
            out.append(
                Trade(
                    asset=self.market.symbols[int(r[K.TR_ASSET])],
                    strategy=names[int(r[K.TR_STRATEGY])],
                    side=int(r[K.TR_SIDE]),
                    session=int(r[K.TR_SESSION]),
                    seq=int(r[K.TR_SEQ]),
                    entry_ms=int(r[K.TR_ENTRY_TS]),
                    entry_price=float(r[K.TR_ENTRY_PRICE]),
                    exit_ms=int(r[K.TR_EXIT_TS]),
                    exit_price=float(r[K.TR_EXIT_PRICE]),
                    qty=float(r[K.TR_QTY]),
                    margin=float(r[K.TR_MARGIN]),
                    gross_pnl=float(r[K.TR_GROSS]),
                    entry_fee=float(r[K.TR_ENTRY_FEE]),
                    exit_fee=float(r[K.TR_EXIT_FEE]),
                    reason=EXIT_REASONS[int(r[K.TR_REASON])],
                    liquidated=bool(r[K.TR_LIQUIDATED]),
                )
            )
        return out

    def decisions(self) -> list[DecisionRecord]:
        """Every decision in order, accepted or vetoed, with the value the daemon would build."""
        from bot.domain import CloseSession

        names = self.strategy_names
        out = []
        for r in self.raw.decisions:
            s = int(r[K.DC_STRATEGY])
            asset = self.market.symbols[int(r[K.DC_ASSET])]
            action = int(r[K.DC_ACTION])
            code = int(r[K.DC_CODE])
            when = int(r[K.DC_TIME])
            strategy = self.strategies[s]
            candle = _fmt_minute(when - self.config.decision_delay_ms - self.market.interval_ms)
            decision: Decision
            if action == 0:
                label = "close"
                decision = CloseSession(strategy.name, asset, f"exit signal on the {candle} candle")
            else:
                side = Side.LONG if action > 0 else Side.SHORT
                label = "open_long" if action > 0 else "open_short"
                word = "long" if action > 0 else "short"
                decision = strategy.open_decision(
                    asset, side, f"{word} entry on the {candle} candle"
                )
            out.append(
                DecisionRecord(
                    time_ms=when,
                    asset=asset,
                    strategy=names[s],
                    action=label,
                    accepted=code == 0,
                    reason=REASONS.get(code, str(code)),
                    session=int(r[K.DC_SESSION]),
                    decision=decision,
                )
            )
        return out


def _fmt_minute(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def asset_index(symbol: str, position: int) -> int:
    """Hyperliquid's index for known assets; others get one past the table (model needs >= 0)."""
    return DEFAULT_ASSETS.get(symbol.upper(), len(DEFAULT_ASSETS) + position)


def run_backtest(
    strategies: Sequence[Strategy[Any]],
    candles: Mapping[str, Candles] | Market,
    config: BacktestConfig | None = None,
    *,
    kernel: Callable[..., int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Backtest ``strategies`` (in slot order) over every asset of ``candles`` in one portfolio."""
    import time

    cfg = config or BacktestConfig()
    if not strategies:
        raise ValueError("no strategy to backtest")
    for st in strategies:
        if not isinstance(st, Strategy):
            raise TypeError(
                f"{getattr(st, 'name', st)!r} is not a candle strategy (position managers act "
                "on live state and are not backtested)"
            )
    if kernel is None:
        from bot.backtest import compiled

        # loaded before the signal step, which it routes through the compiled indicator twins
        kernel = compiled.load()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    market = candles if isinstance(candles, Market) else Market.from_candles(candles)
    timings["align"] = time.perf_counter() - started
    t = time.perf_counter()
    flags = np.zeros((len(market), len(strategies), len(market.symbols)), dtype=np.uint8)
    for s, st in enumerate(strategies):
        if progress is not None:
            progress(f"signals: {st.name}")
        flags[:, s, :] = strategy_flags(st, market)
    sessions = np.stack([session_row(st, cfg) for st in strategies])
    timings["signals"] = time.perf_counter() - t
    if progress is not None:
        progress("simulating")
    t = time.perf_counter()
    raw = simulate(market, flags, sessions, cfg, kernel=kernel)
    timings["simulate"] = time.perf_counter() - t
    return BacktestResult(
        market,
        tuple(strategies),
        cfg,
        raw,
        elapsed_s=time.perf_counter() - started,
        timings=timings,
    )
