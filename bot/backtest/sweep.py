"""Parameter sweeps: a grid (or a random / successive-halving subset), walk-forward, in parallel.

Every parameter set is a full backtest through the same engine as `alura-bot backtest`; only the
orchestration is here. Walk-forward splits the data into folds of a training window followed by
a test window (the test windows tile the end of the data): each set is evaluated on both, the
best set per fold is chosen on training data alone, and the ranking shows in-sample next to
out-of-sample figures, so a set that only fits the past is visible as such.

Work is spread over local processes (``concurrent.futures``, forked so the candles are loaded
once) or, with ``ray_address``, over an existing Ray cluster running the very same task function
(``pip install 'alura-bot[ray]'``; every node must see the candle files at the same path).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bot.backtest import kernel as K
from bot.backtest.engine import (
    BacktestConfig,
    Market,
    RawRun,
    session_row,
    simulate,
    strategy_flags,
)
from bot.backtest.stats import YEAR_MS, drawdown

__all__ = [
    "METRICS",
    "DataSpec",
    "SweepOptions",
    "SweepResult",
    "evaluate_chunk",
    "parse_grid",
    "run_sweep",
    "walk_forward_windows",
]

METRICS = ("sharpe", "total_return", "calmar", "profit_factor", "sortino", "net_pnl")


class SweepError(ValueError):
    """A bad grid, metric or option; the message says which."""


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_grid(text: str) -> dict[str, list[Any]]:
    """``'fast=5:50:5,slow=20:200:10,kind=sma|ema'`` -> values per key (ranges include stop)."""
    grid: dict[str, list[Any]] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, spec = part.partition("=")
        key = key.strip()
        if not eq or not key or not spec.strip():
            raise SweepError(f"grid item {part!r}: expected key=start:stop:step or key=a|b|c")
        if key in grid:
            raise SweepError(f"grid key {key!r} given twice")
        spec = spec.strip()
        if ":" in spec:
            bits = spec.split(":")
            if len(bits) != 3:
                raise SweepError(f"grid item {part!r}: a range is start:stop:step")
            try:
                start, stop, step = (_number(b) for b in bits)
            except ValueError:
                raise SweepError(f"grid item {part!r}: range bounds must be numbers") from None
            if step <= 0 or stop < start:
                raise SweepError(f"grid item {part!r}: need step > 0 and stop >= start")
            count = math.floor((stop - start) / step + 1e-9) + 1
            values: list[Any] = [start + i * step for i in range(count)]
            if all(isinstance(x, int) for x in (start, stop, step)):
                values = [int(v) for v in values]
            else:
                values = [round(float(v), 10) for v in values]
        else:
            values = [json.loads(v) if _is_json(v) else v for v in spec.split("|")]
        grid[key] = values
    if not grid:
        raise SweepError("the grid is empty")
    return grid


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to nested dicts (session.budget -> {"session": {"budget": ...}})."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def walk_forward_windows(
    t0: int, t1: int, folds: int, train_frac: float
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(train, test) row windows; the test windows are contiguous and end at ``t1``.

    With ``folds`` folds each window is W rows, training the first ``train_frac`` of it, and
    successive windows slide by the test length: W = N / (1 + (folds - 1) * (1 - train_frac)).
    """
    n = t1 - t0
    width = n / (1 + (folds - 1) * (1 - train_frac))
    test_len = width * (1 - train_frac)
    out = []
    for k in range(folds):
        start = t0 + round(k * test_len)
        split = t0 + round(k * test_len + width * train_frac)
        end = t1 if k == folds - 1 else t0 + round(k * test_len + width)
        out.append(((start, split), (split, end)))
    return out


# -- data, shared by the local workers and Ray tasks --------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """How a worker gets the candles: files (re-read where needed) or the synthetic seed."""

    paths: tuple[str, ...]
    synthetic: int | None
    interval: str | None
    assets: tuple[str, ...] | None
    exchange: str | None
    start_ms: int | None
    end_ms: int | None

    def load(self) -> Market:
        from bot.cli_backtest import load_data, synthetic_data

        if self.synthetic is not None:
            data = synthetic_data(
                self.synthetic,
                self.interval or "1h",
                list(self.assets) if self.assets else None,
                self.start_ms,
                self.end_ms,
            )
        else:
            data = load_data(
                [Path(p) for p in self.paths],
                interval=self.interval,
                assets=list(self.assets) if self.assets else None,
                exchange=self.exchange,
                allow_gaps=True,
            )
        return Market.from_candles(data.candles)


_MARKETS: dict[DataSpec, Market] = {}


def _market(spec: DataSpec) -> Market:
    market = _MARKETS.get(spec)
    if market is None:
        market = _MARKETS[spec] = spec.load()
    return market


# -- evaluation ---------------------------------------------------------------------------------

_MEMO_BYTES = 96 * 1024 * 1024
_MEMOIZED = ("sma", "smas", "ema", "rma", "rsi", "macd", "atr", "bollinger", "true_range")


class _Memo:
    """A byte-bounded LRU of indicator results, keyed by the input arrays' identity.

    Across a sweep the same candles meet the same few periods again and again (a 40 x 25 grid
    of fast/slow averages needs 65 distinct averages, not 2,000). Inputs are the candles'
    read-only columns, alive for the whole sweep, so identity is a safe key; the cache keeps
    them referenced and hands out copies, so a strategy may still modify what it gets.
    """

    def __init__(self, limit: int) -> None:
        from collections import OrderedDict

        self.limit = limit
        self.size = 0
        self.items: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> Any:
        """A copy of what ``key`` holds, or None."""
        hit = self.items.get(key)
        if hit is None:
            return None
        self.items.move_to_end(key)
        return _copy(hit[1])

    def put(self, key: tuple[Any, ...], arrays: tuple[Any, ...], value: Any) -> None:
        self.items[key] = (arrays, _copy(value))
        self.size += _nbytes(value)
        while self.size > self.limit and self.items:
            _, (_, old) = self.items.popitem(last=False)
            self.size -= _nbytes(old)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(fn)
        def cached(*args: Any, **kwargs: Any) -> Any:
            arrays = tuple(a for a in args if isinstance(a, np.ndarray))
            if not arrays or any(a.flags.writeable for a in arrays):
                return fn(*args, **kwargs)
            key = (
                fn.__name__,
                tuple(id(a) if isinstance(a, np.ndarray) else a for a in args),
                tuple(sorted(kwargs.items())),
            )
            hit = self.get(key)
            if hit is not None:
                return hit
            value = fn(*args, **kwargs)
            self.put(key, arrays, value)
            return value

        return cached

    def wrap_smas(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`indicators.smas` kept per period, in the entries `sma(x, n)` uses: a grid of
        (fast, slow) pairs asks for each average many times, each pair only once."""
        import functools

        @functools.wraps(fn)
        def cached(x: Any, *periods: int) -> tuple[Any, ...]:
            if not isinstance(x, np.ndarray) or x.flags.writeable:
                return tuple(fn(x, *periods))
            keys = [("sma", (id(x), n), ()) for n in periods]
            found = [self.get(k) for k in keys]
            missing = list(
                dict.fromkeys(n for n, v in zip(periods, found, strict=True) if v is None)
            )
            if not missing:
                return tuple(found)
            fresh = dict(zip(missing, fn(x, *missing), strict=True))
            for n, value in fresh.items():
                self.put(("sma", (id(x), n), ()), (x,), value)  # may evict, even its own
            out: list[Any] = []
            handed: set[int] = set()
            for n, v in zip(periods, found, strict=True):
                if v is None:  # the memo keeps a copy, so the fresh array itself can go out once
                    v = fresh[n].copy() if n in handed else fresh[n]
                    handed.add(n)
                out.append(v)
            return tuple(out)

        return cached


def _copy(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(v.copy() for v in value)
    return value.copy()


def _nbytes(value: Any) -> int:
    if isinstance(value, tuple):
        return sum(int(v.nbytes) for v in value)
    return int(value.nbytes)


_memo: _Memo | None = None


@contextmanager
def memoized_indicators(limit: int = _MEMO_BYTES) -> Iterator[None]:
    """Memoize `bot.market.indicators` where loaded strategy modules imported them, for the
    duration of the block (the cache itself lives on for the process's next chunk).

    Pure functions of read-only inputs give the same arrays either way (a test compares a
    sweep with and without it); the modules get their own functions back afterwards.
    """
    import sys

    from bot.market import indicators

    global _memo
    if _memo is None:
        _memo = _Memo(limit)
    memo = _memo
    originals = {id(getattr(indicators, name)): name for name in _MEMOIZED}
    wrapped = {
        name: (memo.wrap_smas if name == "smas" else memo.wrap)(getattr(indicators, name))
        for name in _MEMOIZED
    }
    patched: list[tuple[Any, str, Any]] = []
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if not (
            name.startswith(("strategies.", "alura_user_strategies."))
            or name == "bot.market.signals"
        ):
            continue
        for attr, value in list(vars(module).items()):
            target = originals.get(id(value))
            if target is not None:
                patched.append((module, attr, value))
                setattr(module, attr, wrapped[target])
    try:
        yield
    finally:
        for module, attr, value in patched:
            setattr(module, attr, value)


def window_metrics(raw: RawRun, balance: float, interval_ms: int) -> dict[str, float]:
    """The ranking figures of one window's run (same definitions as `stats.summarize`)."""
    equity = raw.equity
    n = len(equity)
    trades = raw.trades
    net = trades[:, K.TR_GROSS] - trades[:, K.TR_ENTRY_FEE] - trades[:, K.TR_EXIT_FEE]
    won = float(net[net > 0].sum())
    lost = float(-net[net < 0].sum())
    final = float(equity[-1]) if n else balance
    years = n * interval_ms / YEAR_MS
    annual = (final / balance) ** (1 / years) - 1 if years > 0 and final > 0 else math.nan
    max_dd = float(-drawdown(equity).min()) if n else 0.0
    if n > 1:
        prev = np.concatenate(([balance], equity[:-1]))
        rets = (equity - prev) / prev
        sd = float(rets.std())
        mean = float(rets.mean())
        down = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
    else:
        sd = mean = down = 0.0
    per_year = math.sqrt(YEAR_MS / interval_ms)
    return {
        "total_return": 100 * (final / balance - 1),
        "annual_return": 100 * annual,
        "max_drawdown": 100 * max_dd,
        "sharpe": mean / sd * per_year if sd > 0 else math.nan,
        "sortino": mean / down * per_year if down > 0 else math.nan,
        "calmar": annual / max_dd if max_dd > 0 and math.isfinite(annual) else math.nan,
        "profit_factor": won / lost if lost > 0 else (math.inf if won > 0 else math.nan),
        "net_pnl": float(net.sum()),
        "trades": float(len(trades)),
        "win_rate": 100 * float((net > 0).mean()) if len(trades) else math.nan,
    }


def evaluate_chunk(
    spec: DataSpec,
    strategy: str,
    fixed: dict[str, Any],
    combos: Sequence[dict[str, Any]],
    windows: Sequence[tuple[int, int]],
    config: BacktestConfig,
    memo: bool = True,
    strategies_dir: Path | None = None,
) -> list[list[dict[str, float]] | str]:
    """For each combo: metrics per window, or the reason its parameters were refused.

    A plain function of picklable arguments: local workers and Ray tasks both run it.
    """
    import strategies as registry
    from strategies import StrategyParamsError

    market = _market(spec)
    try:
        cls = registry.resolve(strategy, strategies_dir)
    except registry.UnknownStrategy as exc:
        raise SweepError(str(exc)) from None
    out: list[list[dict[str, float]] | str] = []
    with memoized_indicators() if memo else nullcontext():
        for combo in combos:
            params = _merge(_merge({"interval": market.interval}, fixed), _nest(combo))
            try:
                st = cls(params)
            except StrategyParamsError as exc:
                out.append(str(exc).splitlines()[0])
                continue
            flags = strategy_flags(st, market)[:, None, :]
            sessions = session_row(st, config)[None]
            runs = []
            for w in windows:
                raw = simulate(market, flags, sessions, config, window=w)
                runs.append(window_metrics(raw, config.balance, market.interval_ms))
            out.append(runs)
    return out


# -- orchestration ------------------------------------------------------------------------------


@dataclass
class SweepOptions:
    strategy: str
    grid: str
    params: list[str]
    data: list[str]
    synthetic: int | None
    start_ms: int | None
    end_ms: int | None
    interval: str | None
    assets: list[str] | None
    exchange: str | None
    config: BacktestConfig
    metric: str = "sharpe"
    sample: int | None = None
    halving: bool = False
    seed: int = 0
    walk_forward: int = 1
    train_frac: float = 0.7
    workers: int = 0
    ray_address: str | None = None
    top: int = 15
    out: Path | None = None
    strategies_dir: Path | None = None


@dataclass
class Row:
    params: dict[str, Any]
    train: list[dict[str, float]] = field(default_factory=list)
    test: list[dict[str, float]] = field(default_factory=list)

    def mean(self, which: str, metric: str) -> float:
        runs = self.train if which == "train" else self.test
        vals = [r[metric] for r in runs if math.isfinite(r[metric])]
        return float(np.mean(vals)) if vals else math.nan


@dataclass
class SweepResult:
    rows: list[Row]
    folds: list[tuple[tuple[int, int], tuple[int, int]]]
    chosen: list[tuple[int, Row]]
    """Per fold: the row chosen on its training window."""
    refused: dict[str, int]
    evaluated: int
    rungs: list[int]
    elapsed_s: float
    metric: str
    ts: np.ndarray
    interval_ms: int


Runner = Callable[[list[list[dict[str, Any]]], list[tuple[int, int]]], list[Any]]


def _score(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _local_runner(
    spec: DataSpec, opts: SweepOptions, fixed: dict[str, Any], workers: int
) -> tuple[Runner, Callable[[], None]]:
    # everything but a chunk's combos and windows bound; a partial pickles for the workers
    task = partial(
        evaluate_chunk,
        spec,
        opts.strategy,
        fixed,
        config=opts.config,
        strategies_dir=opts.strategies_dir,
    )
    if workers <= 1:

        def run_inline(
            chunks: list[list[dict[str, Any]]], windows: list[tuple[int, int]]
        ) -> list[Any]:
            return [task(c, windows) for c in chunks]

        return run_inline, lambda: None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers inherit the loaded candles and the compiled loop, nothing is re-read
    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def run_pool(chunks: list[list[dict[str, Any]]], windows: list[tuple[int, int]]) -> list[Any]:
        futures = [pool.submit(task, c, windows) for c in chunks]
        return [f.result() for f in futures]

    return run_pool, lambda: pool.shutdown(cancel_futures=True)


def _ray_runner(
    spec: DataSpec, opts: SweepOptions, fixed: dict[str, Any]
) -> tuple[Runner, Callable[[], None]]:
    import importlib

    try:
        ray = importlib.import_module("ray")
    except ImportError:
        raise SweepError(
            "--ray-address needs ray: pip install 'alura-bot[ray]' (ray must match the "
            "cluster's version)"
        ) from None
    ray.init(address=opts.ray_address, ignore_reinit_error=True, log_to_driver=False)
    task = ray.remote(evaluate_chunk)

    def run_ray(chunks: list[list[dict[str, Any]]], windows: list[tuple[int, int]]) -> list[Any]:
        refs = [
            task.remote(
                spec,
                opts.strategy,
                fixed,
                c,
                windows,
                opts.config,
                strategies_dir=opts.strategies_dir,
            )
            for c in chunks
        ]
        return list(ray.get(refs))

    return run_ray, ray.shutdown


def _chunks(items: list[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    size = max(1, math.ceil(len(items) / max(1, parts)))
    return [items[i : i + size] for i in range(0, len(items), size)]


def combos_of(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def run_sweep(
    opts: SweepOptions, *, progress: Callable[[str, int, int], None] | None = None
) -> SweepResult:
    from bot.backtest import compiled
    from bot.cli_backtest import parse_params

    started = time.perf_counter()
    if opts.metric not in METRICS:
        raise SweepError(f"--metric must be one of {', '.join(METRICS)}, got {opts.metric!r}")
    if opts.walk_forward < 0:
        raise SweepError("--walk-forward must be >= 0")
    grid = parse_grid(opts.grid)
    combos = combos_of(grid)
    if opts.sample is not None and opts.sample < len(combos):
        combos = random.Random(opts.seed).sample(combos, opts.sample)  # noqa: S311 (not crypto)
    fixed = parse_params(opts.params, [opts.strategy])[0]
    overlap = set(fixed) & {k.split(".")[0] for k in grid}
    if overlap:
        raise SweepError(f"{', '.join(sorted(overlap))} is both fixed (--param) and swept (--grid)")
    spec = DataSpec(
        tuple(opts.data),
        opts.synthetic,
        opts.interval,
        tuple(opts.assets) if opts.assets else None,
        opts.exchange,
        opts.start_ms if opts.synthetic is not None else None,
        opts.end_ms if opts.synthetic is not None else None,
    )
    market = _market(spec)
    compiled.load()  # build once here, before any worker starts
    t0, t1 = market.window(opts.start_ms, opts.end_ms)
    if t1 - t0 < 10:
        raise SweepError("fewer than 10 candles in the window")
    if opts.walk_forward >= 1:
        folds = walk_forward_windows(t0, t1, opts.walk_forward, opts.train_frac)
    else:
        folds = [((t0, t1), (t1, t1))]
    workers = opts.workers or (os.cpu_count() or 1)
    if opts.ray_address:
        runner, close = _ray_runner(spec, opts, fixed)
        parts = max(8, len(combos) // 25)
    else:
        runner, close = _local_runner(spec, opts, fixed, min(workers, len(combos)))
        parts = workers * 4
    refused: dict[str, int] = {}
    rows: list[Row] = []
    rungs: list[int] = []
    evaluated = 0
    try:
        candidates = combos
        rung_fracs = [0.25, 0.5, 1.0] if opts.halving and len(combos) > 9 else [1.0]
        for r, frac in enumerate(rung_fracs):
            last = r == len(rung_fracs) - 1
            windows: list[tuple[int, int]] = []
            for (a, b), test in folds:
                windows.append((b - max(1, round((b - a) * frac)), b))
                if last and test[1] > test[0]:
                    windows.append(test)
            if progress is not None:
                progress(
                    f"rung {r + 1}/{len(rung_fracs)}" if len(rung_fracs) > 1 else "sweep",
                    0,
                    len(candidates),
                )
            results = runner(_chunks(candidates, parts), windows)
            flat = [res for chunk in results for res in chunk]
            evaluated += len(candidates)
            rungs.append(len(candidates))
            scored: list[Row] = []
            for combo, res in zip(candidates, flat, strict=True):
                if isinstance(res, str):
                    refused[res] = refused.get(res, 0) + 1
                    continue
                row = Row(combo)
                step = 2 if last and folds[0][1][1] > folds[0][1][0] else 1
                for f in range(len(folds)):
                    row.train.append(res[f * step])
                    if step == 2:
                        row.test.append(res[f * step + 1])
                scored.append(row)
            if last:
                rows = scored
                break
            scored.sort(key=lambda rw: _score(rw.mean("train", opts.metric)), reverse=True)
            keep = max(3, math.ceil(len(scored) / 3))
            candidates = [rw.params for rw in scored[:keep]]
    finally:
        close()
    rows.sort(key=lambda rw: _score(rw.mean("train", opts.metric)), reverse=True)
    chosen = []
    for f in range(len(folds)):
        if rows:
            best = max(rows, key=lambda rw: _score(rw.train[f][opts.metric]))
            chosen.append((f, best))
    return SweepResult(
        rows,
        folds,
        chosen,
        refused,
        evaluated,
        rungs,
        time.perf_counter() - started,
        opts.metric,
        market.ts,
        market.interval_ms,
    )


# -- output -------------------------------------------------------------------------------------


def _fmt(x: float, digits: int = 2) -> str:
    if not math.isfinite(x):
        return "n/a" if math.isnan(x) else "inf"
    return f"{x:,.{digits}f}"


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def spearman(a: Iterable[float], b: Iterable[float]) -> float:
    """Rank correlation of in-sample and out-of-sample scores (NaN pairs dropped)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return math.nan
    xs = np.argsort(np.argsort([p[0] for p in pairs]))
    ys = np.argsort(np.argsort([p[1] for p in pairs]))
    if xs.std() == 0 or ys.std() == 0:
        return math.nan
    return float(np.corrcoef(xs, ys)[0, 1])


def to_json(res: SweepResult) -> dict[str, Any]:
    def clean(d: dict[str, float]) -> dict[str, float | None]:
        return {k: (v if math.isfinite(v) else None) for k, v in d.items()}

    return {
        "metric": res.metric,
        "evaluated": res.evaluated,
        "rungs": res.rungs,
        "refused": res.refused,
        "elapsed_s": res.elapsed_s,
        "folds": [
            {
                "train": [_day(int(res.ts[a])), _day(int(res.ts[b - 1]) + res.interval_ms)],
                "test": (
                    [_day(int(res.ts[c])), _day(int(res.ts[d - 1]) + res.interval_ms)]
                    if d > c
                    else None
                ),
                "chosen": next((r.params for f, r in res.chosen if f == i), None),
            }
            for i, ((a, b), (c, d)) in enumerate(res.folds)
        ],
        "ranking": [
            {
                "params": r.params,
                "train": [clean(m) for m in r.train],
                "test": [clean(m) for m in r.test],
            }
            for r in res.rows
        ],
    }


def write_outputs(res: SweepResult, out: Path) -> None:
    import csv

    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(to_json(res), indent=1) + "\n")
    keys = list(res.rows[0].params) if res.rows else []
    figures = ("sharpe", "total_return", "max_drawdown", "trades", "win_rate", "profit_factor")
    with (out / "ranking.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["rank", *keys]
            + [f"train_{f}" for f in figures]
            + ([f"test_{f}" for f in figures] if res.rows and res.rows[0].test else [])
        )
        for i, r in enumerate(res.rows, 1):
            row = [i, *[r.params[k] for k in keys]]
            row += [r.mean("train", f) for f in figures]
            if r.test:
                row += [r.mean("test", f) for f in figures]
            w.writerow(row)


def print_result(res: SweepResult, top: int, console: Any) -> None:
    from rich.table import Table

    m = res.metric
    has_test = bool(res.rows and res.rows[0].test)
    folds = len(res.folds)
    title = f"Top {min(top, len(res.rows))} of {len(res.rows)} by in-sample {m}" + (
        f", {folds} walk-forward fold{'s' if folds > 1 else ''}" if has_test else ""
    )
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("params")
    for col in (f"IS {m}", "IS return %", "IS trades"):
        table.add_column(col, justify="right")
    if has_test:
        for col in (f"OOS {m}", "OOS return %", "OOS trades"):
            table.add_column(col, justify="right")
    table.add_column("IS max DD %", justify="right")
    for i, r in enumerate(res.rows[:top], 1):
        cells = [
            str(i),
            _params_text(r.params),
            _fmt(r.mean("train", m)),
            _fmt(r.mean("train", "total_return")),
            _fmt(r.mean("train", "trades"), 0),
        ]
        if has_test:
            cells += [
                _fmt(r.mean("test", m)),
                _fmt(r.mean("test", "total_return")),
                _fmt(r.mean("test", "trades"), 0),
            ]
        cells.append(_fmt(r.mean("train", "max_drawdown")))
        table.add_row(*cells)
    console.print(table)
    if has_test:
        wf = Table(
            title="Walk-forward: chosen on the training window, judged on the next one",
            title_justify="left",
        )
        for col in (
            "fold",
            "train",
            "test",
            "chosen params",
            f"IS {m}",
            f"OOS {m}",
            "OOS return %",
        ):
            wf.add_column(
                col, justify="left" if col in ("train", "test", "chosen params") else "right"
            )
        oos_total = 1.0
        for f, r in res.chosen:
            (a, b), (c, d) = res.folds[f]
            oos = r.test[f]
            oos_total *= 1 + oos["total_return"] / 100
            wf.add_row(
                str(f + 1),
                f"{_day(int(res.ts[a]))} .. {_day(int(res.ts[b - 1]))}",
                f"{_day(int(res.ts[c]))} .. {_day(int(res.ts[d - 1]))}",
                _params_text(r.params),
                _fmt(r.train[f][m]),
                _fmt(oos[m]),
                _fmt(oos["total_return"]),
            )
        console.print(wf)
        rho = spearman(
            [r.mean("train", m) for r in res.rows], [r.mean("test", m) for r in res.rows]
        )
        best_is = res.rows[0].mean("train", m) if res.rows else math.nan
        best_oos = res.rows[0].mean("test", m) if res.rows else math.nan
        console.print(
            f"out of sample: the sets chosen per fold return {100 * (oos_total - 1):+.2f} % "
            f"over the test windows; the best in-sample set scores {_fmt(best_is)} in sample, "
            f"{_fmt(best_oos)} out of sample. Rank correlation of in- and out-of-sample "
            f"{m} over all sets: {_fmt(rho)} (near 0 or below: the in-sample ranking does not "
            "carry over, i.e. it is overfitted)"
        )
    if res.refused:
        n = sum(res.refused.values())
        console.print(f"{n} combination(s) refused by the strategy, e.g. {next(iter(res.refused))}")
    rung = " -> ".join(map(str, res.rungs))
    console.print(
        f"{res.evaluated} backtests ({rung} per rung), {res.elapsed_s:.2f} s"
        if len(res.rungs) > 1
        else f"{res.evaluated} parameter sets evaluated in {res.elapsed_s:.2f} s"
    )


def run_sweep_cli(opts: SweepOptions, started: float) -> None:
    import sys

    from rich.console import Console

    res = run_sweep(opts)
    console = Console(width=None if sys.stdout.isatty() else 150)
    print_result(res, opts.top, console)
    if opts.out is not None:
        write_outputs(res, opts.out)
        console.print(f"saved: {opts.out / 'ranking.csv'}, {opts.out / 'sweep.json'}")
    _ = started
