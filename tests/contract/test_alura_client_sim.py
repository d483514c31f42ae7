"""The AluraClient against the real simulator over loopback: every endpoint, errors and faults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from bot.api.alura import AluraClient
from bot.api.errors import (
    BuilderFeeApprovalFailed,
    DuplicateAsset,
    NotFound,
    OutcomeUnknown,
    Unauthorized,
    ValidationFailed,
)
from bot.api.models import AdvancedSessionRequest, QuickSessionRequest
from bot.domain import ExecutionStrategy, StrategyDuration
from bot.sim.faults import FaultProfile
from tests.conftest import TEST_ADDRESS

HOUR = 3_600_000
QUICK = QuickSessionRequest(
    budget=Decimal(100),
    profit_target=Decimal(2),
    loss_threshold=Decimal(1),
    max_positions=1,
    asset_index=0,
)


async def raw_post(client: AluraClient, path: str, body: Any) -> Any:
    """Bypass client-side validation to see what the venue itself answers."""
    return await client.transport.request("POST", path, json_body=body, auth=True)


async def test_login_round_trip_and_profile(sim_client: AluraClient) -> None:
    profile = await sim_client.profile()
    assert profile.address == TEST_ADDRESS.lower()
    assert profile.usdc_balance == Decimal(10000)


async def test_verify_with_bad_signature_is_unauthorized(sim_client: AluraClient) -> None:
    await sim_client.challenge(TEST_ADDRESS)
    with pytest.raises(Unauthorized, match="Invalid signature"):
        await sim_client.verify(TEST_ADDRESS, "0x1234")


async def test_protected_endpoint_without_token_is_401(sim_server: Any) -> None:
    async with httpx.AsyncClient(base_url=sim_server.url) as raw:
        resp = await raw.get("/trading-sessions/active")
    assert resp.status_code == 401


async def test_quick_session_lifecycle(sim_client: AluraClient, sim_server: Any) -> None:
    session = await sim_client.create_quick_session(QUICK)
    assert session.asset_index == 0 and session.status == "active"
    active = await sim_client.active_sessions()
    assert [s.id for s in active.sessions] == [session.id]
    sim_server.sim.clock.advance(3 * HOUR)
    logs = await sim_client.session_logs(session.id)
    assert logs.logs and logs.logs[0].message
    assert session.trade_id is not None
    page = await sim_client.trade_logs(session.trade_id, page=1, limit=5)
    assert page.page == 1 and page.limit == 5 and page.total is not None
    await sim_client.trigger_cron()
    closed = await sim_client.close_trade(session.trade_id)
    assert closed.model_extra and closed.model_extra["sessionId"] == session.id
    assert (await sim_client.active_sessions()).sessions == []


async def test_position_close_and_close_signature(sim_client: AluraClient, sim_server: Any) -> None:
    await sim_client.create_quick_session(QUICK.model_copy(update={"max_positions": 3}))
    for _ in range(24):
        sim_server.sim.clock.advance(HOUR // 4)
        trade = await sim_client.current_trade()
        if trade.trades and trade.trades[0].positions:
            break
    position = trade.trades[0].positions[0]
    signed = await sim_client.close_signature(position.id)
    extra = signed.model_extra or {}
    agent = (await sim_client.trading_key()).model_extra or {}
    text = __import__("json").dumps(extra["payload"], sort_keys=True, separators=(",", ":"))
    assert (
        Account.recover_message(encode_defunct(text=text), signature=extra["signature"])
        == agent["address"]
    )
    result = await sim_client.close_position(position.id)
    assert (result.model_extra or {})["positionId"] == position.id
    with pytest.raises(NotFound):
        await sim_client.close_position(position.id)


async def test_advanced_session_opens(sim_client: AluraClient) -> None:
    session = await sim_client.create_advanced_session(
        AdvancedSessionRequest(
            amount=Decimal(50),
            execution_strategy=ExecutionStrategy.CONSERVATIVE,
            strategy_duration=StrategyDuration.D1,
            asset_index=1,
        )
    )
    assert session.kind == "advanced" and session.asset_index == 1


async def test_duplicate_asset_is_typed(sim_client: AluraClient) -> None:
    await sim_client.create_quick_session(QUICK)
    with pytest.raises(DuplicateAsset, match="Duplicate asset index"):
        await sim_client.create_quick_session(QUICK)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"budget": 5, "profitTarget": 2, "assetIndex": 0}, "budget must not be less than 10"),
        (
            {"budget": 50, "profitTarget": 600, "assetIndex": 0},
            "profitTarget must not be greater than 500",
        ),
        ({"budget": 50, "profitTarget": 2, "assetIndex": 99}, "assetIndex must be a supported"),
        ({"budget": 20000, "profitTarget": 2, "assetIndex": 0}, "Insufficient balance"),
        # more digits than an amount is written with: the fuzzer found a 500 here
        ({"budget": 1.7976931348623157e308, "profitTarget": 2, "assetIndex": 0}, "too large"),
    ],
)
async def test_venue_validation_errors(sim_client: AluraClient, body: Any, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        await raw_post(sim_client, "/trading-sessions", body)


async def test_unknown_enum_from_venue(sim_client: AluraClient) -> None:
    with pytest.raises(ValidationFailed, match="executionStrategy must be one of"):
        await raw_post(
            sim_client,
            "/trading-sessions/advance",
            {"amount": 50, "executionStrategy": "Yolo", "strategyDuration": "1D", "assetIndex": 0},
        )


async def test_user_endpoints(sim_client: AluraClient, sim_server: Any) -> None:
    await sim_client.create_quick_session(QUICK)
    await sim_client.create_quick_session(QUICK.model_copy(update={"asset_index": 1}))
    sim_server.sim.clock.advance(6 * HOUR)
    assert (await sim_client.sync_fills()).model_extra is not None
    await sim_client.close_position_by_asset(0)
    await sim_client.close_all_positions()
    assert (await sim_client.active_sessions()).sessions == []
    before = (await sim_client.profile()).usdc_balance
    assert before is not None
    await sim_client.withdraw(Decimal("12.5"), "0xdestination")
    friend = "0x" + "12" * 20
    await sim_client.send_usdc(Decimal("7.25"), friend)
    after = (await sim_client.profile()).usdc_balance
    assert after == before - Decimal("19.75")
    with pytest.raises(ValidationFailed, match="Insufficient balance"):
        await sim_client.withdraw(Decimal(10**7))
    with pytest.raises(ValidationFailed, match="No rewards"):
        await sim_client.claim_reward()


async def test_indicator_endpoints(sim_client: AluraClient) -> None:
    assert (await sim_client.indicators_health()).status == "ok"
    symbols = await sim_client.aggregated_symbols()
    assert [s.symbol for s in symbols.symbols] == ["BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"]
    latest = await sim_client.candles_latest("ETH")
    assert "ETH" in (latest.model_extra or {})
    series = await sim_client.candles("BTC", "1h", limit=50)
    assert len(series.candles) == 50
    assert all(a.time < b.time for a, b in zip(series.candles, series.candles[1:], strict=False))
    history = await sim_client.candles_history("SOL", interval="4h", limit=10)
    assert len(history.candles) == 10
    one = await sim_client.signal("BTC", "1h")
    assert one.symbol == "BTC" and one.candle_time == series.candles[-1].time
    every = await sim_client.signals_all("15m")
    assert {s.symbol for s in every.signals} == {s.symbol for s in symbols.symbols}
    with pytest.raises(NotFound):
        await sim_client.signal("NOPE", "1h")
    with pytest.raises(ValidationFailed, match="interval must be one of"):
        await sim_client.signals_all("7m")


async def test_refresh_assets_agrees_with_the_simulator(sim_client: AluraClient) -> None:
    """What the daemon would do at start: the venue's listing matches the table, twice over."""
    before = {s: sim_client.assets.by_symbol(s).index for s in sim_client.assets.symbols()}
    for _ in range(2):
        result = await sim_client.refresh_assets()
        assert (result.added, result.conflicts, result.skipped) == ({}, [], 0)
    assert {s: sim_client.assets.by_symbol(s).index for s in sim_client.assets.symbols()} == before


async def test_candles_never_include_an_unclosed_candle(
    sim_client: AluraClient, sim_server: Any
) -> None:
    now = sim_server.sim.clock.now_ms()
    series = await sim_client.candles("BTC", "1h", limit=3)
    assert series.candles[-1].time + HOUR <= now


async def test_leaderboard_referrals_usdc_health(sim_client: AluraClient) -> None:
    profile = await sim_client.profile()
    user_id = (profile.model_extra or {})["userId"]
    assert (await sim_client.leaderboard_stats()).model_extra is not None
    rankings = (await sim_client.leaderboard_rankings(page=1, limit=10)).model_extra or {}
    assert rankings["rankings"][0]["userId"] == user_id
    assert ((await sim_client.leaderboard_user(user_id)).model_extra or {})["rank"] == 1
    assert (await sim_client.leaderboard_analytics()).model_extra is not None
    assert (await sim_client.leaderboard_health()).status == "ok"
    code = ((await sim_client.create_referral_code(user_id, "ALURA42")).model_extra or {})["code"]
    assert ((await sim_client.check_referral_code(code)).model_extra or {})["valid"] is True
    assert ((await sim_client.referral(user_id)).model_extra or {})["codes"] == ["ALURA42"]
    assert ((await sim_client.referral_stats(user_id)).model_extra or {})["referred"] == 0
    tx = "0x" + "ab" * 32
    deposit = (await sim_client.verify_usdc_deposit(tx)).model_extra or {}
    with pytest.raises(ValidationFailed, match="already verified"):
        await sim_client.verify_usdc_deposit(tx)
    total = (await sim_client.total_deposited()).model_extra or {}
    assert total["total"] == deposit["amount"]
    txs = (await sim_client.my_usdc_transactions()).model_extra or {}
    assert txs["transactions"][0]["txHash"] == tx
    assert (await sim_client.health()).status == "ok"
    assert (await sim_client.kafka_health()).status == "ok"


async def test_expired_tokens_are_refreshed_transparently(
    sim_client: AluraClient, sim_server: Any
) -> None:
    await sim_client.profile()
    sim_server.sim.accounts.expire_all_tokens()
    await sim_client.profile()
    assert sim_client.auth is not None and sim_client.auth.logins == 2


async def test_lost_response_on_create_is_outcome_unknown_and_session_exists(
    sim_client: AluraClient, sim_server: Any
) -> None:
    await sim_client.profile()
    sim_server.sim.faults = FaultProfile.from_mapping(
        {"rule": [{"kind": "lost_response", "match": "POST /trading-sessions"}]}
    )
    with pytest.raises(OutcomeUnknown):
        await sim_client.create_quick_session(QUICK)
    sim_server.sim.faults = FaultProfile()
    active = await sim_client.active_sessions()
    assert [s.asset_index for s in active.sessions] == [0]


async def test_builder_fee_fault_is_typed(sim_client: AluraClient, sim_server: Any) -> None:
    await sim_client.profile()
    sim_server.sim.faults = FaultProfile.from_mapping(
        {"rule": [{"kind": "builder_fee", "match": "POST /trading-sessions"}]}
    )
    with pytest.raises(BuilderFeeApprovalFailed):
        await sim_client.create_quick_session(QUICK)


async def test_rate_limited_read_is_retried_after_retry_after(
    sim_client: AluraClient, sim_server: Any
) -> None:
    sim_server.sim.faults = FaultProfile.from_mapping(
        {
            "rule": [
                {
                    "kind": "rate_limit",
                    "retry_after": "0",
                    "every": 2,
                    "match": "GET /api/indicators/health",
                }
            ]
        }
    )
    await sim_client.indicators_health()
    await sim_client.indicators_health()
    hits = [e for e in sim_server.sim.requests.entries if e["path"] == "/api/indicators/health"]
    assert [e["status"] for e in hits] == [200, 429, 200]
