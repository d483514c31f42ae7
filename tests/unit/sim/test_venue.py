"""The simulated trading venue: validation messages, duplicates, balance, fills, conservation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sim.accounts import Accounts, Wallet
from bot.sim.venue import TradingVenue, VenueError

MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MIN
ADDR = "0x" + "ab" * 20


class ScriptedMarket:
    """1m bars from a list of (o, h, l, c); direction fixed or per bar."""

    base_interval_ms = MIN

    def __init__(self, bars: list[tuple[float, float, float, float]], direction: int = 1) -> None:
        self.rows = [(T0 + i * MIN, *b) for i, b in enumerate(bars)]
        self.dir = direction

    def bars(self, symbol: str, after_ms: int, upto_ms: int) -> list[Any]:
        return [r for r in self.rows if r[0] >= after_ms and r[0] + MIN <= upto_ms]

    def price(self, symbol: str, now_ms: int) -> float:
        closed = [r for r in self.rows if r[0] + MIN <= now_ms]
        return closed[-1][4] if closed else self.rows[0][1]

    def direction(self, symbol: str, ts_ms: int) -> int:
        return self.dir


def venue_with(
    bars: list[tuple[float, float, float, float]], balance: str = "1000", direction: int = 1
) -> tuple[TradingVenue, Wallet]:
    accounts = Accounts(initial_balance=Decimal(balance))
    wallet = accounts.wallet(ADDR)
    return TradingVenue(ScriptedMarket(bars, direction), accounts), wallet


QUICK = {"budget": 100, "profitTarget": 2, "lossThreshold": 1, "maxPositions": 1, "assetIndex": 0}
FLAT = [(100.0, 100.2, 99.9, 100.1)] * 50


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": 9}, "budget must not be less than 10"),
        ({"profitTarget": 501}, "profitTarget must not be greater than 500"),
        ({"assetIndex": 42}, "assetIndex must be a supported asset index"),
        ({"assetIndex": "BTC"}, "assetIndex must be an integer number"),
        ({"maxPositions": 0}, "maxPositions must be an integer between 1 and 50"),
    ],
)
def test_quick_validation_messages(change: dict[str, Any], message: str) -> None:
    venue, wallet = venue_with(FLAT)
    with pytest.raises(VenueError) as info:
        venue.create_quick(wallet, QUICK | change, T0)
    assert info.value.status == 400 and message in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("executionStrategy", "Reckless", "executionStrategy must be one of"),
        ("strategyDuration", "2D", "strategyDuration must be one of"),
    ],
)
def test_advanced_enum_messages(field: str, value: str, message: str) -> None:
    venue, wallet = venue_with(FLAT)
    body = {
        "amount": 50,
        "executionStrategy": "Conservative",
        "strategyDuration": "1D",
        "assetIndex": 1,
        field: value,
    }
    with pytest.raises(VenueError, match=message):
        venue.create_advanced(wallet, body, T0)


def test_second_session_on_asset_is_duplicate() -> None:
    venue, wallet = venue_with(FLAT)
    venue.create_quick(wallet, QUICK, T0)
    with pytest.raises(VenueError, match="Duplicate asset index"):
        venue.create_quick(wallet, QUICK, T0 + 1)


def test_insufficient_balance_is_an_error_not_a_negative_balance() -> None:
    venue, wallet = venue_with(FLAT, balance="50")
    with pytest.raises(VenueError, match="Insufficient balance"):
        venue.create_quick(wallet, QUICK, T0)
    assert wallet.balance == Decimal(50)


def test_take_profit_fills_and_pnl_reaches_the_wallet_after_close() -> None:
    bars = [(100.0, 100.5, 99.8, 100.2), (100.2, 102.5, 100.1, 102.0), *FLAT]
    venue, wallet = venue_with(bars)
    session = venue.create_quick(wallet, QUICK, T0 - 1)
    assert wallet.balance == Decimal(900)
    trades = venue.current_trade(wallet, T0 + 10 * MIN)
    logs = venue.session_logs(wallet, session["id"], T0 + 10 * MIN)["logs"]
    assert any(e.get("reason") == "take_profit" for e in logs)
    assert trades["trades"][0]["sessionId"] == session["id"]
    venue.close_trade(wallet, session["tradeId"], T0 + 10 * MIN)
    s = venue.sessions[session["id"]].state
    assert wallet.balance == Decimal(900) + Decimal(str(round(s.cash, 6)))
    assert wallet.balance > Decimal(1000)


def test_close_position_realises_at_current_price() -> None:
    venue, wallet = venue_with(FLAT)
    session = venue.create_quick(wallet, QUICK, T0 - 1)
    trade = venue.current_trade(wallet, T0 + 3 * MIN)["trades"][0]
    pid = trade["positions"][0]["id"]
    result = venue.close_position(wallet, pid, T0 + 3 * MIN)
    assert result["closePrice"] == 100.1 and result["fees"] > 0
    with pytest.raises(VenueError, match="not found"):
        venue.close_position(wallet, pid, T0 + 3 * MIN)
    assert session["id"] in venue.sessions


def test_other_wallet_cannot_see_or_close_a_session() -> None:
    venue, wallet = venue_with(FLAT)
    session = venue.create_quick(wallet, QUICK, T0)
    other = venue.accounts.wallet("0x" + "cd" * 20)
    assert venue.active(other, T0 + MIN) == []
    with pytest.raises(VenueError) as info:
        venue.close_trade(other, session["tradeId"], T0 + MIN)
    assert info.value.status == 404


def test_state_round_trip_preserves_sessions() -> None:
    venue, wallet = venue_with(FLAT)
    venue.create_quick(wallet, QUICK, T0 - 1)
    venue.process(T0 + 5 * MIN)
    copy = TradingVenue(venue.market, venue.accounts)
    copy.load_json(venue.to_json())
    assert copy.to_json() == venue.to_json()
    assert copy.active(wallet, T0 + 5 * MIN) == venue.active(wallet, T0 + 5 * MIN)


bar = st.tuples(st.floats(90, 110), st.floats(0, 3), st.floats(0, 3), st.floats(-2, 2)).map(
    lambda t: (t[0], t[0] + t[1] + max(0, t[3]), t[0] - t[2] + min(0, t[3]), t[0] + t[3])
)


@settings(max_examples=60, deadline=None)
@given(
    bars=st.lists(bar, min_size=5, max_size=60),
    direction=st.sampled_from([1, -1]),
    close_at=st.integers(0, 70),
    max_positions=st.integers(1, 3),
)
def test_wallet_money_is_conserved(
    bars: list[Any], direction: int, close_at: int, max_positions: int
) -> None:
    """balance + budgets still locked == start + realised net PnL of settled sessions."""
    venue, wallet = venue_with(bars, balance="1000", direction=direction)
    body = QUICK | {"maxPositions": max_positions}
    session = venue.create_quick(wallet, body, T0 - 1)
    if close_at < len(bars):
        venue.close_trade(wallet, session["tradeId"], T0 + close_at * MIN)
    venue.process(T0 + 80 * MIN)
    s = venue.sessions[session["id"]]
    realised = Decimal(str(round(s.state.net_realised, 6))) if s.settled else Decimal(0)
    total = wallet.balance + venue.locked(wallet)
    assert abs(total - (Decimal(1000) + realised)) <= Decimal("0.000002")
    assert wallet.balance >= 0


@settings(max_examples=80, deadline=None)
@given(
    budget=st.decimals(min_value=0, max_value=2000, places=2),
    target=st.decimals(min_value=-10, max_value=700, places=2),
)
def test_quick_validation_accepts_exactly_the_documented_range(
    budget: Decimal, target: Decimal
) -> None:
    venue, wallet = venue_with(FLAT, balance="1000")
    body = QUICK | {"budget": str(budget), "profitTarget": str(target)}
    ok = budget >= 10 and 0 < target <= 500 and budget <= 1000
    try:
        venue.create_quick(wallet, body, T0)
    except VenueError as exc:
        assert not ok, str(exc)
        assert wallet.balance == Decimal(1000)
    else:
        assert ok
        assert wallet.balance == Decimal(1000) - budget


def _sign(payload: dict[str, Any]) -> dict[str, Any]:
    return {"signature": "0xsigned", "signer": "0xagent"}


def test_close_signature_refuses_a_position_take_profit_already_closed() -> None:
    """The session is processed before signing: a close for a position the market has already
    closed (TP in the second bar) is 404, not a signed reduce-only order for nothing."""
    bars = [(100.0, 100.5, 99.8, 100.2), (100.2, 102.5, 100.1, 102.0), *FLAT]
    venue, wallet = venue_with(bars)
    venue.create_quick(wallet, QUICK, T0 - 1)
    pid = venue.current_trade(wallet, T0 + MIN)["trades"][0]["positions"][0]["id"]
    assert venue.close_signature(wallet, pid, T0 + MIN, _sign)["payload"]["positionId"] == pid
    with pytest.raises(VenueError) as info:
        venue.close_signature(wallet, pid, T0 + 3 * MIN, _sign)
    assert info.value.status == 404
    logs = venue.sessions[pid.rpartition("-p")[0]].logs
    assert any(e.get("reason") == "take_profit" and e.get("positionId") == pid for e in logs)
