"""Requests enforce documented constraints before sending; responses are tolerant but typed."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bot.api.errors import BadResponse, ClientValidationError
from bot.api.models import (
    AdvancedSessionRequest,
    QuickSessionRequest,
    Signal,
    TradingSession,
    decimal_to_wire,
)


def test_budget_below_10_refused() -> None:
    with pytest.raises(ValidationError, match="budget"):
        QuickSessionRequest(budget=Decimal("9.99"), profit_target=Decimal(5), asset_index=0)


def test_profit_target_above_500_refused() -> None:
    with pytest.raises(ValidationError, match=r"profitTarget|profit_target"):
        QuickSessionRequest(budget=Decimal(10), profit_target=Decimal("500.01"), asset_index=0)


@pytest.mark.parametrize("field", ["executionStrategy", "strategyDuration"])
def test_unknown_enum_refused(field: str) -> None:
    body: dict[str, Any] = {
        "amount": 20,
        "executionStrategy": "Conservative",
        "strategyDuration": "1D",
        "assetIndex": 0,
    }
    body[field] = "Reckless"
    with pytest.raises(ValidationError, match=field):
        AdvancedSessionRequest.model_validate(body)


async def test_unknown_asset_refused_before_sending(venue: Any, client_for: Any) -> None:
    request = QuickSessionRequest(budget=Decimal(10), profit_target=Decimal(5), asset_index=77)
    async with client_for() as client:
        with pytest.raises(ClientValidationError, match="unknown assetIndex 77"):
            await client.create_quick_session(request)
    assert venue.requests == []


async def test_asset_table_extends_from_aggregated_symbols(venue: Any, client_for: Any) -> None:
    venue.on(
        "GET",
        "/api/indicators/candles/aggregated/symbols",
        {"symbols": [{"symbol": "HYPE", "assetIndex": 159}]},
    )
    venue.on("POST", "/trading-sessions", {"id": "s1", "assetIndex": 159})
    async with client_for() as client:
        await client.refresh_assets()
        session = await client.create_quick_session(
            QuickSessionRequest(budget=Decimal(10), profit_target=Decimal(5), asset_index=159)
        )
    assert session.asset_index == 159


@pytest.mark.parametrize("text", ["10", "100.5", "0.000001", "123456789.123456", "12.10"])
def test_money_goes_on_the_wire_exactly(text: str) -> None:
    wired = json.dumps(decimal_to_wire(Decimal(text)))
    assert Decimal(wired) == Decimal(text)


def test_money_float_input_becomes_exact_decimal() -> None:
    req = QuickSessionRequest(budget=100.1, profit_target=5, asset_index=0)  # type: ignore[arg-type]
    assert req.budget == Decimal("100.1")
    assert req.wire()["budget"] == 100.1


def test_response_keeps_unknown_fields() -> None:
    session = TradingSession.model_validate(
        {"sessionId": 42, "assetIndex": 1, "status": "active", "leverage": 3, "novel": {"a": 1}}
    )
    assert session.id == "42"
    assert session.model_extra == {"leverage": 3, "novel": {"a": 1}}


def test_signal_rejects_non_finite_indicators() -> None:
    with pytest.raises(ValidationError, match="non-finite"):
        Signal.model_validate(
            {
                "symbol": "BTC",
                "interval": "1h",
                "signal": "BUY",
                "indicators": {"rsi": float("nan")},
                "candleTime": 1,
            }
        )


async def test_wrong_shape_is_bad_response_not_keyerror(venue: Any, client_for: Any) -> None:
    venue.on("GET", "/api/indicators/signals/all/1h", {"unexpected": True})
    async with client_for() as client:
        with pytest.raises(BadResponse) as info:
            await client.signals_all("1h")
    assert info.value.endpoint == "/api/indicators/signals/all/{interval}"
    assert "unexpected" in str(info.value)


async def test_html_body_is_bad_response(venue: Any, client_for: Any) -> None:
    venue.routes[("GET", "/health")] = lambda r: httpx.Response(
        200, text="<html>maintenance</html>"
    )
    async with client_for() as client:
        with pytest.raises(BadResponse, match=r"not JSON.*maintenance"):
            await client.health()
