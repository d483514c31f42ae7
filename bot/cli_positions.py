"""`alura-bot positions list|stats|open|close`: the user positions service from the command line.

The service has no auth and does not check ownership (NOTES.md), so `close` first lists the
position as open under the configured wallet and refuses otherwise. State changes need `--yes`
and are journaled like the daemon's: the intent is committed before the request, the outcome
after it, and a lost answer is recorded as unknown, never retried.

Exit codes: 0 done, 1 the service or the journal failed, 2 usage, config or a refusal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from bot.api.positions import CloseVia, Position, PositionsClient, Stats, Units
    from bot.settings import Settings

T = TypeVar("T")

positions_app = typer.Typer(
    help="The user positions service (Solana wallet from [positions] in the config).",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file.", show_default=False),
]
YesOpt = Annotated[bool, typer.Option("--yes", help="Really do it (otherwise: say what would).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document instead of a table.")]
STATUS_CHOICES = ("open", "closed", "all")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr and an exit code: the CLI never shows a traceback."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    from bot.logs import setup_logging
    from bot.settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"config error: {problem}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level, settings.log_format)
    return settings


def _client(settings: Settings) -> PositionsClient:
    from bot.api.errors import ClientValidationError
    from bot.api.positions import PositionsClient

    try:
        return PositionsClient.from_settings(settings)
    except ClientValidationError as exc:
        _fail(f"config error: {exc.message}", 2)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's async part; API failures become one line and exit 1."""
    from bot.api.errors import ApiError, ClientValidationError

    try:
        import asyncio

        return asyncio.run(coro)
    except ClientValidationError as exc:
        _fail(f"refused: {exc.message}", 2)
    except ApiError as exc:
        _fail(f"positions service: {exc}", 1)


def _display_amount(units: Units, text: str, option: str, *, positive: bool) -> int:
    """A display amount from the command line as raw units, exactly, or exit 2 naming the option."""
    try:
        raw = units.raw(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}", 2)
    if raw < 0 or (positive and raw == 0):
        _fail(f"{option} must be {'greater than' if positive else 'at least'} 0", 2)
    return raw


def _odds(bps: int) -> str:
    return f"{Decimal(bps) / Decimal(10_000):.4f}".rstrip("0").rstrip(".") + "x"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""


def _market_cell(p: Position) -> str:
    m = p.market
    if m is None:
        return p.market_address[:12]
    teams = f"{m.home_team} v {m.away_team}" if m.home_team and m.away_team else ""
    fixture = f"#{m.fixture_id}" if m.fixture_id else p.market_address[:12]
    return f"{fixture} {teams}".strip()


def _team_cell(p: Position) -> str:
    m = p.market
    name = None
    if m is not None:
        name = (
            m.home_team if p.selected_team == 1 else m.away_team if p.selected_team == 2 else None
        )
    return f"{p.selected_team} {name}" if name else str(p.selected_team)


# --------------------------------------------------------------------------- reads


@positions_app.command("list")
def list_positions(
    config: ConfigOpt = None,
    status: Annotated[str, typer.Option(help="open, closed or all.")] = "all",
    fixture: Annotated[
        str | None,
        typer.Option(help="Only this fixture id or market address.", show_default=False),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every position of the configured wallet (all pages, newest first)."""
    if status not in STATUS_CHOICES:
        _fail(f"--status must be one of {', '.join(STATUS_CHOICES)}, got {status!r}", 2)
    client = _client(_settings(config))

    async def collect() -> list[Position]:
        async with client:
            return [p async for p in client.iter_positions(status=status, fixture_id=fixture)]

    positions = _run(collect())
    if as_json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in positions], indent=2))
        return
    _print_table(client, positions)


def _print_table(client: PositionsClient, positions: list[Position]) -> None:
    from rich.console import Console
    from rich.table import Table

    from bot.api.positions import effective_odds_bps

    units = client.units
    table = Table(title=f"positions of {client.wallet} ({client.layer} layer)")
    for name, right in (
        ("id", True),
        ("market", False),
        ("team", False),
        ("amount", True),
        ("odds", True),
        ("status", False),
        ("pnl", True),
        ("opened (UTC)", False),
        ("closed (UTC)", False),
    ):
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for p in positions:
        table.add_row(
            str(p.id),
            _market_cell(p),
            _team_cell(p),
            units.format(p.amount),
            _odds(effective_odds_bps(p)),
            p.status_name,
            f"{units.display(p.pnl):+f}",
            _when(p.created_at),
            _when(p.closed_at),
        )
    console = Console()
    console.width = max(console.width, 160)  # a pipe or a test runner reports 80 columns
    console.print(table)
    typer.echo(f"{len(positions)} position(s)")


@positions_app.command("stats")
def stats(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The wallet's totals, money in display units."""
    from bot.api.errors import NotFound

    client = _client(_settings(config))

    async def fetch() -> Stats | None:
        async with client:
            try:
                return await client.stats()
            except NotFound:
                return None  # the backend's "unknown wallet"; the proxy answers zeros

    s = _run(fetch())
    if s is None:
        typer.echo(f"{client.wallet} has no positions yet", err=True)
        from bot.api.positions import Stats

        s = Stats.model_validate(dict.fromkeys(Stats.model_fields, 0))
    if as_json:
        typer.echo(s.model_dump_json(indent=2))
        return
    u = client.units
    typer.echo(
        f"positions: {s.total_positions} ({s.open_positions} open, "
        f"{s.closed_positions} closed; {s.won_positions} won, {s.lost_positions} lost)"
    )
    typer.echo(
        f"volume {u.format(s.total_volume)}, PnL {u.display(s.total_pnl):+f}, "
        f"fees {u.format(s.total_fees_paid)}, win rate {s.win_rate:.1%}"
    )


# --------------------------------------------------------------------------- writes


@positions_app.command("open")
def open_position(
    fixture: Annotated[
        str, typer.Option("--fixture", "--market", help="Fixture id or market address.")
    ],
    team: Annotated[int, typer.Option(help="Selected team: 1 (home) or 2 (away).")],
    amount: Annotated[str, typer.Option(help="Stake in display units, e.g. 0.5.")],
    multiplier_bps: Annotated[int, typer.Option(help="Multiplier in basis points (12000 = 1.2x).")],
    odds_home_bps: Annotated[
        int | None, typer.Option(help="Home odds in bps (overrides the multiplier).")
    ] = None,
    odds_away_bps: Annotated[
        int | None, typer.Option(help="Away odds in bps (overrides the multiplier).")
    ] = None,
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Open a position for the configured wallet (journaled; needs --yes)."""
    from bot.api.errors import ClientValidationError

    settings = _settings(config)
    client = _client(settings)
    raw = _display_amount(client.units, amount, "--amount", positive=True)
    try:
        body = client.open_request(
            market=fixture,
            selected_team=team,
            amount=raw,
            multiplier_bps=multiplier_bps,
            odds_home_bps=odds_home_bps,
            odds_away_bps=odds_away_bps,
        )
    except ClientValidationError as exc:
        _fail(f"refused: {exc.message}", 2)
    odds = odds_home_bps if team == 1 else odds_away_bps
    odds = odds if odds is not None else multiplier_bps
    payout = client.units.format(raw * odds // 10_000)
    what = (
        f"open {client.units.format(raw)} on team {team} of {fixture} at {_odds(odds)} "
        f"(expected payout {payout}) for {client.wallet} via the {client.layer} layer"
    )
    if not yes:
        _fail(f"would {what}; add --yes to do it", 2)

    async def send() -> int:
        async with client:
            return await _journaled(
                settings,
                "positions_open",
                body,
                lambda: client.open_position(
                    market=fixture,
                    selected_team=team,
                    amount=raw,
                    multiplier_bps=multiplier_bps,
                    odds_home_bps=odds_home_bps,
                    odds_away_bps=odds_away_bps,
                ),
            )

    raise typer.Exit(_run(send()))


@positions_app.command("close")
def close_position(
    position_id: Annotated[int, typer.Argument(help="Position id (see `positions list`).")],
    price: Annotated[
        str | None,
        typer.Option(
            help="Close price in display units (default: the stake, i.e. PnL 0).",
            show_default=False,
        ),
    ] = None,
    via: Annotated[str, typer.Option(help="post (close route) or patch (proxy action).")] = "post",
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Close one of this wallet's open positions, after re-listing it (journaled; needs --yes)."""
    from bot.api.errors import ClientValidationError

    if via not in ("post", "patch"):
        _fail(f"--via must be post or patch, got {via!r}", 2)
    mode: CloseVia = "patch" if via == "patch" else "post"
    settings = _settings(config)
    client = _client(settings)
    close_price = (
        None if price is None else _display_amount(client.units, price, "--price", positive=False)
    )
    try:
        method, _, body = client.close_request(position_id, close_price=close_price, via=mode)
    except ClientValidationError as exc:
        _fail(f"refused: {exc.message}", 2)
    at = "the stake (PnL 0)" if price is None else f"{price}"
    if not yes:
        _fail(
            f"would close position {position_id} of {client.wallet} at {at} "
            f"({method} via the {client.layer} layer); add --yes to do it",
            2,
        )

    async def guarded() -> int:
        async with client:
            # The service would close anyone's position: only ours, and only if open right now.
            mine = {p.id: p async for p in client.iter_positions(status="open")}
            listed = mine.get(position_id)
            if listed is None or listed.wallet_address != client.wallet or not listed.is_open:
                typer.echo(
                    f"refused: position {position_id} is not an open position of "
                    f"{client.wallet} (closed, settled or another wallet's: the service "
                    "would not stop a foreign close, so this client does)",
                    err=True,
                )
                return 2
            return await _journaled(
                settings,
                "positions_close",
                {**body, "listed": listed.model_dump(mode="json")},
                lambda: client.close_position(position_id, close_price=close_price, via=mode),
            )

    raise typer.Exit(_run(guarded()))


async def _journaled(
    settings: Settings,
    kind: str,
    request: dict[str, Any],
    call: Callable[[], Awaitable[Position]],
) -> int:
    """Intent committed before the request, outcome after; a lost answer is `unknown`."""
    import sqlite3

    from bot.api.errors import ApiError, ClientValidationError, OutcomeUnknown
    from bot.journal import Journal, JournalError

    try:
        journal = Journal.open(settings.journal_path)
    except (OSError, sqlite3.Error, JournalError) as exc:
        typer.echo(f"journal {settings.journal_path}: {exc}; nothing was sent", err=True)
        return 1
    try:
        try:
            intent = journal.create_intent(
                kind, asset=None, venue="positions", request=request, now_ms=_now_ms()
            )
            journal.mark_sent(intent, _now_ms())
        except (sqlite3.Error, JournalError) as exc:
            typer.echo(f"journal {settings.journal_path}: {exc}; nothing was sent", err=True)
            return 1
        try:
            position = await call()
        except OutcomeUnknown as exc:
            journal.mark_unknown(intent, str(exc), _now_ms())
            typer.echo(
                f"outcome unknown ({exc.message}); check `alura-bot positions list` before "
                "trying again",
                err=True,
            )
            return 1
        except ClientValidationError as exc:
            journal.fail(intent, str(exc), _now_ms())
            typer.echo(f"refused: {exc.message}", err=True)
            return 2
        except ApiError as exc:
            journal.fail(intent, str(exc), _now_ms())
            typer.echo(f"positions service refused: {exc}", err=True)
            return 1
        verb = "closed" if kind == "positions_close" else "opened"
        typer.echo(f"{verb} position {position.id} ({position.status_name})")
        try:
            with journal.atomic():  # as the daemon does: no confirmed intent without its row
                journal.confirm(
                    intent, position.model_dump(mode="json"), str(position.id), _now_ms()
                )
                journal.record_position(
                    position, _now_ms(), intent if kind == "positions_close" else None
                )
        except (sqlite3.Error, JournalError) as exc:
            typer.echo(
                f"journal {settings.journal_path}: {exc}; the position was {verb} but its "
                f"outcome is not recorded (intent {intent} stays sent)",
                err=True,
            )
            return 1
        return 0
    finally:
        journal.close()
