"""Strategies, registered by name. Third parties: the `alura_bot.strategies` entry-point group,
or a directory of modules given in config (`strategies_dir`).

A name resolves to the user directory's strategy first (an operator's own copy wins), then to a
built-in, then to an entry point: an installed package cannot take a built-in's name.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
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
log = logging.getLogger("bot.strategies")


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


def _entry_points(name: str | None = None) -> dict[str, type]:
    from importlib.metadata import entry_points

    found: dict[str, type] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if name is not None and ep.name != name:
            continue
        if ep.name in _BUILTIN:
            log.warning("entry point %s (%s) ignored: it is a built-in's name", ep.name, ep.value)
            continue
        found[ep.name] = ep.load()
    return found


def available(directory: Path | None = None) -> dict[str, type]:
    """Every strategy class by name, with the precedence `create` uses."""
    classes: dict[str, type] = _entry_points()
    classes.update({name: _load(target) for name, target in _BUILTIN.items()})
    if directory is not None:
        classes.update(_from_dir(directory))
    return classes


def resolve(name: str, directory: Path | None = None) -> type:
    """The class behind one name, loading only what it takes to find it."""
    if directory is not None and (mine := _from_dir(directory).get(name)) is not None:
        return mine
    if name in _BUILTIN:
        return _load(_BUILTIN[name])
    found = _entry_points(name).get(name)
    if found is None:
        classes = available(directory)
        raise UnknownStrategy(f"unknown strategy {name!r}; available: {', '.join(sorted(classes))}")
    return found


def create(
    name: str, params: dict[str, Any] | None = None, directory: Path | None = None
) -> AnyStrategy:
    """Instantiate a strategy by name with validated params."""
    instance: AnyStrategy = resolve(name, directory)(params)
    return instance


__all__ = [
    "ENTRY_POINT_GROUP",
    "StrategyParamsError",
    "UnknownStrategy",
    "available",
    "create",
    "resolve",
]
