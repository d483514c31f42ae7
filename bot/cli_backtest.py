"""`alura-bot backtest`, `alura-bot sweep` and `alura-bot data check|synth`.

Heavy modules (numpy, the strategies) load inside the commands: whole-process time is what users
feel on a one-year hourly backtest, so nothing is imported before it is needed, and the summary
is plain text (bot.backtest.terminal), not rich. Input problems (bad candles, unknown strategy,
bad parameters) print one clear line and exit 2.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bot.backtest.engine import BacktestConfig, BacktestResult
    from bot.backtest.progress import LazyProgress
    from bot.backtest.stats import Summary
    from bot.market.data import Candles
    from strategies.base import Strategy

DAY_MS = 86_400_000


class InputError(Exception):
    """A problem with what the user gave; printed as one line, exit code 2."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


# -- parsing ------------------------------------------------------------------------------------


def parse_time(value: str, what: str) -> int:
    """ISO date or datetime (UTC unless it says otherwise), or epoch milliseconds."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{what}: {value!r} is not a date (use 2024-01-31, 2024-01-31T12:00 or epoch ms)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def parse_value(text: str) -> Any:
    """A parameter value: JSON when it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(items: Sequence[str], names: Sequence[str]) -> list[dict[str, Any]]:
    """``k=v`` for every strategy, ``name:k=v`` for one; dotted keys nest (session.budget=50)."""
    out: list[dict[str, Any]] = [{} for _ in names]
    for item in items:
        target: str | None = None
        body = item
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:
            target, body = head, rest
        key, eq, raw = body.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InputError(f"--param {item!r}: expected key=value (or strategy:key=value)")
        if target is not None and target not in names:
            raise InputError(f"--param {item!r}: no strategy {target!r} in this run")
        for i, name in enumerate(names):
            if target is not None and name != target:
                continue
            node = out[i]
            parts = key.split(".")
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise InputError(f"--param {item!r}: {part} is not a group of settings")
                node = child
            node[parts[-1]] = parse_value(raw.strip())
    return out


def parse_fee(text: str) -> float:
    """A fee rate per side: ``0.00045`` or ``0.045%``."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InputError(f"--fees: {text!r} is not a rate (0.00045 or 0.045%)") from None
    return value


def split_assets(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [a.strip().upper() for a in text.split(",") if a.strip()]


# -- data ---------------------------------------------------------------------------------------


@dataclass
class LoadedData:
    candles: dict[str, Candles]
    sources: dict[str, str]
    gaps: dict[str, tuple[int, int]]
    """Per symbol: (gap count, missing candles)."""


def _interval_of_dir(directory: Path) -> str:
    from bot.market.data import parse_candle_filename

    found = sorted(
        {p.interval for f in directory.iterdir() if (p := parse_candle_filename(f)) is not None}
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(
            f"{directory}: no <BASE>-<QUOTE>_<exchange>_<interval>.csv (or .parquet) files"
        )
    raise InputError(f"{directory} has {', '.join(found)} candles: pass --interval to pick one")


def load_data(
    paths: Sequence[Path],
    *,
    interval: str | None,
    assets: list[str] | None,
    exchange: str | None,
    allow_gaps: bool,
    progress: LazyProgress | None = None,
) -> LoadedData:
    """Load and validate candle files and directories; resample to ``interval`` if coarser.

    Each path is a step of ``progress``; a directory moves it file by file."""
    from bot.market.data import (
        interval_ms,
        load_csv,
        load_dir,
        load_parquet,
        parse_candle_filename,
        resample,
    )

    candles: dict[str, Candles] = {}
    sources: dict[str, str] = {}
    for path in paths:
        if path.is_dir():
            chosen = interval or _interval_of_dir(path)
            if progress is not None:
                progress.step(f"loading {path}")
            loaded = load_dir(
                path,
                interval=chosen,
                symbols=assets,
                exchange=exchange,
                allow_gaps=allow_gaps,
                progress=(
                    None
                    if progress is None
                    else lambda name, done, of: progress.within(f"loading {name}", done, of)
                ),
            )
            items = [(sym, c, str(path)) for sym, c in loaded.items()]
        elif path.exists():
            if progress is not None:
                progress.step(f"loading {path.name}")
            name = parse_candle_filename(path)
            if path.suffix == ".parquet":
                c = load_parquet(path, allow_gaps=allow_gaps)
            else:
                c = load_csv(path, allow_gaps=allow_gaps)
            if assets is not None and c.symbol not in assets:
                continue
            items = [(c.symbol if name is None else name.base, c, str(path))]
        else:
            raise InputError(f"no such file or directory: {path}")
        for sym, c, src in items:
            if sym in candles:
                raise InputError(f"{sym} comes from two sources: {sources[sym]} and {src}")
            if interval is not None and c.interval != interval:
                if interval_ms(interval) < c.interval_ms:
                    raise InputError(
                        f"{src}: has {c.interval} candles, cannot make finer {interval} ones"
                    )
                c = resample(c, interval)
            candles[sym] = c
            sources[sym] = src
    if not candles:
        wanted = f" for {', '.join(assets)}" if assets else ""
        raise InputError(f"no candles{wanted} in {', '.join(map(str, paths))}")
    if assets is not None:
        missing = [a for a in assets if a not in candles]
        if missing:
            raise InputError(f"no candles for {', '.join(missing)} in the given --data")
    gaps: dict[str, tuple[int, int]] = {}
    for sym, c in candles.items():
        steps = (c.ts[1:] - c.ts[:-1]) // c.interval_ms
        holes = steps[steps > 1]
        gaps[sym] = (int(holes.size), int((holes - 1).sum()))
    return LoadedData(candles, sources, gaps)


def synthetic_data(
    seed: int, interval: str, assets: list[str] | None, start_ms: int | None, end_ms: int | None
) -> LoadedData:
    """The deterministic synthetic market over [start, end) (default: 2024, BTC/ETH/SOL)."""
    from bot.market.data import interval_ms, synthetic_market

    step = interval_ms(interval)
    start = start_ms if start_ms is not None else parse_time("2024-01-01", "--from")
    start -= start % step
    end = end_ms if end_ms is not None else start + 366 * DAY_MS
    n = (end - start) // step
    if n < 2:
        raise InputError("the synthetic window holds fewer than two candles")
    if n > 5_000_000:
        raise InputError(f"{n} synthetic candles per asset is too many: shorten --from/--to")
    symbols = assets or ["BTC", "ETH", "SOL"]
    market = synthetic_market(seed, start_ms=start, n=n, interval=interval, symbols=symbols)
    return LoadedData(market, dict.fromkeys(market, f"synthetic seed {seed}"), {})


# -- strategies and config ----------------------------------------------------------------------


def build_strategies(
    names: Sequence[str], params: Sequence[str], interval: str, strategies_dir: Path | None = None
) -> list[Strategy[Any]]:
    import strategies as registry
    from strategies.base import PositionManager, Strategy

    per = parse_params(params, names)
    out: list[Strategy[Any]] = []
    for name, p in zip(names, per, strict=True):
        cls = registry.resolve(name, strategies_dir)  # UnknownStrategy lists the names
        if issubclass(cls, PositionManager):
            raise InputError(
                f"{name} is a position manager: it acts on live sessions, not on candles, "
                "and has nothing to backtest"
            )
        given = p.get("interval")
        if given is not None and given != interval:
            raise InputError(
                f"strategy {name}: interval={given} but the candles are {interval} "
                f"(use --interval {given} to resample)"
            )
        p["interval"] = interval
        factory: Any = cls
        st = factory(p)
        assert isinstance(st, Strategy)
        out.append(st)
    return out


def risk_limits(
    config: Path | None,
    max_sessions: int | None,
    cooldown: int | None,
    daily_loss_limit: float | None,
    max_total_budget: float | None,
    max_budget_per_session: float | None,
    min_free_balance: float | None,
) -> Any:
    """The daemon's limits: from --config (as `run` reads them) or its defaults, then flags."""
    from dataclasses import replace
    from decimal import Decimal

    from bot.engine.risk import RiskLimits

    if config is not None:
        from bot.cli import _settings
        from bot.engine.daemon import risk_limits as from_settings

        limits = from_settings(_settings(config))
    else:
        limits = RiskLimits()
    changes: dict[str, Any] = {}
    if max_sessions is not None:
        changes["max_open_sessions"] = max_sessions
    if cooldown is not None:
        changes["cooldown_s"] = cooldown
    for key, value in (
        ("daily_loss_limit", daily_loss_limit),
        ("max_total_budget", max_total_budget),
        ("max_budget_per_session", max_budget_per_session),
        ("min_free_balance", min_free_balance),
    ):
        if value is not None:
            changes[key] = Decimal(repr(value))
    return replace(limits, **changes) if changes else limits


# -- output -------------------------------------------------------------------------------------


def print_summary(
    summary: Summary, result: BacktestResult, data: LoadedData, elapsed: float
) -> None:
    """The terminal summary on stdout, fitted to the terminal (130 columns when piped)."""
    import shutil

    from bot.backtest.terminal import render_summary

    cfg = result.config
    tty = sys.stdout.isatty()
    text = render_summary(
        summary,
        reentry="model" if cfg.reentry is None else ("on" if cfg.reentry else "off"),
        gaps=data.gaps,
        elapsed_s=elapsed,
        width=shutil.get_terminal_size((130, 24)).columns,
        bold=tty and not os.environ.get("NO_COLOR"),
    )
    sys.stdout.write(text)


# -- commands -----------------------------------------------------------------------------------

DataOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--data",
        help="Candle CSV (or parquet) file or directory; repeat for several.",
        show_default=False,
    ),
]


def backtest_cmd(
    strategy: Annotated[
        list[str],
        typer.Option("--strategy", "-s", help="Strategy name; repeat to run several."),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Strategy parameter k=v (dotted keys nest: session.budget=50; name:k=v for "
            "one strategy of several).",
            show_default=False,
        ),
    ] = None,
    data: DataOpt = None,
    synthetic: Annotated[
        int | None,
        typer.Option(help="Use the deterministic synthetic market of this seed.", min=0),
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Trade from this date (UTC).", show_default=False)
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Trade until this date (UTC).", show_default=False)
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(help="Candle interval (default: the data's); coarser resamples."),
    ] = None,
    assets: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. BTC,ETH.", show_default=False)
    ] = None,
    exchange: Annotated[
        str | None,
        typer.Option(help="Pick one exchange's files in a directory.", show_default=False),
    ] = None,
    budget: Annotated[
        float, typer.Option(help="Starting wallet balance in USDC (shared by all assets).")
    ] = 1000.0,
    fees: Annotated[
        str, typer.Option(help="Taker fee per side, as a rate or a percentage.")
    ] = "0.045%",
    builder_fee: Annotated[
        str, typer.Option(help="Builder fee per side, added to the taker fee.")
    ] = "0",
    reentry: Annotated[
        bool,
        typer.Option(
            help="--no-reentry ends each session with its positions, so every trade needs a "
            "new entry signal (the peers' convention); default: the session model's re-entry."
        ),
    ] = True,
    max_sessions: Annotated[
        int | None, typer.Option(help="RiskGate: max open sessions.", show_default=False)
    ] = None,
    cooldown: Annotated[
        int | None,
        typer.Option(help="RiskGate: seconds before an asset trades again.", show_default=False),
    ] = None,
    daily_loss_limit: Annotated[
        float | None,
        typer.Option(help="RiskGate: stop opening after this UTC-day loss.", show_default=False),
    ] = None,
    max_total_budget: Annotated[
        float | None, typer.Option(help="RiskGate: budget in use at once.", show_default=False)
    ] = None,
    max_budget_per_session: Annotated[
        float | None, typer.Option(help="RiskGate: largest session.", show_default=False)
    ] = None,
    min_free_balance: Annotated[
        float | None,
        typer.Option(help="RiskGate: free balance to keep.", show_default=False),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Take the risk limits from this config.", show_default=False
        ),
    ] = None,
    gaps: Annotated[bool, typer.Option(help="--no-gaps makes a missing candle an error.")] = True,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write trades.csv, equity.csv, summary.json and report.html here.",
            show_default=False,
        ),
    ] = None,
    check_lookahead: Annotated[
        bool,
        typer.Option(
            "--check-lookahead",
            help="First recompute each strategy on truncated histories; stop if any value "
            "changes when later candles are added.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of tables.")
    ] = False,
    strategies_dir: Annotated[
        Path | None,
        typer.Option(help="Also load strategies from the modules in this directory."),
    ] = None,
) -> None:
    """Backtest strategies over candle history with the session model and the RiskGate."""
    started = time.perf_counter()
    try:
        _backtest(
            strategy=strategy,
            param=param or [],
            data=data or [],
            synthetic=synthetic,
            from_=from_,
            to=to,
            interval=interval,
            assets=assets,
            exchange=exchange,
            budget=budget,
            fees=fees,
            builder_fee=builder_fee,
            reentry=reentry,
            limits=(
                config,
                max_sessions,
                cooldown,
                daily_loss_limit,
                max_total_budget,
                max_budget_per_session,
                min_free_balance,
            ),
            gaps=gaps,
            report=report,
            check_lookahead=check_lookahead,
            as_json=as_json,
            strategies_dir=strategies_dir,
            started=started,
        )
    except typer.Exit:
        raise
    except Exception as exc:
        raise _known_error(exc) from None


def _known_error(exc: Exception) -> typer.Exit:
    """Turn an input problem into one line and exit 2; anything else is a bug and propagates."""
    from bot.market.data import CandleDataError
    from strategies import StrategyParamsError, UnknownStrategy

    if isinstance(exc, InputError | CandleDataError | StrategyParamsError | UnknownStrategy):
        return _fail(str(exc))
    if isinstance(exc, FileNotFoundError | ValueError | ModuleNotFoundError):
        return _fail(str(exc))
    raise exc


def _backtest(
    *,
    strategy: list[str],
    param: list[str],
    data: list[Path],
    synthetic: int | None,
    from_: str | None,
    to: str | None,
    interval: str | None,
    assets: str | None,
    exchange: str | None,
    budget: float,
    fees: str,
    builder_fee: str,
    reentry: bool,
    limits: tuple[Any, ...],
    gaps: bool,
    report: Path | None,
    check_lookahead: bool,
    as_json: bool,
    strategies_dir: Path | None,
    started: float,
) -> None:
    if not strategy:
        raise InputError("give at least one --strategy")
    if bool(data) == (synthetic is not None):
        raise InputError("give --data FILE_OR_DIR or --synthetic SEED (one of them)")
    start_ms = parse_time(from_, "--from") if from_ else None
    end_ms = parse_time(to, "--to") if to else None
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise InputError("--to must be after --from")
    asset_list = split_assets(assets)
    from bot.backtest.progress import LazyProgress

    steps = len(data) or 1  # loading: each path (or generating the synthetic market)
    steps += len(strategy) * (2 if check_lookahead else 1) + 1  # look-ahead, signals, simulate
    steps += 1 if report is not None else 0
    progress = LazyProgress(total=steps, enabled=not as_json)
    timings: dict[str, float] = {}
    try:
        if synthetic is not None:
            progress.step("generating synthetic market")
            loaded = synthetic_data(synthetic, interval or "1h", asset_list, start_ms, end_ms)
        else:
            loaded = load_data(
                data,
                interval=interval,
                assets=asset_list,
                exchange=exchange,
                allow_gaps=gaps,
                progress=progress,
            )
        timings["load_s"] = time.perf_counter() - started
        first = next(iter(loaded.candles.values()))
        strategies = build_strategies(strategy, param, first.interval, strategies_dir)
        if check_lookahead:
            from bot.backtest.lookahead import check_strategy

            for st in strategies:
                progress.step(f"look-ahead check: {st.name}")
                for i, (sym, c) in enumerate(loaded.candles.items()):
                    progress.within(f"look-ahead check: {st.name} on {sym}", i, len(loaded.candles))
                    problems = check_strategy(st, c)
                    if problems:
                        progress.close()
                        for p in problems[:10]:
                            typer.echo(f"look-ahead: {st.name} on {sym}: {p}", err=True)
                        raise typer.Exit(1)
            if not as_json:
                typer.echo(
                    f"look-ahead check passed: {', '.join(s.name for s in strategies)} "
                    f"on {', '.join(loaded.candles)}"
                )
        cfg = _config(budget, fees, builder_fee, reentry, limits, start_ms, end_ms)
        from bot.backtest import compiled

        def building(_: Path) -> None:
            progress.add(1)
            progress.step("compiling the backtest loop (first run only)", force=True)

        compiled.load(on_build=building)
        from bot.backtest.engine import run_backtest
        from bot.backtest.stats import summarize

        _start_up_over()
        result = run_backtest(strategies, loaded.candles, cfg, progress=progress.step)
        if result.raw.t1 <= result.raw.t0:
            raise InputError("no candles inside --from/--to")
        summary = summarize(result)
        timings.update({f"{k}_s": v for k, v in result.timings.items()})
        timings["backtest_s"] = result.elapsed_s
        if report is not None:
            progress.step("writing the report")
            from bot.backtest.report import write_report

            write_report(result, summary, report, progress=progress.within)
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    if as_json:
        payload = summary.to_json()
        payload["timings"] = timings
        typer.echo(json.dumps(payload, indent=1))
        return
    print_summary(summary, result, loaded, elapsed)
    if report is not None:
        typer.echo(f"report: {report / 'report.html'}")


def _start_up_over() -> None:
    """If run_alone turned the collector off for start-up: freeze what start-up made (alive
    until exit, never worth a pass) and collect again, as the run and the report make garbage.
    A backtest run in-process (tests, notebooks) leaves the collector alone."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _config(
    budget: float,
    fees: str,
    builder_fee: str,
    reentry: bool,
    limits: tuple[Any, ...],
    start_ms: int | None,
    end_ms: int | None,
) -> BacktestConfig:
    from bot.backtest.engine import BacktestConfig
    from bot.market.session_model import FeeSchedule

    return BacktestConfig(
        balance=budget,
        fees=FeeSchedule(taker=parse_fee(fees), builder=parse_fee(builder_fee)),
        limits=risk_limits(*limits),
        reentry=None if reentry else False,
        start_ms=start_ms,
        end_ms=end_ms,
    )


# -- data ---------------------------------------------------------------------------------------

data_app = typer.Typer(help="Check candle files; write the synthetic market.", no_args_is_help=True)


@data_app.command("check")
def data_check(
    files: Annotated[list[Path], typer.Argument(help="Candle CSV or parquet files.")],
    gaps: Annotated[bool, typer.Option(help="--no-gaps makes a missing candle an error.")] = True,
    interval: Annotated[
        str | None, typer.Option(help="Expected interval (default: from the file name).")
    ] = None,
) -> None:
    """Validate candle files: header, numbers, order, duplicates, gaps, high < low, prices > 0."""
    from bot.market.data import CandleDataError, check_candles, check_csv, load_parquet

    failed = 0
    for path in files:
        try:
            if path.suffix == ".parquet":
                report = check_candles(
                    load_parquet(path, interval=interval, allow_gaps=gaps),
                    allow_gaps=gaps,
                    source=str(path),
                )
            else:
                report = check_csv(path, interval=interval, allow_gaps=gaps)
        except (CandleDataError, FileNotFoundError, ValueError, ModuleNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        typer.echo(report.describe())
    if failed:
        raise typer.Exit(2)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory to write the CSV files into.")],
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.", min=0)] = 7,
    interval: Annotated[str, typer.Option(help="Candle interval.")] = "1h",
    from_: Annotated[str, typer.Option("--from", help="First candle (UTC).")] = "2024-01-01",
    days: Annotated[float, typer.Option(help="How many days of candles.", min=0.0)] = 365.0,
    assets: Annotated[str, typer.Option(help="Comma-separated symbols.")] = (
        "BTC,ETH,SOL,XRP,DOGE,AVAX"
    ),
) -> None:
    """Write the deterministic synthetic market as <SYM>-USDC_synthetic_<interval>.csv files."""
    try:
        from bot.market.data import write_csv

        start = parse_time(from_, "--from")
        loaded = synthetic_data(
            seed, interval, split_assets(assets), start, start + int(days * DAY_MS)
        )
        out.mkdir(parents=True, exist_ok=True)
        for sym, candles in loaded.candles.items():
            path = out / f"{sym}-USDC_synthetic_{candles.interval}.csv"
            write_csv(candles, path)
            typer.echo(f"{path}: {len(candles)} candles")
    except (InputError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None


# -- sweep --------------------------------------------------------------------------------------


def sweep_cmd(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name.")],
    grid: Annotated[
        str,
        typer.Option(
            help="Parameter grid: 'fast=5:50:5,slow=20:200:10' (start:stop:step, stop "
            "included) or 'kind=sma|ema'."
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Fixed strategy parameter k=v.", show_default=False),
    ] = None,
    data: DataOpt = None,
    synthetic: Annotated[
        int | None, typer.Option(help="Use the synthetic market of this seed.", min=0)
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start (UTC).", show_default=False)
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="End (UTC).", show_default=False)] = None,
    interval: Annotated[str | None, typer.Option(help="Candle interval.")] = None,
    assets: Annotated[
        str | None, typer.Option(help="Comma-separated symbols.", show_default=False)
    ] = None,
    exchange: Annotated[
        str | None, typer.Option(help="Pick one exchange's files.", show_default=False)
    ] = None,
    budget: Annotated[float, typer.Option(help="Starting balance, USDC.")] = 1000.0,
    fees: Annotated[str, typer.Option(help="Taker fee per side.")] = "0.045%",
    reentry: Annotated[bool, typer.Option(help="--no-reentry: one trade per entry signal.")] = True,
    max_sessions: Annotated[
        int | None, typer.Option(help="RiskGate: max open sessions.", show_default=False)
    ] = None,
    cooldown: Annotated[
        int | None, typer.Option(help="RiskGate: cooldown seconds.", show_default=False)
    ] = None,
    daily_loss_limit: Annotated[
        float | None, typer.Option(help="RiskGate: daily loss stop.", show_default=False)
    ] = None,
    max_total_budget: Annotated[
        float | None, typer.Option(help="RiskGate: budget in use.", show_default=False)
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Risk limits from this config.")
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            help="Rank by: sharpe, total_return, calmar, profit_factor, sortino, net_pnl."
        ),
    ] = "sharpe",
    sample: Annotated[
        int | None,
        typer.Option(help="Evaluate a random subset of this many combinations.", min=1),
    ] = None,
    halving: Annotated[
        bool,
        typer.Option(
            "--halving", help="Successive halving: all on a short window, the best on longer."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random subset.")] = 0,
    walk_forward: Annotated[
        int,
        typer.Option(
            help="Walk-forward folds, each a training window then a test window (1: one "
            "train/test split); 0: in-sample only, no out-of-sample figures.",
            min=0,
        ),
    ] = 1,
    train_frac: Annotated[
        float, typer.Option(help="Share of each fold used to train.", min=0.1, max=0.95)
    ] = 0.7,
    workers: Annotated[
        int, typer.Option(help="Local processes (default: the number of cores).", min=0)
    ] = 0,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Run the tasks on this Ray cluster (needs the ray extra).", show_default=False
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Rows to print.", min=1)] = 15,
    out: Annotated[
        Path | None,
        typer.Option(help="Write ranking.csv and sweep.json here.", show_default=False),
    ] = None,
    strategies_dir: Annotated[
        Path | None,
        typer.Option(
            help="Also load strategies from the modules in this directory (with --ray-address "
            "it must exist at the same path on the cluster's nodes)."
        ),
    ] = None,
) -> None:
    """Evaluate a parameter grid (or a subset), optionally walk-forward, in parallel; rank it."""
    started = time.perf_counter()
    try:
        from bot.backtest.sweep import SweepOptions, run_sweep_cli

        limits = (config, max_sessions, cooldown, daily_loss_limit, max_total_budget, None, None)
        start_ms = parse_time(from_, "--from") if from_ else None
        end_ms = parse_time(to, "--to") if to else None
        if bool(data) == (synthetic is not None):
            raise InputError("give --data FILE_OR_DIR or --synthetic SEED (one of them)")
        opts = SweepOptions(
            strategy=strategy,
            grid=grid,
            params=param or [],
            data=[str(p) for p in data or []],
            synthetic=synthetic,
            start_ms=start_ms,
            end_ms=end_ms,
            interval=interval,
            assets=split_assets(assets),
            exchange=exchange,
            config=_config(budget, fees, "0", reentry, limits, None, None),
            metric=metric,
            sample=sample,
            halving=halving,
            seed=seed,
            walk_forward=walk_forward,
            train_frac=train_frac,
            workers=workers,
            ray_address=ray_address,
            top=top,
            out=out,
            strategies_dir=strategies_dir,
        )
        run_sweep_cli(opts, started)
    except typer.Exit:
        raise
    except Exception as exc:
        raise _known_error(exc) from None


COMMANDS = ("backtest", "sweep", "data")


def register(app: typer.Typer, commands: Sequence[str] = COMMANDS) -> None:
    """Add `backtest`, `sweep` and `data` (or only some of them) to an app."""
    if "backtest" in commands:
        app.command("backtest")(backtest_cmd)
    if "sweep" in commands:
        app.command("sweep")(sweep_cmd)
    if "data" in commands:
        app.add_typer(data_app, name="data")


def _app(commands: Sequence[str]) -> typer.Typer:
    app = typer.Typer(
        name="alura-bot",
        help="Backtest, sweep and candle data commands.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_group)  # with a callback a lone command stays a subcommand
    register(app, commands)
    return app


def _group() -> None:
    """Backtest, sweep and candle data commands."""


def run_alone(command: str) -> Any:
    """Run `alura-bot COMMAND ...` (one of COMMANDS) in an app holding only that command.

    Start-up then builds the options of the one command that runs, not those of all ~25
    (typer evaluates every annotation: ~20 ms of a ~0.3 s one-year backtest). The backtest does
    no linear algebra, so numpy's BLAS gets one thread unless the user says otherwise: its
    import then does not start a thread spinning on a second core (~15 ms of wall time). And
    start-up creates ~40,000 objects (typer, pydantic, numpy, the strategies) that all live until
    exit: the cyclic collector's ~65 passes over them find nothing (~15 ms), so a backtest starts
    with the collector off and freezes them before its run.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if command == "backtest":
        gc.disable()  # _backtest turns it back on once start-up is over (_start_up_over)
    return _app([command])()


standalone = _app(COMMANDS)

if __name__ == "__main__":
    standalone()
