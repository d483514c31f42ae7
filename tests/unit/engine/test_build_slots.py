"""Strategies as the daemon builds them from config."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.engine.daemon import build_slots
from bot.engine.tick import StrategySlot
from bot.settings import Settings


def slots_for(**config: Any) -> list[StrategySlot]:
    return build_slots(Settings(**config))


def test_a_strategy_without_a_budget_gets_the_configs_default_budget() -> None:
    (slot,) = slots_for(default_budget_usd="250", strategies=[{"name": "signal_follower"}])
    assert slot.strategy.params.session.budget == Decimal(250)


def test_a_strategys_own_budget_wins_over_the_default() -> None:
    (slot,) = slots_for(
        default_budget_usd="250",
        strategies=[{"name": "ema_cross", "params": {"session": {"budget": 40}}}],
    )
    assert slot.strategy.params.session.budget == Decimal(40)


def test_position_managers_take_no_budget() -> None:
    (slot,) = slots_for(default_budget_usd="250", strategies=[{"name": "position_guard"}])
    assert slot.strategy.name == "position_guard"


def test_disabled_strategies_are_not_built() -> None:
    built = slots_for(
        strategies=[{"name": "signal_follower"}, {"name": "ema_cross", "enabled": False}]
    )
    assert [s.strategy.name for s in built] == ["signal_follower"]
