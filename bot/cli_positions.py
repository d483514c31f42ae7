"""`alura-bot positions list|stats|open|close`: the user positions service from the command line.

The service has no auth and does not check ownership, so `close` first lists the position under
the configured wallet and refuses unless it is there and open. State changes need --yes and are
journaled (intent committed before the request, outcome after) like the daemon's.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

positions_app = typer.Typer(
    help="The user positions service (Solana wallet).", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file.", show_default=False)
]
YesOpt = Annotated[bool, typer.Option("--yes", help="Really do it.")]
STATUS_QUERY = {"open": "open", "closed": "closed", "all": None}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _client(config: Path | None) -> tuple[Any, Any]:
    from bot.api.errors import ClientValidationError
    from bot.api.positions import PositionsClient
    from bot.cli import _settings

    settings = _settings(config)
    try:
        return settings, PositionsClient.from_settings(settings)
    except (ClientValidationError, ValueError) as exc:
        typer.echo(f"config error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(2) from None


def _run(coro: Any) -> Any:
    from bot.api.errors import ApiError

    try:
        return asyncio.run(coro)
    except ApiError as exc:
        typer.echo(f"positions service: {exc}", err=True)
        raise typer.Exit(1) from None


@positions_app.command("list")
def list_positions(
    config: ConfigOpt = None,
    status: Annotated[str, typer.Option(help="open, closed or all.")] = "all",
    fixture: Annotated[
        str | None,
        typer.Option(help="Only this fixture (id or market address).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Every position of the configured wallet (all pages)."""
    from datetime import UTC

    from rich.console import Console
    from rich.table import Table

    from bot.api.positions import effective_odds_bps

    if status not in STATUS_QUERY:
        typer.echo("--status must be open, closed or all", err=True)
        raise typer.Exit(2)
    _, client = _client(config)

    async def collect() -> list[Any]:
        async with client:
            return [
                p
                async for p in client.iter_positions(
                    status=STATUS_QUERY[status], fixture_id=fixture
                )
            ]

    positions = _run(collect())
    units = client.units
    if as_json:
        for p in positions:
            typer.echo(p.model_dump_json())
        return
    table = Table(title=f"positions of {client.wallet} ({client.layer} layer)")
    for col in (
        "id",
        "fixture",
        "match",
        "team",
        "amount",
        "odds",
        "status",
        "pnl",
        "opened UTC",
        "closed UTC",
    ):
        table.add_column(col, justify="right" if col in ("amount", "pnl", "odds") else "left")
    for p in positions:
        m = p.market
        match = f"{m.home_team} v {m.away_team}" if m and m.home_team else p.market_address[:12]
        table.add_row(
            str(p.id),
            (m.fixture_id if m else "") or "",
            match,
            str(p.selected_team),
            f"{units.display(p.amount):f}",
            f"{effective_odds_bps(p) / 10_000:.2f}x",
            p.status_name,
            f"{units.display(p.close_pnl if p.close_pnl is not None else p.pnl):+f}",
            p.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            p.closed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if p.closed_at else "",
        )
    Console().print(table)
    typer.echo(f"{len(positions)} position(s)")


@positions_app.command("stats")
def stats(config: ConfigOpt = None) -> None:
    """The wallet's totals, in display units."""
    _, client = _client(config)

    async def fetch() -> Any:
        async with client:
            return await client.stats()

    s = _run(fetch())
    u = client.units
    typer.echo(
        f"positions: {s.total_positions} ({s.open_positions} open, "
        f"{s.closed_positions} closed; {s.won_positions} won, {s.lost_positions} lost)"
    )
    typer.echo(
        f"volume {u.display(s.total_volume):f}, PnL {u.display(s.total_pnl):+f}, "
        f"fees {u.display(s.total_fees_paid):f}, win rate {s.win_rate:.1%}"
    )


@positions_app.command("open")
def open_position(
    market: Annotated[str, typer.Option(help="Market address or fixture id.")],
    team: Annotated[int, typer.Option(help="Selected team: 1 (home) or 2 (away).")],
    amount: Annotated[str, typer.Option(help="Stake in display units (e.g. 0.5).")],
    multiplier_bps: Annotated[int, typer.Option(help="Multiplier in basis points (12000 = 1.2x).")],
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Open a position (journaled)."""
    settings, client = _client(config)
    try:
        raw = client.units.raw(Decimal(amount))
    except (InvalidOperation, ValueError) as exc:
        typer.echo(f"--amount: {exc}", err=True)
        raise typer.Exit(2) from None
    if team not in (1, 2):
        typer.echo("--team must be 1 or 2", err=True)
        raise typer.Exit(2)
    if not yes:
        typer.echo(
            f"would open {amount} on team {team} of {market} for {client.wallet}; add --yes",
            err=True,
        )
        raise typer.Exit(2)
    request = {
        "market": market,
        "selected_team": team,
        "amount": raw,
        "multiplier_bps": multiplier_bps,
    }
    raise typer.Exit(
        _run(
            _journaled(
                settings, client, "positions_open", request, lambda: client.open_position(**request)
            )
        )
    )


@positions_app.command("close")
def close_position(
    position_id: Annotated[int, typer.Argument(help="Position id (see `positions list`).")],
    config: ConfigOpt = None,
    price: Annotated[
        str | None,
        typer.Option(
            help="Close price in display units (default: the stake, i.e. PnL 0).",
            show_default=False,
        ),
    ] = None,
    via: Annotated[str, typer.Option(help="post (close route) or patch (action form).")] = "post",
    yes: YesOpt = False,
) -> None:
    """Close one of this wallet's open positions, after re-listing it (journaled)."""
    settings, client = _client(config)
    close_price = client.units.raw(Decimal(price)) if price is not None else None
    if via not in ("post", "patch"):
        typer.echo("--via must be post or patch", err=True)
        raise typer.Exit(2)
    if not yes:
        typer.echo(f"would close position {position_id} of {client.wallet}; add --yes", err=True)
        raise typer.Exit(2)

    async def guarded() -> int:
        async with client:
            mine = {p.id: p async for p in client.iter_positions(status="open")}
            if position_id not in mine:
                typer.echo(
                    f"refused: position {position_id} is not an open position of "
                    f"{client.wallet} (the service would not stop a foreign close)",
                    err=True,
                )
                return 2
            mode: Literal["post", "patch"] = "patch" if via == "patch" else "post"
            return await _journaled(
                settings,
                client,
                "positions_close",
                {"position_id": position_id, "close_price": close_price},
                lambda: client.close_position(position_id, close_price=close_price, via=mode),
            )

    raise typer.Exit(_run(guarded()))


async def _journaled(
    settings: Any, client: Any, kind: str, request: dict[str, Any], call: Any
) -> int:
    from bot.api.errors import ApiError, OutcomeUnknown
    from bot.journal import Journal

    journal = Journal.open(settings.journal_path)
    try:
        intent = journal.create_intent(
            kind, asset=None, venue="positions", request=request, now_ms=_now_ms()
        )
        journal.mark_sent(intent, _now_ms())
        try:
            position = await call()
        except OutcomeUnknown as exc:
            journal.mark_unknown(intent, str(exc), _now_ms())
            typer.echo(f"outcome unknown ({exc.message}); check with `positions list`", err=True)
            return 1
        except ApiError as exc:
            journal.fail(intent, str(exc), _now_ms())
            typer.echo(f"refused: {exc}", err=True)
            return 1
        raw = json.loads(position.model_dump_json())
        journal.confirm(intent, raw, str(position.id), _now_ms())
        journal.upsert_position(
            str(position.id),
            position.wallet_address,
            int(position.status),
            position.amount,
            position.pnl,
            position.close_pnl,
            raw,
            _now_ms(),
            intent if kind == "positions_close" else None,
        )
        verb = "closed" if kind == "positions_close" else "opened"
        typer.echo(f"{verb} position {position.id} ({position.status_name})")
        return 0
    finally:
        journal.close()
