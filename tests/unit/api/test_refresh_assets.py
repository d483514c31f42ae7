"""refresh_assets at daemon start: adds new listings, never remaps or drops a known asset."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.api.errors import BadResponse, ServerError
from bot.api.models import QuickSessionRequest
from bot.domain import DEFAULT_ASSETS

ROUTE = "/api/indicators/candles/aggregated/symbols"


def table(client: Any) -> dict[str, int]:
    return {s: client.assets.by_symbol(s).index for s in client.assets.symbols()}


async def test_new_listing_is_added_and_the_defaults_stay(venue: Any, client_for: Any) -> None:
    venue.on(
        "GET",
        ROUTE,
        {
            "symbols": [
                {"symbol": "BTC", "assetIndex": 0, "intervals": ["1h"]},
                {"symbol": "hype", "assetIndex": 159},
                {"symbol": "PURR/USDC", "asset_index": 10_000},
            ]
        },
    )
    venue.on("POST", "/trading-sessions", {"id": "s1", "assetIndex": 159})
    async with client_for() as client:
        result = await client.refresh_assets()
        session = await client.create_quick_session(
            QuickSessionRequest(budget=Decimal(10), profit_target=Decimal(5), asset_index=159)
        )
        assert table(client) == {**DEFAULT_ASSETS, "HYPE": 159, "PURR/USDC": 10_000}
    assert result.added == {"HYPE": 159, "PURR/USDC": 10_000}
    assert result.conflicts == [] and result.skipped == 0
    assert session.asset_index == 159
    assert result.summary() == "assets added: HYPE=159, PURR/USDC=10000"


async def test_calling_it_again_changes_nothing(venue: Any, client_for: Any) -> None:
    venue.on("GET", ROUTE, [{"symbol": "HYPE", "assetIndex": 159}])  # bare list form
    async with client_for() as client:
        first = await client.refresh_assets()
        after_first = table(client)
        second = await client.refresh_assets()
        assert table(client) == after_first
    assert first.added == {"HYPE": 159}
    assert second.added == {} and second.conflicts == [] and second.skipped == 0


@pytest.mark.parametrize("body", [{"symbols": []}, [], {"symbols": [{"symbol": "HYPE"}]}])
async def test_a_short_listing_never_shrinks_the_table(
    venue: Any, client_for: Any, body: Any
) -> None:
    venue.on("GET", ROUTE, body)
    async with client_for() as client:
        await client.refresh_assets()
        assert table(client) == DEFAULT_ASSETS


async def test_listings_that_contradict_the_table_are_reported_not_applied(
    venue: Any, client_for: Any
) -> None:
    """A remapped index would send the next open to another market: keep the table."""
    venue.on(
        "GET",
        ROUTE,
        {
            "symbols": [
                {"symbol": "BTC", "assetIndex": 7},  # known symbol, other index
                {"symbol": "NEWCOIN", "assetIndex": 1},  # ETH's index
                {"symbol": "ONE", "assetIndex": 300},
                {"symbol": "TWO", "assetIndex": 300},  # same new index twice: first wins
            ]
        },
    )
    async with client_for() as client:
        result = await client.refresh_assets()
        assert client.assets.by_symbol("BTC").index == 0
        assert client.assets.by_index(1).symbol == "ETH"
        assert client.assets.by_index(300).symbol == "ONE"
        assert "TWO" not in client.assets.symbols()
    assert result.added == {"ONE": 300}
    assert result.conflicts == [
        "BTC listed as 7, known as 0",
        "NEWCOIN listed as 1, which is ETH",
        "TWO listed as 300, which is ONE",
    ]
    assert "ignored as contradicting the table" in result.summary()


async def test_unreadable_entries_are_skipped_and_the_rest_used(
    venue: Any, client_for: Any
) -> None:
    odd: list[Any] = [
        "HYPE",
        None,
        {"assetIndex": 200},
        {"symbol": "", "assetIndex": 201},
        {"symbol": "BAD SYMBOL", "assetIndex": 202},
        {"symbol": "X" * 40, "assetIndex": 203},
        {"symbol": "NEG", "assetIndex": -1},
        {"symbol": "BOOL", "assetIndex": True},
        {"symbol": "FLT", "assetIndex": 204.0},
        {"symbol": "STR", "assetIndex": "205"},
        {"symbol": "HUGE", "assetIndex": 2**40},
        {"symbol": 42, "assetIndex": 206},
    ]
    venue.on("GET", ROUTE, {"symbols": [*odd, {"symbol": "GOOD", "assetIndex": 207}]})
    async with client_for() as client:
        result = await client.refresh_assets()
        assert table(client) == {**DEFAULT_ASSETS, "GOOD": 207}
    assert result.added == {"GOOD": 207} and result.skipped == len(odd)
    assert result.summary().endswith(f"; {len(odd)} unreadable entries skipped")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(200, text="<html>maintenance</html>"), BadResponse),
        (httpx.Response(200, json={"symbols": "BTC"}), BadResponse),
        (httpx.Response(503, json={"message": "down"}), ServerError),
    ],
    ids=["not json", "wrong shape", "server error"],
)
async def test_a_failed_listing_raises_and_leaves_the_table(
    venue: Any, client_for: Any, answer: httpx.Response, error: type[Exception]
) -> None:
    venue.on("GET", ROUTE, lambda _: answer)
    async with client_for() as client:
        with pytest.raises(error):
            await client.refresh_assets()
        assert table(client) == DEFAULT_ASSETS
