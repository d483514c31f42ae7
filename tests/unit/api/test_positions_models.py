"""Positions models against generated payloads: optionals, extra fields, huge integers, units."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.api.positions import Position, PositionStatus, Units, expected_payout

BASE: dict[str, Any] = {
    "id": 1001,
    "wallet_address": "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa",
    "market_address": "MarketXYZ123",
    "position_type": "OPEN",
    "selected_team": 1,
    "amount": 500000000,
    "multiplier_bps": 12000,
    "payout_expected": 680000000,
    "status": 1,
    "is_claimed": False,
    "pnl": 0,
    "fee_paid": 2000000,
    "timestamp": "2024-10-10T12:00:00Z",
    "created_at": "2024-10-10T10:00:00Z",
    "updated_at": "2024-10-10T11:00:00Z",
    "confirmation_status": "confirmed",
}
OPTIONAL = [
    "bet_address",
    "odds_home_bps",
    "odds_away_bps",
    "close_price",
    "close_pnl",
    "closed_at",
    "transaction_signature",
    "market",
]
big = st.integers(min_value=0, max_value=2**200)


@given(
    amount=big,
    pnl=st.integers(-(2**100), 2**100),
    present=st.lists(st.sampled_from(OPTIONAL), unique=True),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in BASE),
        st.integers() | st.text(max_size=5),
        max_size=3,
    ),
)
def test_payloads_parse_exactly(
    amount: int, pnl: int, present: list[str], extra: dict[str, Any]
) -> None:
    values: dict[str, Any] = {
        "bet_address": "Bet1",
        "odds_home_bps": 10500,
        "odds_away_bps": 9500,
        "close_price": amount,
        "close_pnl": pnl,
        "closed_at": "2024-10-10T11:30:00+00:00",
        "transaction_signature": "5yZabc",
        "market": {"fixture_id": 123, "home_team": "A", "away_team": "B", "status": 1},
    }
    extra = {k: v for k, v in extra.items() if k not in values}
    payload = {**BASE, "amount": amount, "pnl": pnl, **{k: values[k] for k in present}, **extra}
    p = Position.model_validate(payload)
    assert p.amount == amount and p.pnl == pnl
    assert p.model_extra == extra
    assert p.created_at.tzinfo is not None
    for name in OPTIONAL:
        assert (getattr(p, name) is not None) == (name in present)


@given(raw=big, decimals=st.integers(0, 18))
def test_units_round_trip_exactly(raw: int, decimals: int) -> None:
    units = Units(decimals)
    shown = units.display(raw)
    _sign, digits, exponent = shown.as_tuple()
    assert int("".join(map(str, digits))) == raw and exponent == -decimals
    assert units.raw(shown) == raw


def test_unknown_status_is_kept_not_rejected() -> None:
    p = Position.model_validate({**BASE, "status": 9})
    assert p.status == 9 and p.status_name == "unknown(9)"
    assert Position.model_validate(BASE).status is PositionStatus.PLACED


def test_naive_timestamp_is_taken_as_utc() -> None:
    p = Position.model_validate({**BASE, "timestamp": "2024-10-10T12:00:00"})
    assert p.timestamp.tzinfo == UTC


def test_expected_payout_ignores_payout_expected() -> None:
    p = Position.model_validate({**BASE, "odds_home_bps": 10500, "payout_expected": 1})
    assert expected_payout(p) == 525000000
    away = Position.model_validate({**BASE, "selected_team": 2})
    assert expected_payout(away) == 600000000


def test_float_amount_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Position.model_validate({**BASE, "amount": 5e8})
