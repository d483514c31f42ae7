"""The `alura-bot` command line; heavy modules are imported inside commands for fast start-up."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bot import __version__
from bot.cli_backtest import COMMANDS as BACKTEST_COMMANDS
from bot.cli_backtest import register as register_backtest
from bot.cli_backtest import run_alone as run_backtest_command
from bot.cli_positions import positions_app
from bot.cli_sessions import sessions_app
from bot.cli_sim import register as register_sim
from bot.cli_strategies import register as register_strategies

app = typer.Typer(
    name="alura-bot",
    help="Trading daemon, venue simulator and backtester for the Alura Trading backend.\n\n"
    'Paper mode is the default; live trading needs mode = "live" in the config AND --live.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file. Default search: ./alura-bot.toml, "
        "$XDG_CONFIG_HOME/alura-bot/config.toml, /etc/alura-bot/config.toml.",
        show_default=False,
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url", help="Override base_url (e.g. a local simulator).", show_default=False
    ),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="Override private_key_file (a mode-0600 file holding the hex key).",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alura-bot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Trading daemon, venue simulator and backtester for the Alura Trading backend."""


def _settings(config: Path | None, **overrides: Any) -> Any:
    """Load settings or exit 2 with one line per problem — never a traceback."""
    from bot.logs import setup_logging
    from bot.settings import ConfigError, load_settings

    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"config error: {problem}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level, settings.log_format)
    return settings


@app.command()
def doctor(
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Check config, key file, reachability, clock skew and a full login; exit 1 if any fail."""
    from rich.console import Console
    from rich.table import Table

    from bot.doctor import Status, run_checks

    settings = _settings(config, base_url=base_url, private_key_file=key_file)
    quick = settings.http.model_copy(update={"retry_attempts": 1, "connect_timeout_s": 3.0})
    settings = settings.model_copy(update={"http": quick})
    import asyncio

    checks = asyncio.run(run_checks(settings))
    table = Table(title=f"alura-bot doctor — {settings.base_url}")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    colours = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: "dim"}
    for check in checks:
        colour = colours[check.status]
        table.add_row(check.name, f"[{colour}]{check.status.value}[/{colour}]", check.detail)
    Console(width=max(100, Console().width)).print(table)
    if any(c.status is Status.FAIL for c in checks):
        raise typer.Exit(1)


@app.command()
def auth(
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Log in with the wallet key and print the address and token expiry (never the token)."""
    from datetime import UTC, datetime

    from bot.api.alura import AluraClient
    from bot.api.errors import ApiError
    from bot.settings import ConfigError, load_private_key

    settings = _settings(config, base_url=base_url, private_key_file=key_file)
    try:
        key = load_private_key(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"config error: {problem}", err=True)
        raise typer.Exit(2) from None

    async def login() -> Any:
        async with AluraClient.from_settings(settings, key) as client:
            assert client.auth is not None
            return await client.auth.login()

    try:
        import asyncio

        info = asyncio.run(login())
    except ApiError as exc:
        typer.echo(f"login failed: {exc}", err=True)
        raise typer.Exit(1) from None
    expires = datetime.fromtimestamp(info.expires_at, UTC).isoformat(timespec="seconds")
    typer.echo(f"address: {info.address}\ntoken expires: {expires}")


JournalOpt = Annotated[
    Path | None,
    typer.Option(
        "--journal",
        help="Journal file (default: journal_path from the config).",
        show_default=False,
    ),
]


def _journal(config: Path | None, journal: Path | None) -> Any:
    from bot.journal import Journal

    path = journal or _settings(config).journal_path
    if not Path(path).exists():
        typer.echo(f"no journal at {path} (has the daemon run with this config?)", err=True)
        raise typer.Exit(2)
    return Journal.open(path)


@app.command()
def run(
    config: ConfigOpt = None,
    live: Annotated[
        bool,
        typer.Option("--live", help='Trade for real. Also needs mode = "live" in the config.'),
    ] = False,
    base_url: BaseUrlOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Run the daemon: paper mode unless the config says mode = "live" AND --live is given."""
    from bot.engine.daemon import Daemon, LiveModeRefused, build_slots, effective_mode
    from bot.settings import ConfigError, load_private_key
    from strategies import StrategyParamsError, UnknownStrategy

    settings = _settings(config, base_url=base_url, private_key_file=key_file)
    try:
        mode = effective_mode(settings, live)
        key = load_private_key(settings) if mode == "live" else _optional_key(settings)
        build_slots(settings)  # every strategy and its params checked before anything starts
        daemon = Daemon(settings, key=key, live=live, metrics=_metrics(), freeze_heap=True)
    except (LiveModeRefused, ConfigError, StrategyParamsError, UnknownStrategy) as exc:
        for line in getattr(exc, "problems", None) or str(exc).splitlines():
            typer.echo(f"config error: {line}", err=True)
        raise typer.Exit(2) from None
    from bot import aio

    _check_loop()
    raise typer.Exit(aio.run(_serve(daemon, settings)))


def _check_loop() -> None:
    """A bad ALURA_BOT_LOOP is a config error (exit 2), not a traceback."""
    from bot import aio

    try:
        aio.loop_factory()
    except ValueError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None


def _optional_key(settings: Any) -> Any:
    """Paper mode needs no key; but a key that is there and unsafe (readable by others) or
    unreadable is refused as in live mode, never quietly ignored."""
    from bot.settings import NoKeyFound, load_private_key

    try:
        return load_private_key(settings)
    except NoKeyFound:
        return None


def _metrics() -> Any:
    try:
        from bot.metrics import Metrics
    except ImportError:  # pragma: no cover - metrics module is part of the package
        return None
    return Metrics()


async def _serve(daemon: Any, settings: Any) -> int:
    from bot.journal import JournalBusy, OwnerLock

    try:  # refuse before anything binds a port: a second daemon on one journal would race
        OwnerLock(settings.journal_path).acquire().release()
    except JournalBusy as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    server = None
    if daemon.metrics is not None:
        from bot.metrics import MetricsServer, bind_problem

        server = MetricsServer(
            daemon.metrics, host=settings.metrics_host, port=settings.metrics_port
        )
        try:
            server.start(loop_alive=daemon.loop_alive, is_ready=daemon.is_ready)
        except OSError as exc:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            if exc.errno == errno.EADDRINUSE:
                fix = (
                    "(setting metrics_port, or ALURA_BOT_METRICS_PORT): pick a free one, 0 for any"
                )
            else:
                fix = "(settings metrics_host and metrics_port)"
            typer.echo(
                f"error: cannot serve metrics on {where}: {bind_problem(exc)} {fix}", err=True
            )
            return 2
    try:
        return await _run_until_stopped(daemon)
    except JournalBusy as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    finally:
        if server is not None:
            server.stop()


async def _run_until_stopped(daemon: Any) -> int:
    """`daemon.run()`, except that SIGTERM/SIGINT while the start-up reconcile still waits for
    the venue (down, or accepting connections and never answering) stops at once.

    Until that reconcile succeeds nothing is scheduled and nothing that moves money is sent, so
    cutting its request is safe; without this a silent venue held the process for the whole
    HTTP retry budget (a minute by default) and systemd would SIGKILL it.
    """
    import asyncio
    import contextlib
    import logging

    run = asyncio.ensure_future(daemon.run())
    stopped = asyncio.ensure_future(daemon.stop_event.wait())
    try:
        await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done() and not daemon.ready:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            await daemon.stop()
            logging.getLogger("bot.daemon").info(
                "stopped before the first reconcile: the venue never answered"
            )
            return 0
        return int(await run)
    finally:
        stopped.cancel()


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds of wall time to run.")] = 60.0,
    speed: Annotated[
        float, typer.Option(help="Market clock speed (3600 = one simulated hour per second).")
    ] = 3600.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Where to keep the demo journal (default: a new temp dir).", show_default=False
        ),
    ] = None,
    no_table: Annotated[
        bool, typer.Option("--no-table", help="No live table (for logs and CI).")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /metrics on 127.0.0.1:PORT (0: any free port; default: a free port).",
            min=0,
            max=65_535,
            show_default=False,
        ),
    ] = None,
    linger: Annotated[
        float,
        typer.Option(
            help="After the summary, keep serving the final metrics (and nothing else) for "
            "this many seconds, or until SIGINT/SIGTERM: lets Prometheus scrape a finished run.",
            min=0,
        ),
    ] = 0.0,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Sign in with this wallet key (a mode-0600 file) instead of a throwaway one.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="DEBUG, INFO, WARNING or ERROR (logs go to stderr).")
    ] = "WARNING",
) -> None:
    """Simulator + daemon in one process on an accelerated synthetic market: no key, no network."""
    from rich.console import Console

    from bot.demo import DemoError, print_summary, run_demo
    from bot.logs import setup_logging

    if duration <= 0 or speed <= 0:
        typer.echo("duration and speed must be positive", err=True)
        raise typer.Exit(2)
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        typer.echo(f"--log-level must be DEBUG, INFO, WARNING or ERROR: {log_level!r}", err=True)
        raise typer.Exit(2)
    key = None
    if key_file is not None:
        from bot.settings import ConfigError, Settings, load_private_key

        try:
            key = load_private_key(Settings(private_key_file=key_file))
        except ConfigError as exc:
            for problem in exc.problems:
                typer.echo(f"config error: {problem}", err=True)
            raise typer.Exit(2) from None
    console = Console()
    setup_logging(log_level.upper(), "console")
    from bot import aio

    _check_loop()
    try:
        aio.run(
            run_demo(
                duration,
                speed,
                seed,
                workdir,
                console,
                live_table=not no_table,
                metrics=_metrics(),
                metrics_port=metrics_port,
                linger_s=linger,
                on_summary=lambda summary: print_summary(summary, console),
                key=key,
            )
        )
    except DemoError as exc:
        typer.echo(f"demo: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def status(
    config: ConfigOpt = None,
    journal: JournalOpt = None,
    venue: Annotated[
        bool,
        typer.Option(
            "--venue",
            help="Also ask the venue for its active sessions and compare (needs the key).",
        ),
    ] = False,
) -> None:
    """Open sessions, today's PnL, last tick and the kill switch, from the journal; with --venue
    also the venue's active sessions, and any difference from the journal."""
    import time as _time
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    j = _journal(config, journal)
    now = int(_time.time() * 1000)
    day = now - now % 86_400_000
    last = j.last_tick()
    console = Console()
    console.print(f"paused: {'YES' if j.paused else 'no'}")
    if last is None:
        console.print("last tick: never")
    else:
        age = (now - last.started_at) / 1000
        when = datetime.fromtimestamp(last.started_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        ago = f"{age:.0f} s ago" if 0 <= age < 366 * 86_400 else "on a simulated clock"
        result = "ok" if last.ok else "failed"
        if last.error:
            result += f": {last.error}"
        console.print(f"last tick: {when} UTC, {ago} ({result})", markup=False)
    console.print(
        f"realised PnL today: {j.realized_pnl_between(day, now + 1):+} USDC; "
        f"all time: {j.realized_pnl_total():+} USDC; fees {j.fees_total()} USDC"
    )
    unresolved = j.unresolved_intents()
    if unresolved:
        console.print(
            f"[yellow]unresolved intents: {len(unresolved)} (reconciled at next start)[/]"
        )
    table = Table(title="open sessions")
    for col in ("id", "asset", "kind", "strategy", "budget", "mode", "opened (UTC)"):
        table.add_column(col)
    open_rows = j.open_sessions()
    for r in open_rows:
        opened = datetime.fromtimestamp(r.opened_at / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(r.id, r.asset, r.kind, r.strategy, str(r.budget), r.mode, opened)
    console.print(table)
    j.close()
    if venue:
        from bot.cli_sessions import venue_active_sessions

        active = venue_active_sessions(_settings(config), "--venue")
        on_venue = {s.id for s in active.sessions}
        in_journal = {r.id for r in open_rows if r.mode == "live"}
        console.print(f"venue: {len(on_venue)} active session(s)")
        for sid in sorted(on_venue - in_journal):
            console.print(f"[yellow]on the venue, not open in the journal: {sid}[/]")
        for sid in sorted(in_journal - on_venue):
            console.print(f"[yellow]open in the journal, not active on the venue: {sid}[/]")
        if on_venue == in_journal:
            console.print("venue and journal agree")


@app.command()
def pause(config: ConfigOpt = None, journal: JournalOpt = None) -> None:
    """Kill switch on: the daemon opens nothing from its next tick on (closes still go through)."""
    j = _journal(config, journal)
    j.set_paused(True)
    j.close()
    typer.echo("paused: no new sessions from the next tick on")


@app.command()
def resume(config: ConfigOpt = None, journal: JournalOpt = None) -> None:
    """Kill switch off."""
    j = _journal(config, journal)
    j.set_paused(False)
    j.close()
    typer.echo("resumed")


@app.command(name="close-all")
def close_all(
    config: ConfigOpt = None,
    journal: JournalOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really do it.")] = False,
) -> None:
    """Pause and close every session: position_guard closes them all within one tick."""
    if not yes:
        typer.echo("close-all pauses the bot and closes every open session; add --yes", err=True)
        raise typer.Exit(2)
    j = _journal(config, journal)
    j.set_paused(True)
    count = len(j.open_sessions())
    j.close()
    settings = _settings(config)
    guards = [
        s
        for s in settings.strategies
        if s.enabled and s.name == "position_guard" and s.params.get("close_all_when_paused", True)
    ]
    if guards:
        typer.echo(f"paused; position_guard closes the {count} open session(s) on the next tick")
    else:
        typer.echo(
            f"paused: nothing new opens. No position_guard with close_all_when_paused is "
            f"configured, so the {count} open session(s) stay open: close them with "
            "`alura-bot sessions close ID --live --yes`"
        )


@app.command("reconcile")
def reconcile_cmd(
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    key_file: KeyFileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Make the journal agree with the venue now (what the daemon does at start-up), then exit.

    Adopts sessions an unknown intent opened, fails intents that never took effect, closes
    sessions the venue closed. Sends nothing that moves money. Refuses while a daemon runs on
    the same journal.
    """
    import asyncio
    import json as _json

    from bot.engine.daemon import Daemon
    from bot.journal import JournalBusy, OwnerLock
    from bot.settings import ConfigError, load_private_key

    settings = _settings(config, base_url=base_url, private_key_file=key_file)
    live = settings.mode.value == "live"
    try:
        key = load_private_key(settings) if live else None
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        owner = OwnerLock(settings.journal_path).acquire()
    except JournalBusy as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    daemon = Daemon(settings, key=key, live=live)

    async def once() -> Any:
        from bot.api.errors import ApiError

        parts = daemon.build()
        try:
            if settings.engine.clock == "venue":
                await daemon._follow_venue_clock()
            return await daemon._reconcile_unlocked("command", raise_errors=True)
        except ApiError as exc:
            typer.echo(f"venue: {exc}", err=True)
            return None
        finally:
            await parts.client.aclose()
            if parts.engine.positions is not None:
                await parts.engine.positions.aclose()
            parts.journal.close()

    try:
        report = asyncio.run(once())
    finally:
        owner.release()
    if report is None:
        raise typer.Exit(1)
    fields = {k: list(v) for k, v in vars(report).items()}
    if as_json:
        typer.echo(_json.dumps(fields))
    else:
        for name, ids in fields.items():
            typer.echo(
                f"{name.replace('_', ' ')}: {len(ids)}" + (f" ({', '.join(ids)})" if ids else "")
            )


register_backtest(app)
register_sim(app)
register_strategies(app)
app.add_typer(sessions_app, name="sessions")
app.add_typer(positions_app, name="positions")

journal_app = typer.Typer(help="Read the journal.", no_args_is_help=True)
app.add_typer(journal_app, name="journal")


@journal_app.command("tail")
def journal_tail(
    config: ConfigOpt = None,
    journal: JournalOpt = None,
    n: Annotated[int, typer.Option("-n", help="How many events.")] = 20,
) -> None:
    """The most recent decisions and intents, newest last."""
    import json as _json

    j = _journal(config, journal)
    for event in reversed(j.tail(n)):
        typer.echo(_json.dumps(event, default=str))
    j.close()


def main() -> None:
    """Console-script entry point; `backtest`, `sweep` and `data` start alone (faster)."""
    if len(sys.argv) > 1 and sys.argv[1] in BACKTEST_COMMANDS:
        sys.exit(run_backtest_command(sys.argv[1]))
    sys.exit(app())
