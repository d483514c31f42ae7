"""Strategies, registered by name. Third parties: the `alura_bot.strategies` entry-point group,
or a directory of modules given in config (`strategies_dir`)."""

from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from strategies.base import PositionManager, Strategy, StrategyParamsError

ENTRY_POINT_GROUP = "alura_bot.strategies"
_BUILTIN = {
    "signal_follower": "strategies.signal_follower:SignalFollower",
    "ema_cross": "strategies.ema_cross:EmaCross",
    "rsi_reversion": "strategies.rsi_reversion:RsiReversion",
    "position_guard": "strategies.position_guard:PositionGuard",
}

AnyStrategy = Strategy[Any] | PositionManager


class UnknownStrategy(LookupError):
    """No strategy of that name; the message lists the ones that exist."""


def _load(target: str) -> type:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


import importlib  # noqa: E402


def _from_dir(directory: Path) -> dict[str, type]:
    found: dict[str, type] = {}
    for path in sorted(directory.glob("*.py")):
        name = f"alura_user_strategies.{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Strategy | PositionManager)
                and getattr(value, "name", None)
                and value.__module__ == name
            ):
                found[value.name] = value
    return found


def available(directory: Path | None = None) -> dict[str, type]:
    """Every strategy class by name: built-ins, entry points, then a user directory."""
    classes: dict[str, type] = {name: _load(target) for name, target in _BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        classes[ep.name] = ep.load()
    if directory is not None:
        classes.update(_from_dir(directory))
    return classes


def create(
    name: str, params: dict[str, Any] | None = None, directory: Path | None = None
) -> AnyStrategy:
    """Instantiate a strategy by name with validated params."""
    classes = available(directory)
    if name not in classes:
        raise UnknownStrategy(f"unknown strategy {name!r}; available: {', '.join(sorted(classes))}")
    instance: AnyStrategy = classes[name](params)
    return instance


__all__ = ["ENTRY_POINT_GROUP", "StrategyParamsError", "UnknownStrategy", "available", "create"]
