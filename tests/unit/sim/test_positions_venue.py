"""Unit tests for the simulator's clock and the positions venue (rules only, no HTTP)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sim.clock import SimClock, ms_to_iso
from bot.sim.positions_venue import (
    DEFAULT_FEE_BPS,
    I64_MAX,
    Conflict,
    InvalidArgs,
    Market,
    MarketNotOpen,
    MarketStatus,
    NotFound,
    NotOwner,
    Position,
    PositionStatus,
    PositionsVenue,
    b58decode,
    b58encode,
    backend_payout,
    clamp_paging,
    effective_odds_bps,
    is_solana_address,
    proxy_payout,
    require_int,
)

START_MS = 1_728_554_400_000  # 2024-10-10T10:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
OTHER = b58encode(hashlib.sha256(b"other wallet").digest())


def make_venue(seed: int = 42, **kwargs: object) -> tuple[SimClock, PositionsVenue]:
    clock = SimClock.stepped(START_MS)
    return clock, PositionsVenue(clock, seed, **kwargs)  # type: ignore[arg-type]


def open_market(venue: PositionsVenue) -> int:
    """The id of the first market still taking bets."""
    return next(m.id for m in venue.markets() if m.status == MarketStatus.OPEN)


# --------------------------------------------------------------------------- clock


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_stepped_clock_moves_only_when_told() -> None:
    clock = SimClock.stepped(START_MS)
    assert clock.is_stepped and clock.speed is None
    assert clock.now_ms() == START_MS == clock.now_ms()
    assert clock.advance(1_500) == START_MS + 1_500
    clock.set(START_MS - 10)  # explicit jumps may go backwards
    assert clock.now_ms() == START_MS - 10
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_accelerated_clock_scales_monotonic_time() -> None:
    mono = FakeMonotonic()
    clock = SimClock.accelerated(START_MS, 60.0, monotonic=mono)
    assert clock.speed == 60.0 and not clock.is_stepped
    assert clock.now_ms() == START_MS
    mono.t += 1.5
    assert clock.now_ms() == START_MS + 90_000
    clock.advance(10_000)  # re-based: keeps running from the new time
    assert clock.now_ms() == START_MS + 100_000
    mono.t += 1.0
    assert clock.now_ms() == START_MS + 160_000
    clock.set(START_MS)
    assert clock.now_ms() == START_MS
    with pytest.raises(ValueError):
        SimClock.accelerated(START_MS, 0)


def test_clock_is_safe_to_share_between_threads() -> None:
    clock = SimClock.stepped(0)

    def bump() -> None:
        for _ in range(1000):
            clock.advance(1)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now_ms() == 4000


def test_ms_to_iso_is_exact() -> None:
    assert ms_to_iso(START_MS) == "2024-10-10T10:00:00.000Z"
    assert ms_to_iso(START_MS + 1) == "2024-10-10T10:00:00.001Z"
    assert ms_to_iso(0) == "1970-01-01T00:00:00.000Z"
    assert SimClock.stepped(START_MS + 999).now_iso() == "2024-10-10T10:00:00.999Z"


# --------------------------------------------------------------------------- helpers


@given(st.binary(max_size=64))
def test_base58_round_trips(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


def test_solana_address_check() -> None:
    assert is_solana_address(WALLET)
    assert is_solana_address(OTHER)
    assert not is_solana_address("0" * 40)  # '0' is not base58
    assert not is_solana_address("abc")
    assert not is_solana_address("1" * 45)


def test_require_int_mirrors_serde_integers() -> None:
    assert require_int(5, "x") == 5
    for bad in (True, "5", 5.0, None, I64_MAX + 1):
        with pytest.raises(InvalidArgs):
            require_int(bad, "x")
    with pytest.raises(InvalidArgs):
        require_int(0, "x", minimum=1)


@pytest.mark.parametrize(
    ("page", "limit", "expected"),
    [
        (None, None, (1, 50)),
        (0, 0, (1, 1)),
        (-3, -5, (1, 1)),
        (2, 1000, (2, 100)),
        (7, 100, (7, 100)),
        (1, 1, (1, 1)),
    ],
)
def test_clamp_paging(page: int | None, limit: int | None, expected: tuple[int, int]) -> None:
    assert clamp_paging(page, limit) == expected


def test_payout_formulas_disagree_by_the_multiplier() -> None:
    odds = effective_odds_bps(1, 12_000, None, None)
    assert odds == 12_000
    assert effective_odds_bps(1, 12_000, 10_500, 9_500) == 10_500
    assert effective_odds_bps(2, 12_000, 10_500, 9_500) == 9_500
    assert effective_odds_bps(2, 12_000, 10_500, None) == 12_000
    assert proxy_payout(500_000_000, odds) == 600_000_000
    assert backend_payout(500_000_000, 12_000, odds) == 720_000_000


# --------------------------------------------------------------------------- markets


def test_markets_are_deterministic_per_seed() -> None:
    _, a = make_venue(seed=1)
    _, b = make_venue(seed=1)
    _, c = make_venue(seed=2)
    assert a.markets() == b.markets()
    assert a.markets() != c.markets()


def test_markets_spread_around_the_clock_start() -> None:
    _, venue = make_venue(n_markets=12, n_past_markets=6)
    markets = venue.markets()
    assert [m.id for m in markets] == list(range(1, 19))
    past = [m for m in markets if m.settles_at_ms <= START_MS]
    upcoming = [m for m in markets if m.starts_at_ms > START_MS]
    assert len(past) == 6 and len(upcoming) == 12
    assert all(m.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED) for m in past)
    assert all(m.status == MarketStatus.OPEN and m.winner is None for m in upcoming)
    assert all(START_MS < m.starts_at_ms <= START_MS + 3 * DAY for m in upcoming)
    for m in markets:
        assert m.fixture_id == str(m.id)
        assert is_solana_address(m.address)
        assert m.home_team != m.away_team
        assert m.settles_at_ms > m.starts_at_ms
        assert m.odds_home_bps > 10_000 and m.odds_away_bps > 10_000
    assert venue.market(str(markets[3].id)) == markets[3]
    assert venue.market(markets[3].address) == markets[3]


# --------------------------------------------------------------------------- open


def test_open_position_fills_every_field() -> None:
    clock, venue = make_venue()
    market = venue.market(open_market(venue))
    p = venue.open_position(WALLET, market.address, 1, 500_000_000, 12_000, 10_500, 9_500)
    assert p.id == 1001
    assert p.wallet_address == WALLET
    assert p.market_address == market.address
    assert p.bet_address is not None and is_solana_address(p.bet_address)
    assert p.position_type == "OPEN"
    assert (p.selected_team, p.amount, p.multiplier_bps) == (1, 500_000_000, 12_000)
    assert (p.odds_home_bps, p.odds_away_bps) == (10_500, 9_500)
    assert p.payout_expected == backend_payout(500_000_000, 12_000, 10_500) == 630_000_000
    assert p.status == PositionStatus.PLACED
    assert p.is_claimed is False
    assert p.pnl == 0
    assert p.fee_paid == 500_000_000 * DEFAULT_FEE_BPS // 10_000 == 2_000_000
    assert p.close_price is None and p.close_pnl is None and p.closed_at is None
    assert p.timestamp == p.created_at == p.updated_at == clock.now_iso()
    assert p.confirmation_status == "confirmed"
    assert p.transaction_signature is not None
    assert len(b58decode(p.transaction_signature)) == 64
    assert p.market is not None
    assert (p.market.fixture_id, p.market.home_team) == (market.fixture_id, market.home_team)
    assert p.market.status == MarketStatus.OPEN
    assert p.version == 1


def test_open_position_is_deterministic() -> None:
    _, a = make_venue(seed=9)
    _, b = make_venue(seed=9)
    mid = open_market(a)
    assert a.open_position(WALLET, mid, 2, 10, 11_000) == b.open_position(
        WALLET, mid, 2, 10, 11_000
    )


def test_open_position_looks_up_fixture_id_then_address() -> None:
    _, venue = make_venue()
    market = venue.market(open_market(venue))
    by_int = venue.open_position(WALLET, market.id, 1, 1, 10_000)
    by_str = venue.open_position(WALLET, market.fixture_id, 1, 1, 10_000)
    by_addr = venue.open_position(WALLET, market.address, 1, 1, 10_000)
    assert by_int.market_address == by_str.market_address == by_addr.market_address
    with pytest.raises(NotFound):
        venue.open_position(WALLET, "MarketXYZ123", 1, 1, 10_000)
    with pytest.raises(NotFound):
        venue.open_position(WALLET, 999, 1, 1, 10_000)


@pytest.mark.parametrize(
    ("wallet", "team", "amount", "multiplier"),
    [
        ("", 1, 1, 10_000),
        ("   ", 1, 1, 10_000),
        (WALLET, 0, 1, 10_000),
        (WALLET, 3, 1, 10_000),
        (WALLET, True, 1, 10_000),
        (WALLET, 1, 0, 10_000),
        (WALLET, 1, -5, 10_000),
        (WALLET, 1, I64_MAX + 1, 10_000),
        (WALLET, 1, 1, 0),
    ],
)
def test_open_position_rejects_invalid_args(
    wallet: str, team: int, amount: int, multiplier: int
) -> None:
    _, venue = make_venue()
    with pytest.raises(InvalidArgs) as info:
        venue.open_position(wallet, open_market(venue), team, amount, multiplier)
    assert info.value.code == "INVALID_ARGS"
    assert venue.wallets() == []


def test_open_position_rejects_string_amounts_like_the_backend() -> None:
    _, venue = make_venue()
    with pytest.raises(InvalidArgs):
        venue.open_position(WALLET, open_market(venue), 1, "500", 10_000)  # type: ignore[arg-type]


def test_open_position_on_a_past_market_is_refused() -> None:
    _, venue = make_venue()
    settled = venue.markets()[0]
    assert settled.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED)
    with pytest.raises(MarketNotOpen) as info:
        venue.open_position(WALLET, settled.id, 1, 1, 10_000)
    assert info.value.code == "MARKET_NOT_OPEN"


def test_wallet_addresses_are_permissive_unless_strict() -> None:
    _, venue = make_venue()
    venue.open_position("not-a-solana-address", open_market(venue), 1, 1, 10_000)
    _, strict = make_venue(strict_wallets=True)
    with pytest.raises(InvalidArgs):
        strict.open_position("not-a-solana-address", open_market(strict), 1, 1, 10_000)
    strict.open_position(WALLET, open_market(strict), 1, 1, 10_000)


def test_big_amounts_stay_exact() -> None:
    _, venue = make_venue()
    amount = 2**60 + 7
    p = venue.open_position(WALLET, open_market(venue), 1, amount, 12_000)
    assert p.amount == amount
    assert p.fee_paid == amount * DEFAULT_FEE_BPS // 10_000
    assert p.payout_expected == amount * 12_000 * 12_000 // 10**8
    assert venue.stats(WALLET).total_volume == amount


# --------------------------------------------------------------------------- list


def test_unknown_wallet_is_not_found_and_registered_wallet_is_empty() -> None:
    _, venue = make_venue()
    with pytest.raises(NotFound):
        venue.list_positions(WALLET)
    with pytest.raises(NotFound):
        venue.stats(WALLET)
    venue.seed_wallet(WALLET, 0)
    page = venue.list_positions(WALLET)
    assert (page.positions, page.total, page.total_pages, page.page, page.limit) == (
        [],
        0,
        0,
        1,
        50,
    )


def test_list_is_newest_first_and_per_wallet() -> None:
    _, venue = make_venue()
    mid = open_market(venue)
    mine = [venue.open_position(WALLET, mid, 1, i + 1, 10_000).id for i in range(5)]
    venue.open_position(OTHER, mid, 1, 1, 10_000)
    ids = [p.id for p in venue.list_positions(WALLET).positions]
    assert ids == sorted(mine, reverse=True)


def test_status_filters() -> None:
    _, venue = make_venue()
    mid = open_market(venue)
    a, b, c = (venue.open_position(WALLET, mid, 1, 100, 10_000) for _ in range(3))
    venue.close_position(b.id, WALLET)

    def ids(status: str | None) -> list[int]:
        return [p.id for p in venue.list_positions(WALLET, status=status).positions]

    assert ids("current") == ids("open") == [c.id, a.id]
    assert ids("history") == ids("closed") == [b.id]
    everything = [c.id, b.id, a.id]
    for unfiltered in (None, "all", "OPEN", "2", ""):
        assert ids(unfiltered) == everything


def test_fixture_filter_matches_market_id_or_address() -> None:
    _, venue = make_venue()
    upcoming = [m for m in venue.markets() if m.status == MarketStatus.OPEN]
    m1, m2 = upcoming[0], upcoming[1]
    p1 = venue.open_position(WALLET, m1.id, 1, 1, 10_000)
    p2 = venue.open_position(WALLET, m2.id, 2, 1, 10_000)

    def ids(fixture: str | None) -> list[int]:
        return [p.id for p in venue.list_positions(WALLET, fixture_id=fixture).positions]

    assert ids(str(m1.id)) == [p1.id]
    assert ids(m1.fixture_id) == [p1.id]
    assert ids(m2.address) == [p2.id]
    assert ids("999") == []
    assert ids("NoSuchMarket") == []
    assert ids(None) == ids("") == [p2.id, p1.id]


def test_pagination_and_clamping() -> None:
    _, venue = make_venue()
    mid = open_market(venue)
    for i in range(120):
        venue.open_position(WALLET, mid, 1, i + 1, 10_000)
    default = venue.list_positions(WALLET)
    assert (default.limit, default.total, default.total_pages, len(default.positions)) == (
        50,
        120,
        3,
        50,
    )
    last = venue.list_positions(WALLET, page=3)
    assert len(last.positions) == 20 and last.positions[-1].id == 1001
    big = venue.list_positions(WALLET, limit=1000)
    assert (big.limit, big.total_pages, len(big.positions)) == (100, 2, 100)
    tiny = venue.list_positions(WALLET, page=0, limit=0)
    assert (tiny.page, tiny.limit, tiny.total_pages, len(tiny.positions)) == (1, 1, 120, 1)
    beyond = venue.list_positions(WALLET, page=99)
    assert beyond.positions == [] and beyond.total == 120


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), limit=st.integers(-5, 120))
def test_pages_partition_the_list(n: int, limit: int) -> None:
    _, venue = make_venue(n_markets=2, n_past_markets=0)
    venue.seed_wallet(WALLET, 0)
    mid = open_market(venue)
    for i in range(n):
        venue.open_position(WALLET, mid, 1, i + 1, 10_000)
    first = venue.list_positions(WALLET, limit=limit)
    seen = [
        p.id
        for page in range(1, first.total_pages + 1)
        for p in venue.list_positions(WALLET, page=page, limit=limit).positions
    ]
    assert seen == sorted(range(1001, 1001 + n), reverse=True)
    assert 1 <= first.limit <= 100


def test_results_are_copies() -> None:
    _, venue = make_venue()
    p = venue.open_position(WALLET, open_market(venue), 1, 10, 10_000)
    p.amount = 0
    listed = venue.list_positions(WALLET).positions[0]
    assert listed.amount == 10
    assert listed.market is not None
    listed.market.status = 99
    assert venue.get_position(p.id).market == venue.list_positions(WALLET).positions[0].market


# --------------------------------------------------------------------------- close


def test_close_defaults_to_zero_close_pnl_and_cancelled_status() -> None:
    clock, venue = make_venue()
    p = venue.open_position(WALLET, open_market(venue), 1, 500_000_000, 12_000)
    clock.advance(60_000)
    closed = venue.close_position(p.id, WALLET)
    assert closed.status == PositionStatus.CANCELLED
    assert closed.status == 4
    assert closed.position_type == "CLOSE"
    assert closed.close_price == 500_000_000 and closed.close_pnl == 0
    assert closed.pnl == -p.fee_paid
    assert closed.closed_at == closed.updated_at == clock.now_iso() != closed.created_at
    assert closed.version == p.version + 1


def test_close_with_price_and_early_closed_status() -> None:
    _, venue = make_venue(close_status=6)
    p = venue.open_position(WALLET, open_market(venue), 1, 1_000, 10_000)
    closed = venue.close_position(p.id, WALLET, close_price=1_234)
    assert closed.status == PositionStatus.EARLY_CLOSED
    assert (closed.close_price, closed.close_pnl, closed.pnl) == (1_234, 234, 234 - p.fee_paid)
    with pytest.raises(ValueError):
        make_venue(close_status=2)


def test_close_errors() -> None:
    _, venue = make_venue()
    p = venue.open_position(WALLET, open_market(venue), 1, 1_000, 10_000)
    with pytest.raises(NotFound):
        venue.close_position(999_999, WALLET)
    with pytest.raises(InvalidArgs):
        venue.close_position(0, WALLET)
    with pytest.raises(InvalidArgs):
        venue.close_position(p.id, WALLET, close_price=-1)
    with pytest.raises(Conflict):
        venue.close_position(p.id, WALLET, expected_version=p.version + 1)
    venue.close_position(p.id, WALLET, expected_version=p.version)
    with pytest.raises(Conflict) as info:
        venue.close_position(p.id, WALLET)
    assert info.value.code == "CONFLICT"


def test_owner_check_on_by_default() -> None:
    _, venue = make_venue()
    p = venue.open_position(WALLET, open_market(venue), 1, 1_000, 10_000)
    with pytest.raises(NotOwner) as info:
        venue.close_position(p.id, OTHER)
    assert info.value.code == "NOT_OWNER"
    with pytest.raises(NotOwner):
        venue.close_position(p.id)  # no wallet: ownership cannot be shown
    assert venue.get_position(p.id).status == PositionStatus.PLACED
    assert [a.action for a in venue.audit_log(p.id)] == ["open"]


def test_owner_check_off_mimics_the_real_service() -> None:
    _, venue = make_venue(owner_check=False)
    mid = open_market(venue)
    p = venue.open_position(WALLET, mid, 1, 1_000, 10_000)
    q = venue.open_position(WALLET, mid, 1, 1_000, 10_000)
    assert venue.close_position(p.id, OTHER).status == PositionStatus.CANCELLED
    assert venue.close_position(q.id).status == PositionStatus.CANCELLED


def test_close_appends_audit_rows() -> None:
    _, venue = make_venue()
    p = venue.open_position(WALLET, open_market(venue), 1, 1_000, 10_000)
    venue.close_position(p.id, WALLET, close_price=900)
    rows = venue.audit_log(p.id)
    assert [(r.action, r.old_status, r.new_status, r.version) for r in rows] == [
        ("open", None, 1, 1),
        ("close", 1, 4, 2),
    ]
    assert rows[1].actor == WALLET and "900" in rows[1].detail
    assert [r.id for r in venue.audit_log()] == [1, 2]


def test_concurrent_closes_one_wins() -> None:
    _, venue = make_venue()
    p = venue.open_position(WALLET, open_market(venue), 1, 1_000, 10_000)

    def attempt(_: int) -> str:
        try:
            venue.close_position(p.id, WALLET)
        except Conflict:
            return "conflict"
        return "closed"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = Counter(pool.map(attempt, range(16)))
    assert results == {"closed": 1, "conflict": 15}
    assert len([r for r in venue.audit_log(p.id) if r.action == "close"]) == 1


# --------------------------------------------------------------------------- settlement


def test_positions_settle_over_stepped_time() -> None:
    clock, venue = make_venue()
    market = venue.market(open_market(venue))
    home = venue.open_position(WALLET, market.id, 1, 1_000_000, 12_000, 15_000, 25_000)
    away = venue.open_position(WALLET, market.id, 2, 2_000_000, 12_000, 15_000, 25_000)

    clock.set(market.starts_at_ms)
    assert venue.market(market.id).status == MarketStatus.LIVE
    listed = venue.list_positions(WALLET, status="open").positions
    assert {p.id for p in listed} == {home.id, away.id}
    assert all(p.market is not None and p.market.status == MarketStatus.LIVE for p in listed)

    clock.set(market.settles_at_ms - 1)
    assert venue.get_position(home.id).status == PositionStatus.PLACED
    clock.advance(1)
    after = venue.market(market.id)
    assert after.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED)
    assert venue.list_positions(WALLET, status="open").total == 0
    for before in (home, away):
        p = venue.get_position(before.id)
        assert p.closed_at == ms_to_iso(market.settles_at_ms)
        assert p.position_type == "OPEN"
        check_outcome(p, after.status, after.winner)


def check_outcome(p: Position, market_status: int, winner: int | None) -> None:
    odds = effective_odds_bps(p.selected_team, p.multiplier_bps, p.odds_home_bps, p.odds_away_bps)
    if market_status == MarketStatus.CANCELLED:
        assert (p.status, p.pnl) == (PositionStatus.CANCELLED, -p.fee_paid)
    elif winner is None:
        assert (p.status, p.pnl) == (PositionStatus.REFUNDED, 0)
    elif winner == p.selected_team:
        payout = p.amount * odds // 10_000
        assert (p.status, p.pnl) == (PositionStatus.WON, payout - p.amount - p.fee_paid)
    else:
        assert (p.status, p.pnl) == (PositionStatus.LOST, -p.amount - p.fee_paid)


def test_every_outcome_occurs_and_follows_the_rules() -> None:
    outcomes: Counter[int] = Counter()
    for seed in range(60):
        clock, venue = make_venue(seed=seed, n_markets=12, n_past_markets=0)
        first = venue.markets()
        for m in first:
            venue.open_position(WALLET, m.id, 1, 1_000_000, 11_000)
            venue.open_position(WALLET, m.id, 2, 1_000_000, 11_000, None, 30_000)
        clock.advance(4 * DAY)
        markets = {m.address: m for m in venue.markets() if m.id <= len(first)}
        assert len(markets) == len(first)
        assert all(
            m.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED) for m in markets.values()
        )
        for p in venue.list_positions(WALLET, limit=100).positions:
            m = markets[p.market_address]
            check_outcome(p, m.status, m.winner)
            outcomes[p.status] += 1
    assert set(outcomes) == {2, 3, 4, 5}


def test_settlement_does_not_depend_on_polling() -> None:
    clock_a, a = make_venue(seed=5)
    clock_b, b = make_venue(seed=5)
    for venue in (a, b):
        for m in venue.markets()[6:]:
            venue.open_position(WALLET, m.id, 1 + m.id % 2, 10_000 * m.id, 12_000)
    for _ in range(80):
        clock_a.advance(HOUR)
        a.list_positions(WALLET)
    clock_b.advance(80 * HOUR)
    b.list_positions(WALLET)  # settlement is lazy: any call catches up with the clock
    assert a.to_json() == b.to_json()


def test_explicit_settle_without_auto_settle() -> None:
    clock, venue = make_venue(auto_settle=False)
    market = venue.market(open_market(venue))
    p = venue.open_position(WALLET, market.id, 1, 1_000, 10_000)
    clock.set(market.settles_at_ms + 1)
    assert venue.get_position(p.id).status == PositionStatus.PLACED
    assert venue.settle() == [p.id]
    assert venue.get_position(p.id).status != PositionStatus.PLACED
    assert venue.settle() == []
    assert [r.action for r in venue.audit_log(p.id)] == ["open", "settle"]


def test_settle_with_explicit_time() -> None:
    _, venue = make_venue(auto_settle=False)
    market = venue.market(open_market(venue))
    p = venue.open_position(WALLET, market.id, 1, 1_000, 10_000)
    assert venue.settle(market.settles_at_ms - 1) == []
    assert venue.settle(market.settles_at_ms) == [p.id]


# --------------------------------------------------------------------------- market supply


def upcoming(venue: PositionsVenue, now: int) -> list[Market]:
    return [m for m in venue.markets() if m.status == MarketStatus.OPEN and m.starts_at_ms > now]


def test_markets_keep_coming_as_the_clock_runs_for_a_month() -> None:
    clock, venue = make_venue(n_markets=12, n_past_markets=6)
    placed = venue.open_position(WALLET, open_market(venue), 1, 1_000, 10_000)
    for _ in range(30 * 4):
        clock.advance(6 * HOUR)
        venue.list_positions(WALLET)
        now = clock.now_ms()
        ahead = upcoming(venue, now)
        assert 8 <= len(ahead) <= 16
        assert all(m.starts_at_ms <= now + 3 * DAY for m in ahead)
    ids = [m.id for m in venue.markets()]
    assert ids == sorted(set(ids)) and ids[-1] > 18
    assert len(ids) < 12 + 16 * 4  # settled markets nobody bet on are dropped after 14 days
    assert venue.market(placed.market_address).status != MarketStatus.OPEN  # bet on: kept
    p = venue.open_position(WALLET, ahead[0].address, 2, 5_000, 11_000)
    assert p.status == PositionStatus.PLACED and p.market_address == ahead[0].address
    clock.set(ahead[0].settles_at_ms)
    assert venue.get_position(p.id).status != PositionStatus.PLACED


def test_markets_depend_on_the_time_not_on_how_it_was_reached() -> None:
    target = START_MS + 30 * DAY + 5 * HOUR
    clocks_venues = [make_venue(seed=4) for _ in range(3)]
    (fine_clock, fine), (lumpy_clock, lumpy), (jump_clock, jump) = clocks_venues
    while fine_clock.now_ms() < target:
        fine_clock.advance(min(HOUR, target - fine_clock.now_ms()))
        fine.markets()
    for step in (DAY + 7, 9 * DAY, 3 * HOUR, 17 * DAY):
        lumpy_clock.advance(step)
        lumpy.settle()
    lumpy_clock.set(target)
    jump_clock.set(target)
    assert fine.markets() == lumpy.markets() == jump.markets()
    assert len(upcoming(fine, target)) >= 8
    assert fine.to_json() == lumpy.to_json() == jump.to_json()


def test_round_trip_after_a_month_keeps_markets_and_what_comes_next() -> None:
    clock, venue = make_venue(seed=8)
    clock.advance(12 * DAY)
    kept = venue.open_position(WALLET, upcoming(venue, clock.now_ms())[0].id, 1, 100, 10_000)
    clock.advance(20 * DAY)
    text = venue.to_json()
    twin_clock = SimClock.stepped(clock.now_ms())
    restored = PositionsVenue.from_json(text, twin_clock)
    assert restored.to_json() == text
    assert restored.markets() == venue.markets()
    assert restored.get_position(kept.id) == venue.get_position(kept.id)
    for c in (clock, twin_clock):
        c.advance(4 * DAY)
    later = venue.markets()
    assert restored.markets() == later
    assert max(m.id for m in later) > max(m["id"] for m in json.loads(text)["markets"])
    assert restored.to_json() == venue.to_json()


def test_state_saved_before_slots_existed_still_gets_new_markets() -> None:
    clock, venue = make_venue(seed=2)
    state = json.loads(venue.to_json())
    for key in ("n_markets", "next_slot", "next_market_id"):
        del state[key]
    clock.advance(10 * DAY)
    restored = PositionsVenue.from_json(json.dumps(state), clock)
    ahead = upcoming(restored, clock.now_ms())
    assert len(ahead) >= 8
    assert min(m.id for m in ahead) > max(m["id"] for m in state["markets"])


def test_revision_moves_when_a_read_changes_the_state() -> None:
    clock, venue = make_venue()
    before = venue.revision
    venue.markets()
    assert venue.revision == before
    clock.advance(DAY)
    venue.markets()
    assert venue.revision > before


# --------------------------------------------------------------------------- stats, seeding


def test_stats_are_derived_from_positions() -> None:
    clock, venue = make_venue()
    venue.seed_wallet(WALLET, 40)
    clock.advance(DAY)
    rows = venue.list_positions(WALLET, limit=100).positions
    stats = venue.stats(WALLET)
    won = sum(p.status == 2 for p in rows)
    lost = sum(p.status == 3 for p in rows)
    assert stats.total_positions == len(rows) == 40
    assert stats.open_positions == sum(p.status == 1 for p in rows)
    assert stats.closed_positions == 40 - stats.open_positions
    assert (stats.won_positions, stats.lost_positions) == (won, lost)
    assert stats.total_volume == sum(p.amount for p in rows)
    assert stats.total_pnl == sum(p.pnl for p in rows)
    assert stats.total_fees_paid == sum(p.fee_paid for p in rows)
    assert stats.win_rate == pytest.approx(won / (won + lost))
    assert 0 <= stats.win_rate <= 1
    venue.seed_wallet(OTHER, 0)
    empty = venue.stats(OTHER)
    assert (empty.total_positions, empty.win_rate) == (0, 0.0)


def test_seed_wallet_builds_a_history() -> None:
    _, venue = make_venue(seed=3)
    created = venue.seed_wallet(WALLET, 30)
    statuses = Counter(p.status for p in created)
    assert statuses[PositionStatus.PLACED] > 0
    assert statuses[PositionStatus.WON] + statuses[PositionStatus.LOST] > 0
    assert statuses[PositionStatus.CANCELLED] > 0  # closed early
    assert [p.id for p in created] == sorted(p.id for p in created)
    assert [p.created_at for p in created] == sorted(p.created_at for p in created)
    _, again = make_venue(seed=3)
    assert again.seed_wallet(WALLET, 30) == created
    with pytest.raises(InvalidArgs):
        venue.seed_wallet("", 1)


# --------------------------------------------------------------------------- persistence


def test_json_round_trip_preserves_everything() -> None:
    clock, venue = make_venue(seed=11, owner_check=False, fee_bps=25, close_status=6)
    venue.seed_wallet(WALLET, 12)
    venue.seed_wallet(OTHER, 0)
    big = venue.open_position(WALLET, open_market(venue), 2, 2**62 + 3, 12_000)
    text = venue.to_json()
    assert str(2**62 + 3) in text
    restored = PositionsVenue.from_json(text, clock)
    assert restored.to_json() == text
    assert restored.get_position(big.id) == big
    assert restored.wallets() == venue.wallets() == sorted([WALLET, OTHER])
    assert (restored.owner_check, restored.fee_bps, restored.close_status) == (False, 25, 6)
    assert restored.markets() == venue.markets()
    assert restored.audit_log() == venue.audit_log()
    nxt = restored.open_position(WALLET, open_market(restored), 1, 1, 10_000)
    assert nxt.id == big.id + 1
    # Both continue identically from the same state.
    clock.advance(5 * DAY)
    assert set(restored.settle()) - {nxt.id} == set(venue.settle())
    assert (
        json.loads(restored.to_json())["positions"][:-1] == json.loads(venue.to_json())["positions"]
    )


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "[]",
        "not json",
        '{"format": 99}',
    ],
)
def test_from_json_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        PositionsVenue.from_json(text, SimClock.stepped(START_MS))


def test_from_json_rejects_wrong_types_and_versions() -> None:
    clock, venue = make_venue()
    state = json.loads(venue.to_json())
    state["format"] = 2
    with pytest.raises(ValueError):
        PositionsVenue.from_json(json.dumps(state), clock)
    state["format"] = 1
    state["fee_bps"] = "40"
    with pytest.raises(ValueError):
        PositionsVenue.from_json(json.dumps(state), clock)
