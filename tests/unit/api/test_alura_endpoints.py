"""Every endpoint of the Alura API document: method, path, query, JSON body and auth header."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.api.alura import AluraClient
from bot.api.models import AdvancedSessionRequest, QuickSessionRequest
from bot.domain import ExecutionStrategy, StrategyDuration
from tests.conftest import SHARED

SHARED_API = SHARED / "api"

SESSION = {"id": "s-1", "assetIndex": 0, "status": "active", "budget": 100}


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[AluraClient], Awaitable[Any]]
    method: str
    path: str
    query: dict[str, str]
    body: Any
    auth: bool
    answer: Any


def quick() -> QuickSessionRequest:
    return QuickSessionRequest(
        budget=Decimal("100.5"),
        profit_target=Decimal("40"),
        loss_threshold=Decimal("5"),
        max_positions=3,
        asset_index=0,
    )


def advanced() -> AdvancedSessionRequest:
    return AdvancedSessionRequest(
        amount=Decimal("250"),
        execution_strategy=ExecutionStrategy.AGGRESSIVE,
        strategy_duration=StrategyDuration.D7,
        asset_index=2,
        max_wallet_budget=False,
    )


SIGNAL = {
    "symbol": "BTC",
    "interval": "1h",
    "signal": "BUY",
    "strength": 0.7,
    "indicators": {"rsi": 55.0},
    "candleTime": 1_700_000_000_000,
}
CANDLE = {
    "time": 1_700_000_000_000,
    "open": 1.0,
    "high": 2.0,
    "low": 0.5,
    "close": 1.5,
    "volume": 3.0,
}

CASES = [
    Case(
        "challenge",
        lambda c: c.challenge("0xabc"),
        "POST",
        "/auth/evm/challenge",
        {},
        {"address": "0xabc"},
        False,
        {"address": "0xabc", "nonce": "n", "message": "m"},
    ),
    Case(
        "verify",
        lambda c: c.verify("0xabc", "0xsig", "REF"),
        "POST",
        "/auth/evm/verify",
        {},
        {"address": "0xabc", "signature": "0xsig", "referralCode": "REF"},
        False,
        {"ok": True, "accessToken": "t", "tokenType": "Bearer", "expiresIn": 60},
    ),
    Case(
        "trading_key",
        lambda c: c.trading_key(),
        "GET",
        "/auth/evm/trading-key",
        {},
        None,
        True,
        {"address": "0xagent"},
    ),
    Case(
        "create_quick",
        lambda c: c.create_quick_session(quick()),
        "POST",
        "/trading-sessions",
        {},
        {
            "budget": 100.5,
            "profitTarget": 40,
            "lossThreshold": 5,
            "maxPositions": 3,
            "assetIndex": 0,
        },
        True,
        SESSION,
    ),
    Case(
        "create_advanced",
        lambda c: c.create_advanced_session(advanced()),
        "POST",
        "/trading-sessions/advance",
        {},
        {
            "amount": 250,
            "executionStrategy": "Aggressive",
            "strategyDuration": "7D",
            "assetIndex": 2,
            "maxWalletBudget": False,
        },
        True,
        SESSION,
    ),
    Case(
        "active",
        lambda c: c.active_sessions(),
        "GET",
        "/trading-sessions/active",
        {},
        None,
        True,
        [SESSION],
    ),
    Case(
        "current_trade",
        lambda c: c.current_trade(),
        "GET",
        "/trading-sessions/current-trade",
        {},
        None,
        True,
        {"trades": []},
    ),
    Case(
        "session_logs",
        lambda c: c.session_logs("s/1"),
        "GET",
        "/trading-sessions/s%2F1/logs",
        {},
        None,
        True,
        {"logs": [{"message": "opened"}]},
    ),
    Case(
        "trade_logs",
        lambda c: c.trade_logs("t-9", page=2, limit=20),
        "GET",
        "/trading-sessions/trades/t-9/logs",
        {"page": "2", "limit": "20"},
        None,
        True,
        {"logs": [], "page": 2, "limit": 20, "total": 0},
    ),
    Case(
        "close_position",
        lambda c: c.close_position("p-1"),
        "POST",
        "/trading-sessions/positions/p-1/close",
        {},
        None,
        True,
        {"ok": True},
    ),
    Case(
        "close_signature",
        lambda c: c.close_signature("p-1"),
        "POST",
        "/trading-sessions/positions/p-1/close-signature",
        {},
        None,
        True,
        {"signature": "x"},
    ),
    Case(
        "close_trade",
        lambda c: c.close_trade("t-1"),
        "POST",
        "/trading-sessions/trades/t-1/close",
        {},
        None,
        True,
        {"ok": True},
    ),
    Case(
        "trigger_cron",
        lambda c: c.trigger_cron(),
        "POST",
        "/trading-sessions/trigger-cron",
        {},
        None,
        True,
        {"ok": True},
    ),
    Case(
        "profile",
        lambda c: c.profile(),
        "GET",
        "/user/profile",
        {},
        None,
        True,
        {"address": "0xabc", "usdcBalance": 12.5},
    ),
    Case(
        "sync_fills",
        lambda c: c.sync_fills(),
        "POST",
        "/user/fills/sync",
        {},
        None,
        True,
        {"synced": 3},
    ),
    Case(
        "withdraw",
        lambda c: c.withdraw(Decimal("12.34"), "0xdest"),
        "POST",
        "/user/withdraw",
        {},
        {"amount": 12.34, "destination": "0xdest"},
        True,
        {"ok": True},
    ),
    Case(
        "close_position_by_asset",
        lambda c: c.close_position_by_asset(1),
        "POST",
        "/user/close-position",
        {},
        {"assetIndex": 1},
        True,
        {"ok": True},
    ),
    Case(
        "close_all_positions",
        lambda c: c.close_all_positions(),
        "POST",
        "/user/close-all-positions",
        {},
        None,
        True,
        {"ok": True},
    ),
    Case(
        "send_usdc",
        lambda c: c.send_usdc(Decimal("5"), "0xfriend"),
        "POST",
        "/user/send-usdc",
        {},
        {"amount": 5, "destination": "0xfriend"},
        True,
        {"ok": True},
    ),
    Case(
        "claim_reward",
        lambda c: c.claim_reward(),
        "POST",
        "/user/claim-reward",
        {},
        None,
        True,
        {"ok": True},
    ),
    Case(
        "indicators_health",
        lambda c: c.indicators_health(),
        "GET",
        "/api/indicators/health",
        {},
        None,
        False,
        {"status": "ok"},
    ),
    Case(
        "candles_latest",
        lambda c: c.candles_latest("ETH"),
        "GET",
        "/api/indicators/candles/latest",
        {"symbol": "ETH"},
        None,
        False,
        {"ETH": CANDLE},
    ),
    Case(
        "candles_history",
        lambda c: c.candles_history("BTC", interval="1h", start_ms=1, end_ms=2, limit=10),
        "GET",
        "/api/indicators/candles/history/BTC",
        {"interval": "1h", "start": "1", "end": "2", "limit": "10"},
        None,
        False,
        [CANDLE],
    ),
    Case(
        "candles",
        lambda c: c.candles("SOL", "5m", limit=3),
        "GET",
        "/api/indicators/candles/SOL/5m",
        {"limit": "3"},
        None,
        False,
        {"symbol": "SOL", "interval": "5m", "candles": [CANDLE]},
    ),
    Case(
        "aggregated_symbols",
        lambda c: c.aggregated_symbols(),
        "GET",
        "/api/indicators/candles/aggregated/symbols",
        {},
        None,
        False,
        {"symbols": [{"symbol": "BTC", "assetIndex": 0}]},
    ),
    Case(
        "signal",
        lambda c: c.signal("BTC", "1h"),
        "GET",
        "/api/indicators/signals/BTC/1h",
        {},
        None,
        False,
        SIGNAL,
    ),
    Case(
        "signals_all",
        lambda c: c.signals_all("1h"),
        "GET",
        "/api/indicators/signals/all/1h",
        {},
        None,
        False,
        {"interval": "1h", "signals": [SIGNAL]},
    ),
    Case(
        "leaderboard_stats",
        lambda c: c.leaderboard_stats(),
        "GET",
        "/api/leaderboard/stats",
        {},
        None,
        False,
        {"users": 3},
    ),
    Case(
        "leaderboard_rankings",
        lambda c: c.leaderboard_rankings(page=2, limit=5),
        "GET",
        "/api/leaderboard/rankings",
        {"page": "2", "limit": "5"},
        None,
        False,
        {"rankings": []},
    ),
    Case(
        "leaderboard_user",
        lambda c: c.leaderboard_user("u1"),
        "GET",
        "/api/leaderboard/user/u1",
        {},
        None,
        False,
        {"rank": 1},
    ),
    Case(
        "leaderboard_analytics",
        lambda c: c.leaderboard_analytics(),
        "GET",
        "/api/leaderboard/analytics",
        {},
        None,
        False,
        {"volume": 1},
    ),
    Case(
        "leaderboard_health",
        lambda c: c.leaderboard_health(),
        "GET",
        "/api/leaderboard/health",
        {},
        None,
        False,
        {"status": "ok"},
    ),
    Case(
        "referral",
        lambda c: c.referral("u1"),
        "GET",
        "/referrals/u1",
        {},
        None,
        True,
        {"codes": []},
    ),
    Case(
        "referral_stats",
        lambda c: c.referral_stats("u1"),
        "GET",
        "/referrals/u1/stats",
        {},
        None,
        True,
        {"referred": 0},
    ),
    Case(
        "create_referral_code",
        lambda c: c.create_referral_code("u1", "ABC"),
        "POST",
        "/referrals/u1/code",
        {},
        {"code": "ABC"},
        True,
        {"code": "ABC"},
    ),
    Case(
        "check_referral_code",
        lambda c: c.check_referral_code("ABC"),
        "POST",
        "/referrals/check",
        {},
        {"code": "ABC"},
        True,
        {"valid": True},
    ),
    Case(
        "verify_usdc",
        lambda c: c.verify_usdc_deposit("0xtx"),
        "POST",
        "/usdc-verification/verify",
        {},
        {"txHash": "0xtx"},
        True,
        {"ok": True},
    ),
    Case(
        "my_usdc_transactions",
        lambda c: c.my_usdc_transactions(),
        "GET",
        "/usdc-verification/my-transactions",
        {},
        None,
        True,
        {"transactions": []},
    ),
    Case(
        "total_deposited",
        lambda c: c.total_deposited(),
        "GET",
        "/usdc-verification/total-deposited",
        {},
        None,
        True,
        {"total": 0},
    ),
    Case("health", lambda c: c.health(), "GET", "/health", {}, None, False, {"status": "ok"}),
    Case(
        "kafka_health",
        lambda c: c.kafka_health(),
        "GET",
        "/health/kafka",
        {},
        None,
        False,
        {"status": "ok"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_endpoint_sends_documented_request(case: Case, venue: Any, client_for: Any) -> None:
    venue.on(case.method, httpx.URL("http://x" + case.path).path, case.answer)
    async with client_for() as client:
        result = await case.call(client)
    sent = venue.last(case.method, httpx.URL("http://x" + case.path).path)
    assert sent.url.raw_path.split(b"?")[0].decode() == case.path
    assert dict(sent.url.params) == case.query
    assert (json.loads(sent.content) if sent.content else None) == case.body
    assert venue.authed(sent) is case.auth
    assert sent.headers["user-agent"].startswith("alura-bot/")
    assert result is not None


def documented_endpoints() -> list[tuple[str, str]]:
    doc = SHARED_API / "alura-backend-api.md"
    if not doc.is_file():
        pytest.skip(f"{doc} not present (shared/ is not beside this clone)")
    text = doc.read_text(encoding="utf-8")
    table = re.findall(r"^\|\s*(GET|POST)\s*\|\s*(/\S+)\s*\|", text, flags=re.M)
    blocks = re.findall(r"^(GET|POST) (/\S+)$", text, flags=re.M)
    return sorted(set(table) | set(blocks))


def test_every_documented_endpoint_has_a_case() -> None:
    endpoints = documented_endpoints()
    assert len(endpoints) > 30, "the API document should list all endpoints"
    missing = []
    for method, path in endpoints:
        pattern = re.sub(r":[A-Za-z]+", "[^/]+", path)
        if not any(c.method == method and re.fullmatch(pattern, c.path) for c in CASES):
            missing.append(f"{method} {path}")
    assert missing == []
