"""`alura-bot strategies`: what can go in a `[[strategies]]` table, and with which params.

Built from the classes themselves (their module docstring and their pydantic `Params`), so the
list never drifts from the code: built-ins, installed entry points and a `--dir` of your own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def _summary(cls: type) -> str:
    """The first line of the strategy's module docstring, without its `name:` prefix."""
    doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip()
    first = doc.splitlines()[0] if doc else ""
    name = str(getattr(cls, "name", ""))
    return first.removeprefix(f"{name}:").strip()


def _params(cls: type, common: set[str]) -> dict[str, Any]:
    """Each param the strategy adds to the common ones: its default, JSON-ready."""
    model = getattr(cls, "Params", None)
    fields = getattr(model, "model_fields", {})
    out: dict[str, Any] = {}
    for name, field in fields.items():
        if name in common:
            continue
        default = field.get_default(call_default_factory=True)
        out[name] = json.loads(json.dumps(default, default=str))
    return out


def describe(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every strategy by name: kind, what it does, its own params with their defaults."""
    import strategies
    from strategies.base import PositionManager, StrategyParams

    common = set(StrategyParams.model_fields)
    rows = []
    for name, cls in sorted(strategies.available(directory).items()):
        manager = issubclass(cls, PositionManager)
        rows.append(
            {
                "name": name,
                "kind": "position manager" if manager else "candles",
                "summary": _summary(cls),
                "params": _params(cls, set() if manager else common),
            }
        )
    return rows


def strategies_cmd(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Also list the strategies in this directory (strategies_dir)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the strategies a config can name, what each does, and its params with defaults."""
    from strategies.base import SessionParams, StrategyParams

    if directory is not None and not directory.is_dir():
        typer.echo(f"strategies: --dir {directory} is not a directory", err=True)
        raise typer.Exit(2)
    rows = describe(directory)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape("strategies (name them in [[strategies]] tables)"))
    for column in ("name", "kind", "what it does", "params (default)"):
        table.add_column(column, overflow="fold")
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        table.add_row(row["name"], row["kind"], row["summary"], params)
    console = Console()
    console.print(table)
    base = ", ".join(k for k in StrategyParams.model_fields if k != "session")
    session = ", ".join(SessionParams.model_fields)
    console.print(
        f"Every candle strategy also takes {base}, and session = {{ {session} }} "
        "(the session it opens; budget defaults to default_budget_usd)."
    )


def register(app: typer.Typer) -> None:
    app.command("strategies")(strategies_cmd)
