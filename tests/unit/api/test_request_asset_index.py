"""assetIndex in session requests is a strict int: no bools, strings or floats slip through."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from bot.api.models import AdvancedSessionRequest, QuickSessionRequest
from bot.domain import ExecutionStrategy, StrategyDuration


def quick(asset_index: Any) -> QuickSessionRequest:
    return QuickSessionRequest(
        budget=Decimal(10), profit_target=Decimal(5), asset_index=asset_index
    )


def advanced(asset_index: Any) -> AdvancedSessionRequest:
    return AdvancedSessionRequest(
        amount=Decimal(20),
        execution_strategy=ExecutionStrategy("Conservative"),
        strategy_duration=StrategyDuration("1D"),
        asset_index=asset_index,
    )


@pytest.mark.parametrize("build", [quick, advanced], ids=["quick", "advanced"])
@pytest.mark.parametrize("bad", [True, False, "1", 1.0, -1, None])
def test_asset_index_refuses_non_int(build: Any, bad: Any) -> None:
    with pytest.raises(ValidationError, match=r"asset_index|assetIndex"):
        build(bad)


@pytest.mark.parametrize("build", [quick, advanced], ids=["quick", "advanced"])
def test_asset_index_int_goes_on_the_wire(build: Any) -> None:
    assert build(1).wire()["assetIndex"] == 1
    wired = build(0).wire()["assetIndex"]
    assert wired == 0 and type(wired) is int


@pytest.mark.parametrize("model", [QuickSessionRequest, AdvancedSessionRequest])
def test_asset_index_bool_refused_from_json_body(model: Any) -> None:
    body = {
        "budget": 10,
        "profitTarget": 5,
        "amount": 20,
        "executionStrategy": "Conservative",
        "strategyDuration": "1D",
        "assetIndex": True,
    }
    fields = {f.alias or name for name, f in model.model_fields.items()}
    with pytest.raises(ValidationError, match=r"asset_index|assetIndex"):
        model.model_validate({k: v for k, v in body.items() if k in fields})
