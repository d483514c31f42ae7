"""`alura-bot sim`: the venue simulator's command line.

Every option value is checked before anything starts: a bad one prints one line naming the option
and exits with code 2 (no usage block, no traceback). The heavy modules (uvicorn, numpy, the
simulator) are imported only once the options are known to be good.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

try:  # typer 0.2x carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - typer releases that use click itself
    from click.exceptions import UsageError  # type: ignore[assignment]

INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")
MAX_TTL_S = 10 * 365 * 86_400
MAX_FEE_RATE = 0.01  # session_model.MAX_FEE_RATE (not imported: it pulls in numpy)


class SimCommand(TyperCommand):
    """Usage errors (a bad value, an unknown option) as one line: `sim: Invalid value for …`."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            typer.echo(f"sim: {exc.format_message()}", err=True)
            raise typer.Exit(2) from None


def _balance(value: str) -> str:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a number (USDC, e.g. 10000)") from None
    if not amount.is_finite() or amount < 0:
        raise typer.BadParameter(f"{value!r} must be a finite number >= 0 (USDC)")
    return value


def _ttl(value: int) -> int:
    if not 1 <= value <= MAX_TTL_S:
        raise typer.BadParameter(f"{value} must be between 1 and {MAX_TTL_S} seconds")
    return value


def _speed(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise typer.BadParameter(
            f"{value!r} must be a finite number >= 0 (0 = stepped clock, 3600 = an hour a second)"
        )
    return value


def _port(value: int) -> int:
    if not 0 <= value <= 65_535:
        raise typer.BadParameter(f"{value} must be between 0 and 65535 (0 = any free port)")
    return value


def _seed(value: int) -> int:
    if value < 0:
        raise typer.BadParameter(f"{value} must be >= 0")
    return value


def _builder_fee(value: float) -> float:
    if not math.isfinite(value) or not 0 <= value <= MAX_FEE_RATE:
        raise typer.BadParameter(
            f"{value!r} must be a rate between 0 and {MAX_FEE_RATE} (0.0001 = 0.01 % per side)"
        )
    return value


def _interval(value: str) -> str:
    if value not in INTERVALS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(INTERVALS)}")
    return value


def _market(value: str) -> str:
    if value == "synthetic":
        return value
    if not value.startswith("csv:") or not value[4:]:
        raise typer.BadParameter(f"{value!r} must be 'synthetic' or 'csv:DIR'")
    if not Path(value[4:]).is_dir():
        raise typer.BadParameter(f"{value!r}: {value[4:]} is not a directory")
    return value


def _start(value: str) -> str:
    from bot.sim.server import parse_start

    try:
        parse_start(value)
    except (ValueError, OverflowError):
        raise typer.BadParameter(
            f"{value!r} is not a time (ISO 8601 such as 2025-01-06T00:00:00Z, or epoch ms)"
        ) from None
    return value


CLOSE_STATUSES = {"cancelled": 4, "4": 4, "early-closed": 6, "6": 6}


def _close_status(value: str) -> str:
    if value.lower() not in CLOSE_STATUSES:
        raise typer.BadParameter(f"{value!r} is not one of cancelled (4), early-closed (6)")
    return value.lower()


def sim(
    host: Annotated[
        str, typer.Option(help="Address to bind; keep loopback unless you mean it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 = any free port).", callback=_port)] = 8080,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the synthetic market, ids and faults.",
            callback=_seed,
        ),
    ] = 7,
    market: Annotated[
        str,
        typer.Option(
            help="'synthetic' (generated, deterministic) or 'csv:DIR' to replay candle "
            "CSV files (the format of shared/data/candles).",
            callback=_market,
        ),
    ] = "synthetic",
    csv_interval: Annotated[
        str,
        typer.Option(
            help="With csv:DIR, which files to replay (their interval); coarser intervals are "
            "aggregated from them, finer ones cannot be served (at 5m, candles of 1m answer "
            "400): use 1m files for 1m candles.",
            callback=lambda value: _interval(value),
        ),
    ] = "5m",
    csv_exchange: Annotated[
        str | None,
        typer.Option(
            help="With csv:DIR, the exchange whose files to replay when a symbol has files "
            "from several (the middle part of BTC-USDC_hyperliquid_5m.csv).",
            show_default=False,
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            help="Market clock speed: 3600 = one simulated hour per second; 0 = a "
            "stepped clock that moves only via POST /__sim/clock.",
            callback=_speed,
        ),
    ] = 3600.0,
    start: Annotated[
        str,
        typer.Option(
            help="Simulated start time (ISO 8601 or epoch ms).",
            callback=_start,
        ),
    ] = "2025-01-06T00:00:00Z",
    token_ttl: Annotated[
        int,
        typer.Option(
            help="JWT lifetime (expiresIn), seconds.",
            callback=_ttl,
        ),
    ] = 86_400,
    nonce_ttl: Annotated[
        int,
        typer.Option(
            help="Login challenge lifetime, seconds.",
            callback=_ttl,
        ),
    ] = 300,
    balance: Annotated[
        str,
        typer.Option(help="USDC balance every new wallet starts with (>= 0).", callback=_balance),
    ] = "10000",
    builder_fee: Annotated[
        float,
        typer.Option(
            help="Builder fee rate per side, added to the 0.045 % taker fee (0..0.01).",
            callback=_builder_fee,
        ),
    ] = 0.0,
    state: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file that keeps the venue across restarts.",
            show_default=False,
        ),
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
    close_status: Annotated[
        str,
        typer.Option(
            help="Positions API: the status a close gives: 'cancelled' (4, what the live "
            "service does) or 'early-closed' (6, the documented value for closing early).",
            callback=_close_status,
        ),
    ] = "cancelled",
) -> None:
    """Run the venue simulator: the Alura API and the user positions API on one HTTP server."""
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
            csv_exchange=csv_exchange,
            speed=speed,
            start=start,
            token_ttl_s=token_ttl,
            nonce_ttl_s=nonce_ttl,
            initial_balance=Decimal(balance),
            builder_fee=builder_fee,
            state=state,
            faults=faults,
            owner_check=owner_check,
            close_status=CLOSE_STATUSES[close_status],
            example_market=True,
        )
        serve(opts)
    except (ValueError, CandleDataError, FaultConfigError, OSError) as exc:
        typer.echo(f"sim: {exc}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.command("sim", cls=SimCommand)(sim)
