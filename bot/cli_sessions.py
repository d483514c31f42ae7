"""`alura-bot sessions list|open|close`: manual session handling with the daemon's safety rules.

Opening and closing move money, so they need live mode (config AND --live) and --yes, refuse an
asset with an unresolved intent, and journal intent and outcome exactly like the daemon does.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

sessions_app = typer.Typer(help="List, open and close trading sessions.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file.", show_default=False)
]
LiveOpt = Annotated[bool, typer.Option("--live", help='Needed (with mode = "live") to act.')]
YesOpt = Annotated[bool, typer.Option("--yes", help="Really do it.")]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _live_context(config: Path | None, live: bool, yes: bool, what: str) -> tuple[Any, Any]:
    """Settings and key for a money-moving command, or exit 2 saying what is missing."""
    from bot.cli import _settings
    from bot.engine.daemon import LiveModeRefused, effective_mode
    from bot.settings import ConfigError, load_private_key

    settings = _settings(config)
    try:
        if effective_mode(settings, live) != "live":
            raise LiveModeRefused(f'{what} moves money: it needs mode = "live" and --live')
        key = load_private_key(settings)
    except (LiveModeRefused, ConfigError) as exc:
        for line in getattr(exc, "problems", None) or [str(exc)]:
            typer.echo(f"refused: {line}", err=True)
        raise typer.Exit(2) from None
    if not yes:
        typer.echo(f"{what} against {settings.base_url}: add --yes to do it", err=True)
        raise typer.Exit(2)
    return settings, key


@sessions_app.command("list")
def list_sessions(
    config: ConfigOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Closed sessions too.")] = False,
    venue: Annotated[
        bool, typer.Option("--venue", help="Also ask the venue (needs the key).")
    ] = False,
) -> None:
    """Sessions from the journal (and, with --venue, what the venue reports as active)."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from bot.cli import _settings
    from bot.journal import Journal

    settings = _settings(config)
    console = Console()
    table = Table(title="sessions (journal)")
    for col in ("id", "asset", "kind", "strategy", "status", "budget", "realised", "opened UTC"):
        table.add_column(col)
    if Path(settings.journal_path).exists():
        journal = Journal.open(settings.journal_path)
        rows = journal.sessions() if all_ else journal.open_sessions()
        for r in rows:
            opened = datetime.fromtimestamp(r.opened_at / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            table.add_row(
                r.id,
                r.asset,
                r.kind,
                r.strategy,
                r.status,
                str(r.budget),
                "" if r.realized_pnl is None else f"{r.realized_pnl:+}",
                opened,
            )
        journal.close()
    console.print(table)
    if not venue:
        return
    active = venue_active_sessions(settings, "--venue")
    vt = Table(title=f"active on the venue ({settings.base_url})")
    for col in ("id", "assetIndex", "kind", "budget", "status"):
        vt.add_column(col)
    for s in active.sessions:
        vt.add_row(s.id, str(s.asset_index), s.kind or "", str(s.budget or ""), s.status)
    console.print(vt)


def venue_active_sessions(settings: Any, why: str) -> Any:
    """The venue's active sessions, for a command that was asked to look (exit 2 without a key,
    1 when the venue fails: a read, so nothing is journaled)."""
    import asyncio

    from bot.api.alura import AluraClient
    from bot.api.errors import ApiError
    from bot.settings import ConfigError, load_private_key

    try:
        key = load_private_key(settings)
    except ConfigError as exc:
        typer.echo(f"{why} needs the key: {exc.problems[0]}", err=True)
        raise typer.Exit(2) from None

    async def fetch() -> Any:
        async with AluraClient.from_settings(settings, key) as client:
            return await client.active_sessions()

    try:
        return asyncio.run(fetch())
    except ApiError as exc:
        typer.echo(f"venue: {exc}", err=True)
        raise typer.Exit(1) from None


@sessions_app.command("open")
def open_session(
    asset: Annotated[str, typer.Option(help="BTC, ETH, SOL, XRP, DOGE, AVAX, …")],
    budget: Annotated[str, typer.Option(help="USDC (quick) or amount (advanced); >= 10.")],
    config: ConfigOpt = None,
    profit_target: Annotated[str, typer.Option(help="Quick: % of budget, <= 500.")] = "2",
    loss_threshold: Annotated[str, typer.Option(help="Quick: % of budget.")] = "1",
    max_positions: Annotated[int, typer.Option(help="Quick: positions at once.")] = 1,
    advanced: Annotated[
        str | None,
        typer.Option(
            help="Open an advanced session with this executionStrategy "
            "(Conservative, Aggressive, Degen) instead of a quick one.",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[str, typer.Option(help="Advanced: 1D 3D 7D 30D 90D 365D.")] = "1D",
    live: LiveOpt = False,
    yes: YesOpt = False,
) -> None:
    """Open one session by hand, journaled like the daemon's; refused on an asset with an open
    session or an unresolved intent in the journal (the RiskGate's budget rules do not apply)."""
    from pydantic import ValidationError

    from bot.api.models import AdvancedSessionRequest, QuickSessionRequest
    from bot.domain import AssetRegistry, ExecutionStrategy, StrategyDuration, UnknownAsset

    settings, key = _live_context(config, live, yes, "sessions open")
    try:
        index = AssetRegistry().by_symbol(asset).index
        request: QuickSessionRequest | AdvancedSessionRequest
        if advanced:
            request = AdvancedSessionRequest(
                amount=Decimal(budget),
                execution_strategy=ExecutionStrategy(advanced),
                strategy_duration=StrategyDuration(duration),
                asset_index=index,
            )
        else:
            request = QuickSessionRequest(
                budget=Decimal(budget),
                profit_target=Decimal(profit_target),
                loss_threshold=Decimal(loss_threshold),
                max_positions=max_positions,
                asset_index=index,
            )
    except (ValidationError, ValueError, UnknownAsset) as exc:
        typer.echo(f"invalid session: {exc}".splitlines()[0], err=True)
        raise typer.Exit(2) from None
    kind = "open_advanced" if advanced else "open_quick"
    import asyncio

    raise typer.Exit(
        asyncio.run(
            _act(
                settings,
                key,
                kind,
                asset.upper(),
                request.wire(),
                lambda c: (
                    c.create_advanced_session(request)
                    if advanced
                    else c.create_quick_session(request)
                ),
            )
        )
    )


@sessions_app.command("close")
def close_session(
    session_id: Annotated[str, typer.Argument(help="Session id (see `sessions list`).")],
    config: ConfigOpt = None,
    live: LiveOpt = False,
    yes: YesOpt = False,
) -> None:
    """Close every position of one session (its trade), journaled."""
    from bot.journal import Journal

    settings, key = _live_context(config, live, yes, "sessions close")
    journal = Journal.open(settings.journal_path)
    row = journal.session(session_id)
    journal.close()
    if row is None or row.status != "open":
        typer.echo(f"no open session {session_id} in the journal (see `sessions list`)", err=True)
        raise typer.Exit(2)
    from bot.domain import AssetRegistry

    trade = row.trade_id
    index = AssetRegistry().by_symbol(row.asset).index

    def call(client: Any) -> Any:
        return client.close_trade(trade) if trade else client.close_position_by_asset(index)

    import asyncio

    raise typer.Exit(
        asyncio.run(
            _act(
                settings,
                key,
                "close_session",
                row.asset,
                {"sessionId": session_id, "tradeId": trade},
                call,
                close_id=session_id,
            )
        )
    )


async def _act(
    settings: Any,
    key: Any,
    kind: str,
    asset: str,
    request: dict[str, Any],
    call: Any,
    close_id: str | None = None,
) -> int:
    """Intent committed, request sent, outcome journaled; unknown outcomes are left for the
    daemon's reconciliation (never retried here)."""
    from bot.api.alura import AluraClient
    from bot.api.errors import ApiError, OutcomeUnknown
    from bot.api.models import applied_amounts
    from bot.journal import Journal, SessionRow

    journal = Journal.open(settings.journal_path)
    try:
        if any(i.asset == asset for i in journal.unresolved_intents()):
            typer.echo(
                f"refused: {asset} has an unresolved intent; let the daemon reconcile", err=True
            )
            return 2
        busy = next(
            (r for r in journal.open_sessions() if r.asset == asset and r.mode == "live"), None
        )
        if close_id is None and busy is not None:
            typer.echo(
                f"refused: {asset} already has an open session ({busy.id}); one per asset",
                err=True,
            )
            return 2
        intent = journal.create_intent(
            kind, asset=asset, venue="sessions", request=request, now_ms=_now_ms()
        )
        journal.mark_sent(intent, _now_ms())
        async with AluraClient.from_settings(settings, key) as client:
            try:
                result = await call(client)
                raw = result.model_dump(mode="json", by_alias=True)
                if close_id is not None:
                    pnl, fees = applied_amounts(raw, "/trading-sessions/trades/{trade_id}/close")
            except OutcomeUnknown as exc:
                journal.mark_unknown(intent, str(exc), _now_ms())
                typer.echo(f"outcome unknown ({exc.message}); the daemon reconciles it", err=True)
                return 1
            except ApiError as exc:
                journal.fail(intent, str(exc), _now_ms())
                typer.echo(f"refused by the venue: {exc}", err=True)
                return 1
        if close_id is not None:
            journal.confirm(intent, raw, close_id, _now_ms())
            journal.close_session(close_id, _now_ms(), pnl, fees)
            typer.echo(f"closed {close_id}: realised {pnl} USDC")
        else:
            journal.confirm(intent, raw, result.id, _now_ms())
            journal.upsert_session(
                SessionRow(
                    id=result.id,
                    asset=asset,
                    kind=kind.removeprefix("open_"),
                    strategy="(manual)",
                    status="open",
                    budget=result.budget or Decimal(0),
                    opened_at=_now_ms(),
                    closed_at=None,
                    realized_pnl=None,
                    fees=None,
                    intent_id=intent,
                    mode="live",
                    raw=raw,
                    trade_id=result.trade_id,
                )
            )
            typer.echo(f"opened {result.id} on {asset}")
        return 0
    finally:
        journal.close()
