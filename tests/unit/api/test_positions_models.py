"""Positions models against generated payloads: optionals, extra fields, huge integers, units."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.api.positions import (
    Pagination,
    Position,
    PositionPage,
    PositionStatus,
    Stats,
    Units,
    effective_odds_bps,
    expected_payout,
)
from bot.sim.positions_venue import proxy_payout

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
OPTIONAL = (
    "bet_address",
    "odds_home_bps",
    "odds_away_bps",
    "close_price",
    "close_pnl",
    "closed_at",
    "transaction_signature",
    "market",
)
DOCUMENTED = set(BASE) | set(OPTIONAL)
RAW_FIELDS = ("id", "amount", "multiplier_bps", "payout_expected", "pnl", "fee_paid")

huge = st.integers(min_value=-(2**200), max_value=2**200)
positive_huge = st.integers(min_value=1, max_value=2**200)
beyond_float = st.integers(min_value=2**53, max_value=2**128)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)


@st.composite
def iso_text(draw: st.DrawFn) -> tuple[str, datetime]:
    """An ISO timestamp as some server may write it, with the instant it means."""
    moment = draw(moments)
    style = draw(st.sampled_from(["offset", "z", "nanos", "naive", "space"]))
    if style == "offset":
        return moment.isoformat(), moment
    utc = moment.astimezone(UTC)
    if style == "z":
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), utc
    if style == "nanos":  # chrono writes nanoseconds; microseconds are kept, the rest dropped
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z", utc
    naive = utc.replace(tzinfo=None)
    if style == "space":
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f"), utc
    return naive.isoformat(), utc  # no offset: read as UTC


optional_values: dict[str, st.SearchStrategy[Any]] = {
    "bet_address": st.text(min_size=1, max_size=44),
    "odds_home_bps": st.integers(1, 2**70),
    "odds_away_bps": st.integers(1, 2**70),
    "close_price": huge,
    "close_pnl": huge,
    "closed_at": iso_text(),
    "transaction_signature": st.text(min_size=1, max_size=88),
    "market": st.fixed_dictionaries(
        {
            "fixture_id": st.integers(1, 10**6) | st.text(min_size=1, max_size=8),
            "home_team": st.text(max_size=12),
            "away_team": st.text(max_size=12),
            "status": st.integers(1, 4),
        }
    ),
}
json_values = st.recursive(
    st.none() | st.booleans() | huge | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@st.composite
def position_payloads(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload, expectations): random big numbers, a random subset of optionals (absent or
    null), undocumented extra fields, any timestamp style and any status integer."""
    payload = dict(BASE)
    for name in RAW_FIELDS:
        payload[name] = draw(positive_huge if name in ("id", "amount") else huge)
    payload["status"] = draw(st.integers(1, 6) | st.integers(-3, 10**6))
    payload["selected_team"] = draw(st.sampled_from([1, 2]))
    payload["position_type"] = draw(st.sampled_from(["OPEN", "CLOSE", "open", "close"]))
    payload["is_claimed"] = draw(st.booleans())
    expected: dict[str, Any] = {}
    for name in ("timestamp", "created_at", "updated_at"):
        payload[name], expected[name] = draw(iso_text())
    for name in OPTIONAL:
        choice = draw(st.sampled_from(["absent", "null", "present"]))
        if choice == "null":
            payload[name] = None
        elif choice == "present":
            value = draw(optional_values[name])
            if name == "closed_at":
                payload[name], expected[name] = value
            else:
                payload[name] = value
    extra = draw(
        st.dictionaries(
            st.text(min_size=1, max_size=10).filter(lambda k: k not in DOCUMENTED),
            json_values,
            max_size=4,
        )
    )
    payload.update(extra)
    expected["extra"] = extra
    return payload, expected


@given(position_payloads())
def test_generated_positions_parse_exactly(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    payload, expected = case
    # through JSON text, as httpx's `.json()` (Python's json: exact integers) would give it
    p = Position.model_validate(json.loads(json.dumps(payload)))
    for name in RAW_FIELDS:
        assert getattr(p, name) == payload[name]
        assert type(getattr(p, name)) is int
    assert int(p.status) == payload["status"]
    assert p.status.is_known == (1 <= payload["status"] <= 6)
    assert p.position_type == payload["position_type"].upper()
    for name in ("timestamp", "created_at", "updated_at"):
        value = getattr(p, name)
        assert value.tzinfo is not None and value == expected[name]
    for name in OPTIONAL:
        if payload.get(name) is None:
            assert getattr(p, name) is None
        elif name == "closed_at":
            assert p.closed_at == expected["closed_at"]
        elif name == "market":
            assert p.market is not None
            assert p.market.fixture_id == str(payload["market"]["fixture_id"])
            assert p.market.status == payload["market"]["status"]
        else:
            assert getattr(p, name) == payload[name]
    assert p.model_extra == expected["extra"]
    # what the journal stores (model_dump in JSON mode) reads back to the same position
    again = Position.model_validate(json.loads(json.dumps(p.model_dump(mode="json"))))
    assert again == p


@given(
    raw=st.dictionaries(
        st.sampled_from(
            [
                "total_positions",
                "open_positions",
                "closed_positions",
                "won_positions",
                "lost_positions",
                "total_volume",
                "total_pnl",
                "total_fees_paid",
            ]
        ),
        huge,
        min_size=8,
    ),
    win_rate=st.floats(0, 1),
    extra=st.dictionaries(st.sampled_from(["currency", "as_of", "x"]), json_values, max_size=2),
)
def test_stats_keep_big_totals_exact(
    raw: dict[str, int], win_rate: float, extra: dict[str, Any]
) -> None:
    stats = Stats.model_validate(json.loads(json.dumps({**raw, "win_rate": win_rate, **extra})))
    for name, value in raw.items():
        assert getattr(stats, name) == value
    assert stats.win_rate == win_rate
    assert stats.model_extra == extra


@given(total=st.integers(0, 2**70), limit=st.integers(1, 100), page=st.integers(1, 10**6))
def test_pagination_derives_total_pages_when_missing(total: int, limit: int, page: int) -> None:
    given_pages = Pagination.model_validate(
        {"page": page, "limit": limit, "total": total, "total_pages": 7}
    )
    assert given_pages.total_pages == 7  # the server's value wins when it gave one
    derived = Pagination.model_validate({"page": page, "limit": limit, "total": total})
    assert derived.total_pages == -(-total // limit)


def test_page_envelope_keeps_ok_and_unknown_keys() -> None:
    page = PositionPage.model_validate(
        {
            "ok": True,
            "positions": [BASE],
            "pagination": {"page": 1, "limit": 50, "total": 1, "total_pages": 1},
            "cursor": None,
        }
    )
    assert page.positions[0].id == 1001
    assert page.model_extra == {"ok": True, "cursor": None}


# --------------------------------------------------------------------------- units


@given(raw=huge, decimals=st.integers(0, 18))
def test_units_round_trip_exactly(raw: int, decimals: int) -> None:
    units = Units(decimals)
    shown = units.display(raw)
    sign, digits, exponent = shown.as_tuple()
    assert exponent == -decimals  # the unit's full precision, never rounded
    assert int("".join(map(str, digits))) == abs(raw) and sign == (raw < 0)
    assert shown.scaleb(decimals, context=_wide(raw)) == raw
    assert units.raw(shown) == raw
    assert units.raw(units.format(raw)) == raw
    assert units.raw(str(shown.normalize(_wide(raw)))) == raw


@given(raw=huge, decimals=st.integers(0, 18), digit=st.integers(1, 9))
def test_units_refuse_precision_below_one_raw_unit(raw: int, decimals: int, digit: int) -> None:
    text = Units(decimals).format(raw)
    finer = f"{text}{digit}" if "." in text else f"{text}.{digit}"
    with pytest.raises(ValueError, match="decimal places"):
        Units(decimals).raw(finer)


@given(whole=st.integers(0, 2**80), frac=st.integers(0, 10**9 - 1))
def test_units_parse_display_text_like_a_person_writes_it(whole: int, frac: int) -> None:
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    assert Units(9).raw(text) == whole * 10**9 + frac
    assert Units(9).raw(Decimal(text)) == whole * 10**9 + frac


def test_units_refuse_floats_and_non_numbers() -> None:
    units = Units(9)
    with pytest.raises(TypeError):
        units.raw(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        units.display(1.0)  # type: ignore[arg-type]
    for bad in ("abc", "NaN", "Infinity", ""):
        with pytest.raises(ValueError):
            units.raw(bad)
    with pytest.raises(ValueError):
        Units(19)
    assert units.raw("1e3") == 1000 * 10**9
    assert units.format(250_000_000) == "0.250000000"
    assert units.format(-5) == "-0.000000005"


def _wide(raw: int) -> Any:
    from decimal import Context

    return Context(prec=len(str(abs(raw))) + 40)


# --------------------------------------------------------------------------- odds and payout


@given(
    amount=positive_huge,
    multiplier=st.integers(1, 10**6),
    home=st.none() | st.integers(1, 10**6),
    away=st.none() | st.integers(1, 10**6),
    team=st.sampled_from([1, 2]),
    shown=huge,
)
def test_expected_payout_is_amount_times_chosen_odds(
    amount: int, multiplier: int, home: int | None, away: int | None, team: int, shown: int
) -> None:
    p = Position.model_validate(
        {
            **BASE,
            "amount": amount,
            "multiplier_bps": multiplier,
            "odds_home_bps": home,
            "odds_away_bps": away,
            "selected_team": team,
            "payout_expected": shown,  # whatever the layer says, it is not used
        }
    )
    chosen = home if team == 1 else away
    odds = chosen if chosen is not None else multiplier
    assert effective_odds_bps(p) == p.odds_bps == odds
    assert expected_payout(p) == amount * odds // 10_000
    assert expected_payout(p) == proxy_payout(amount, odds)  # what settlement pays


def test_documented_example_payout() -> None:
    p = Position.model_validate({**BASE, "odds_home_bps": 10500, "odds_away_bps": 9500})
    assert expected_payout(p) == 525_000_000  # 0.5 x 1.05, not the shown 680000000
    away = Position.model_validate({**BASE, "selected_team": 2})
    assert expected_payout(away) == 600_000_000  # no away odds: the 1.2x multiplier


# --------------------------------------------------------------------------- tolerance limits


def test_unknown_status_is_kept_not_rejected() -> None:
    p = Position.model_validate({**BASE, "status": 9})
    assert p.status == 9 and isinstance(p.status, PositionStatus)
    assert not p.status.is_known and p.status_name == "unknown(9)" and not p.is_open
    assert p.model_dump(mode="json")["status"] == 9
    placed = Position.model_validate(BASE)
    assert placed.status is PositionStatus.PLACED and placed.is_open
    assert [s.label for s in PositionStatus] == [
        "placed",
        "won",
        "lost",
        "cancelled",
        "refunded",
        "early-closed",
    ]
    assert Position.model_validate({**BASE, "status": "6"}).status is PositionStatus.EARLY_CLOSED


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("500000000", 500_000_000),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        (5e8, 500_000_000),
        (float(2**53 - 1), 2**53 - 1),
    ],
)
def test_raw_integers_accept_exact_spellings(value: Any, parsed: int) -> None:
    assert Position.model_validate({**BASE, "amount": value}).amount == parsed


@given(value=beyond_float)
def test_raw_integers_refuse_floats_that_may_have_lost_units(value: int) -> None:
    with pytest.raises(ValidationError, match="amount"):
        Position.model_validate({**BASE, "amount": float(value)})


@pytest.mark.parametrize("value", [1.5, True, "1.5", "lots", None, [1]])
def test_raw_integers_refuse_non_integers(value: Any) -> None:
    with pytest.raises(ValidationError, match="amount"):
        Position.model_validate({**BASE, "amount": value})


@pytest.mark.parametrize("name", sorted(BASE))
def test_documented_required_fields_are_required(name: str) -> None:
    payload = {k: v for k, v in BASE.items() if k != name}
    with pytest.raises(ValidationError, match=name):
        Position.model_validate(payload)


def test_timestamps_are_timezone_aware() -> None:
    p = Position.model_validate(
        {
            **BASE,
            "timestamp": "2024-10-10T12:00:00",
            "created_at": "2024-10-10T12:00:00.123456789Z",
            "updated_at": "2024-10-10T14:00:00+02:00",
        }
    )
    assert p.timestamp == datetime(2024, 10, 10, 12, tzinfo=UTC)
    assert p.created_at == datetime(2024, 10, 10, 12, 0, 0, 123456, tzinfo=UTC)
    assert p.updated_at == p.timestamp
    with pytest.raises(ValidationError, match="created_at"):
        Position.model_validate({**BASE, "created_at": "yesterday"})


def test_unknown_position_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="position_type"):
        Position.model_validate({**BASE, "position_type": "PENDING"})
