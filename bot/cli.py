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


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
