"""The `alura-bot` command line; heavy modules are imported inside commands for fast start-up."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bot import __version__

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
        info = asyncio.run(login())
    except ApiError as exc:
        typer.echo(f"login failed: {exc}", err=True)
        raise typer.Exit(1) from None
    expires = datetime.fromtimestamp(info.expires_at, UTC).isoformat(timespec="seconds")
    typer.echo(f"address: {info.address}\ntoken expires: {expires}")


@app.command()
def sim(
    host: Annotated[
        str, typer.Option(help="Address to bind; keep loopback unless you mean it.")
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market, ids and faults.")] = 7,
    market: Annotated[
        str,
        typer.Option(
            help="'synthetic' (generated, deterministic) or 'csv:DIR' to replay candle "
            "CSV files (the format of shared/data/candles)."
        ),
    ] = "synthetic",
    csv_interval: Annotated[
        str, typer.Option(help="With csv:DIR, which files to replay (their interval).")
    ] = "5m",
    speed: Annotated[
        float,
        typer.Option(
            help="Market clock speed: 3600 = one simulated hour per second; 0 = a "
            "stepped clock that moves only via POST /__sim/clock."
        ),
    ] = 3600.0,
    start: Annotated[
        str, typer.Option(help="Simulated start time (ISO 8601 or epoch ms).")
    ] = "2025-01-06T00:00:00Z",
    token_ttl: Annotated[int, typer.Option(help="JWT lifetime (expiresIn), seconds.")] = 86_400,
    nonce_ttl: Annotated[int, typer.Option(help="Login challenge lifetime, seconds.")] = 300,
    balance: Annotated[
        str, typer.Option(help="USDC balance every new wallet starts with.")
    ] = "10000",
    builder_fee: Annotated[
        float, typer.Option(help="Builder fee rate per side, added to the 0.045 % taker fee.")
    ] = 0.0,
    state: Annotated[
        Path | None,
        typer.Option(help="SQLite file that keeps the venue across restarts.", show_default=False),
    ] = None,
    faults: Annotated[
        Path | None,
        typer.Option(
            help="TOML fault profile (429s, 5xx, latency, drops, lost responses, token "
            "expiry, builder-fee errors); see README.",
            show_default=False,
        ),
    ] = None,
    owner_check: Annotated[
        bool,
        typer.Option(
            help="Positions API: refuse closing another wallet's position (the real "
            "service does not check; --no-owner-check mimics it)."
        ),
    ] = True,
) -> None:
    """Run the venue simulator: the Alura API and the user positions API on one HTTP server."""
    from decimal import Decimal, InvalidOperation

    from bot.market.data import CandleDataError
    from bot.sim.faults import FaultConfigError
    from bot.sim.server import SimOptions, serve

    try:
        opts = SimOptions(
            host=host,
            port=port,
            seed=seed,
            market=market,
            csv_interval=csv_interval,
            speed=speed,
            start=start,
            token_ttl_s=token_ttl,
            nonce_ttl_s=nonce_ttl,
            initial_balance=Decimal(balance),
            builder_fee=builder_fee,
            state=state,
            faults=faults,
            owner_check=owner_check,
        )
        serve(opts)
    except (ValueError, InvalidOperation, CandleDataError, FaultConfigError, OSError) as exc:
        typer.echo(f"sim: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
