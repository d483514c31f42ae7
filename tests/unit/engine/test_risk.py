"""RiskGate: each rule vetoes with its code in the documented order, closes pass the kill switch,
batches are cumulative, money is exact, and the numeric core is the one numba compiles."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import (
    AccountView,
    ClosePosition,
    CloseSession,
    Decision,
    ExecutionStrategy,
    Hold,
    OpenAdvanced,
    OpenQuick,
    SessionView,
    Side,
    StrategyDuration,
)
from bot.engine.risk import REASONS, RiskGate, RiskLimits, Verdict, allows_open, effective_budget

NOW = 10 * 86_400_000
HOUR = 3_600_000
ASSETS = ("BTC", "ETH", "SOL", "XRP")


def open_(asset: str = "BTC", budget: int | str = 100) -> OpenQuick:
    return OpenQuick("s", asset, Side.LONG, Decimal(budget), Decimal(2), Decimal(1), 1, "test")


def advanced(asset: str = "BTC", amount: int = 100, whole_wallet: bool = False) -> OpenAdvanced:
    return OpenAdvanced(
        "s",
        asset,
        Side.SHORT,
        Decimal(amount),
        ExecutionStrategy.CONSERVATIVE,
        StrategyDuration.D1,
        whole_wallet,
        "test",
    )


def account(**kw: Any) -> AccountView:
    base: dict[str, Any] = dict(
        free_balance=Decimal(1000),
        realized_pnl_today=Decimal(0),
        open_sessions=(),
        paused=False,
        last_close_ms={},
    )
    base.update(kw)
    return AccountView(**base)


def view(asset: str, budget: int | str = 100) -> SessionView:
    return SessionView(f"id-{asset}", asset, "quick", Decimal(budget), 0, "s")


def verdicts(
    decisions: list[Decision],
    acc: AccountView | None = None,
    limits: RiskLimits | None = None,
    signal_age_ms: int = 0,
    pending: set[str] | None = None,
) -> list[Verdict]:
    """`signal_age_ms` is how long ago the signal's candle closed."""
    gate = RiskGate(limits or RiskLimits())
    times: dict[str, int | None] = {a: NOW - HOUR - signal_age_ms for a in ASSETS}
    return gate.check_batch(
        decisions,
        account=acc or account(),
        now_ms=NOW,
        signal_times=times,
        interval_ms=HOUR,
        pending_assets=pending or set(),
    )


def reasons(decisions: list[Decision], *args: Any, **kw: Any) -> list[str]:
    return [v.reason for v in verdicts(decisions, *args, **kw)]


# -- single rules ---------------------------------------------------------------------------------


def test_accepts_a_plain_open() -> None:
    (verdict,) = verdicts([open_()])
    assert verdict == Verdict(True, "ok")


@pytest.mark.parametrize(
    ("acc", "limits", "age", "pending", "reason"),
    [
        (account(paused=True), None, 0, None, "paused"),
        (account(), None, 0, {"BTC"}, "asset_has_unresolved_intent"),
        (account(open_sessions=(view("BTC"),)), None, 0, None, "asset_has_session"),
        (
            account(open_sessions=(view("ETH"),)),
            RiskLimits(max_open_sessions=1),
            0,
            None,
            "max_open_sessions",
        ),
        (
            account(),
            RiskLimits(max_budget_per_session=Decimal(50), max_total_budget=Decimal(50)),
            0,
            None,
            "budget_per_session",
        ),
        (account(open_sessions=(view("ETH", 950),)), None, 0, None, "total_budget"),
        (account(realized_pnl_today=Decimal(-100)), None, 0, None, "daily_loss_stop"),
        (account(last_close_ms={"BTC": NOW - 1000}), None, 0, None, "cooldown"),
        (account(), None, 2 * HOUR + 1, None, "stale_data"),
        (account(free_balance=Decimal(110)), None, 0, None, "min_free_balance"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_rule_vetoes_with_its_code(
    acc: AccountView, limits: RiskLimits | None, age: int, pending: set[str] | None, reason: str
) -> None:
    (verdict,) = verdicts([open_()], acc, limits, age, pending)
    assert (verdict.accepted, verdict.reason) == (False, reason)
    assert verdict.detail


def test_rules_apply_in_the_documented_order() -> None:
    """Start with an open that breaks every rule, then fix one rule at a time: each fix reveals
    the next rule in the documented order."""
    state: dict[str, Any] = dict(
        paused=True,
        pending={"BTC"},
        sessions=(view("BTC", 900),),
        max_open=1,
        budget=300,
        realized=Decimal(-100),
        last_close={"BTC": NOW - 1000},
        age=3 * HOUR,
        free=Decimal(100),
    )
    fixes: list[dict[str, Any]] = [
        {"paused": False},
        {"pending": set()},
        {"sessions": (view("ETH", 900),)},
        {"max_open": 2},
        {"budget": 200},
        {"sessions": (view("ETH", 100),)},
        {"realized": Decimal(0)},
        {"last_close": {}},
        {"age": 0},
        {"free": Decimal(1000)},
    ]
    seen = []
    for fix in [{}, *fixes]:
        state.update(fix)
        (verdict,) = verdicts(
            [open_("BTC", state["budget"])],
            account(
                paused=state["paused"],
                open_sessions=state["sessions"],
                realized_pnl_today=state["realized"],
                last_close_ms=state["last_close"],
                free_balance=state["free"],
            ),
            RiskLimits(max_open_sessions=state["max_open"]),
            state["age"],
            state["pending"],
        )
        seen.append(verdict.reason)
    assert seen == [REASONS[code] for code in range(1, 11)] + ["ok"]


def test_kill_switch_vetoes_both_kinds_of_open() -> None:
    assert reasons([open_("BTC"), advanced("ETH")], account(paused=True)) == ["paused", "paused"]


def test_kill_switch_lets_closes_through() -> None:
    closes: list[Decision] = [
        CloseSession("guard", "BTC", "stop"),
        ClosePosition("guard", "p1", "positions", "stop"),
    ]
    assert reasons(closes, account(paused=True, realized_pnl_today=Decimal(-999))) == [
        "close",
        "close",
    ]


def test_hold_is_never_vetoed() -> None:
    acc = account(paused=True, realized_pnl_today=Decimal(-999), free_balance=Decimal(0))
    assert verdicts([Hold("s", "BTC", "warming")], acc, pending={"BTC"}) == [Verdict(True, "hold")]


def test_missing_signal_time_is_stale() -> None:
    gate = RiskGate(RiskLimits())
    (verdict,) = gate.check_batch(
        [open_()],
        account=account(),
        now_ms=NOW,
        signal_times={},
        interval_ms=HOUR,
        pending_assets=set(),
    )
    assert verdict.reason == "stale_data"


def test_data_is_fresh_until_stale_after_intervals_past_the_candle_close() -> None:
    assert reasons([open_()], signal_age_ms=2 * HOUR) == ["ok"]
    assert reasons([open_()], signal_age_ms=2 * HOUR + 1) == ["stale_data"]


def test_cooldown_ends_exactly_after_cooldown_s() -> None:
    at_end = account(last_close_ms={"BTC": NOW - 3600 * 1000})
    just_before = account(last_close_ms={"BTC": NOW - 3600 * 1000 + 1})
    assert reasons([open_()], at_end) == ["ok"]
    assert reasons([open_()], just_before) == ["cooldown"]


def test_cooldown_is_per_asset() -> None:
    assert reasons([open_("ETH")], account(last_close_ms={"BTC": NOW})) == ["ok"]


def test_daily_loss_stop_starts_at_exactly_minus_the_limit() -> None:
    assert reasons([open_()], account(realized_pnl_today=Decimal("-99.99"))) == ["ok"]
    assert reasons([open_()], account(realized_pnl_today=Decimal("-100"))) == ["daily_loss_stop"]


def test_money_limits_are_exact_decimals() -> None:
    # 32.05 - 12.05 leaves exactly the minimum; in floats it is 19.999999999999996
    assert float(Decimal("32.05")) - float(Decimal("12.05")) < 20
    assert reasons([open_("BTC", "12.05")], account(free_balance=Decimal("32.05"))) == ["ok"]


def test_whole_wallet_advanced_session_counts_the_free_balance() -> None:
    decision = advanced(amount=10, whole_wallet=True)
    assert effective_budget(decision, Decimal(240)) == Decimal(240)
    assert reasons([decision], account(free_balance=Decimal(240))) == ["min_free_balance"]
    assert reasons([decision], account(free_balance=Decimal(5000))) == ["budget_per_session"]


def test_unresolved_intent_on_another_asset_does_not_block() -> None:
    assert reasons([open_("BTC")], pending={"ETH"}) == ["ok"]


def test_check_is_check_batch_of_one() -> None:
    gate = RiskGate(RiskLimits())
    acc = account(last_close_ms={"BTC": NOW - 1000})
    single = gate.check(
        open_(),
        account=acc,
        now_ms=NOW,
        signal_time_ms=NOW - HOUR,
        interval_ms=HOUR,
        pending_assets=set(),
    )
    assert single == verdicts([open_()], acc)[0]


# -- batches --------------------------------------------------------------------------------------


def test_second_open_on_the_same_asset_in_one_tick_is_vetoed() -> None:
    assert reasons([open_("BTC"), advanced("BTC")]) == ["ok", "asset_has_session"]


def test_open_sessions_are_counted_as_opens_are_accepted() -> None:
    limits = RiskLimits(max_open_sessions=2)
    assert reasons([open_("BTC"), open_("ETH"), open_("SOL")], limits=limits) == [
        "ok",
        "ok",
        "max_open_sessions",
    ]


def test_budget_is_counted_as_opens_are_accepted() -> None:
    limits = RiskLimits(max_open_sessions=5, max_total_budget=Decimal(500))
    assert reasons([open_("BTC", 250), open_("ETH", 200), open_("SOL", 60)], limits=limits) == [
        "ok",
        "ok",
        "total_budget",
    ]


def test_free_balance_is_counted_as_opens_are_accepted() -> None:
    acc = account(free_balance=Decimal(300))
    assert reasons([open_("BTC", 200), open_("ETH", 90)], acc) == ["ok", "min_free_balance"]


def test_a_vetoed_open_consumes_nothing() -> None:
    limits = RiskLimits(max_open_sessions=1)
    assert reasons([open_("BTC", 400), open_("ETH", 100)], limits=limits) == [
        "budget_per_session",
        "ok",
    ]


def test_second_close_of_the_same_thing_in_one_tick_is_vetoed() -> None:
    batch: list[Decision] = [
        CloseSession("a", "BTC", "exit"),
        CloseSession("b", "BTC", "exit"),
        ClosePosition("a", "7", "positions", "x"),
        ClosePosition("b", "7", "positions", "x"),
    ]
    assert reasons(batch) == ["close", "duplicate_close", "close", "duplicate_close"]


def test_close_on_an_asset_with_an_unresolved_intent_is_vetoed() -> None:
    assert reasons([CloseSession("a", "BTC", "exit")], pending={"BTC"}) == [
        "asset_has_unresolved_intent"
    ]


# -- limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_open_sessions": 0}, "max_open_sessions"),
        ({"max_budget_per_session": Decimal(5)}, "max_budget_per_session"),
        ({"max_total_budget": Decimal(100)}, "max_total_budget"),
        ({"daily_loss_limit": Decimal(-100)}, "daily_loss_limit"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"stale_after_intervals": 0}, "stale_after_intervals"),
        ({"min_free_balance": Decimal(-1)}, "min_free_balance"),
        ({"max_total_budget": "lots"}, "max_total_budget"),
        ({"daily_loss_limit": float("nan")}, "daily_loss_limit"),
        ({"cooldown_s": 1.5}, "cooldown_s"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_limits_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"invalid risk limits: {field}"):
        RiskLimits(**kwargs)


def test_limits_store_config_money_as_decimal() -> None:
    config: dict[str, Any] = {
        "max_total_budget": "1500.50",
        "daily_loss_limit": 50,
        "min_free_balance": 2.5,
    }
    limits = RiskLimits(**config)
    assert limits.max_total_budget == Decimal("1500.50")
    assert limits.daily_loss_limit == Decimal(50)
    assert limits.min_free_balance == Decimal("2.5")


def test_one_per_asset_cannot_be_turned_off() -> None:
    assert RiskLimits().one_per_asset is True
    with pytest.raises(ValueError, match="one_per_asset cannot be turned off"):
        RiskLimits(one_per_asset=False)


def test_limits_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RiskLimits().max_open_sessions = 9  # type: ignore[misc]


# -- the numeric core -----------------------------------------------------------------------------

CORE_DEFAULTS = dict(
    paused=False,
    asset_unresolved=False,
    asset_busy=False,
    open_count=0,
    max_open=3,
    budget=100.0,
    max_budget=250.0,
    budget_in_use=0.0,
    max_total=1000.0,
    realized_today=0.0,
    daily_loss_limit=100.0,
    since_last_close_s=float("inf"),
    cooldown_s=3600.0,
    data_age_s=0.0,
    stale_after_s=7200.0,
    free_balance=1000.0,
    min_free=20.0,
)


def test_numeric_core_takes_plain_floats() -> None:
    assert allows_open(**CORE_DEFAULTS) == 0  # type: ignore[arg-type]
    assert allows_open(**{**CORE_DEFAULTS, "budget_in_use": 950.0}) == 6  # type: ignore[arg-type]


core_inputs = st.fixed_dictionaries(
    {
        "paused": st.booleans(),
        "asset_unresolved": st.booleans(),
        "asset_busy": st.booleans(),
        "open_count": st.integers(0, 5),
        "max_open": st.integers(1, 5),
        "budget": st.floats(0, 500),
        "max_budget": st.floats(10, 500),
        "budget_in_use": st.floats(0, 2000),
        "max_total": st.floats(10, 2000),
        "realized_today": st.floats(-300, 300),
        "daily_loss_limit": st.floats(1, 200),
        "since_last_close_s": st.floats(0, 10_000) | st.just(float("inf")),
        "cooldown_s": st.floats(0, 7200),
        "data_age_s": st.floats(-100, 20_000) | st.just(float("inf")),
        "stale_after_s": st.floats(60, 10_000),
        "free_balance": st.floats(0, 3000),
        "min_free": st.floats(0, 100),
    }
)


@pytest.fixture(scope="module")
def compiled_core() -> Any:
    numba = pytest.importorskip("numba")
    return numba.njit(cache=False)(allows_open)


@settings(max_examples=200, deadline=None)
@given(inputs=core_inputs)
def test_numba_compiled_core_agrees_with_python(compiled_core: Any, inputs: dict[str, Any]) -> None:
    assert compiled_core(*(inputs[k] for k in CORE_DEFAULTS)) == allows_open(**inputs)


# -- the property ---------------------------------------------------------------------------------

decision_strategy = st.one_of(
    st.builds(open_, st.sampled_from(ASSETS), st.integers(10, 400)),
    st.builds(advanced, st.sampled_from(ASSETS), st.integers(10, 400), st.booleans()),
    st.builds(CloseSession, st.just("g"), st.sampled_from(ASSETS), st.just("exit")),
    st.builds(Hold, st.just("s"), st.sampled_from(ASSETS), st.just("wait")),
)


@settings(max_examples=300, deadline=None)
@given(
    decisions=st.lists(decision_strategy, max_size=12),
    existing=st.dictionaries(st.sampled_from(ASSETS), st.integers(10, 400), max_size=3),
    pending=st.sets(st.sampled_from(ASSETS), max_size=2),
    max_open=st.integers(1, 4),
    max_total=st.integers(400, 1500),
    free=st.integers(0, 3000),
    min_free=st.integers(0, 50),
    paused=st.booleans(),
)
def test_accepted_batches_never_break_a_limit(
    decisions: list[Decision],
    existing: dict[str, int],
    pending: set[str],
    max_open: int,
    max_total: int,
    free: int,
    min_free: int,
    paused: bool,
) -> None:
    limits = RiskLimits(
        max_open_sessions=max_open,
        max_budget_per_session=Decimal(400),
        max_total_budget=Decimal(max_total),
        min_free_balance=Decimal(min_free),
    )
    acc = account(
        open_sessions=tuple(view(a, b) for a, b in existing.items()),
        free_balance=Decimal(free),
        paused=paused,
    )
    results = verdicts(decisions, acc, limits, pending=pending)

    accepted_opens: list[OpenQuick | OpenAdvanced] = [
        d
        for d, v in zip(decisions, results, strict=True)
        if v.accepted and isinstance(d, OpenQuick | OpenAdvanced)
    ]
    for d, v in zip(decisions, results, strict=True):
        if isinstance(d, Hold):
            assert v.accepted
    if not accepted_opens:
        return
    assert not paused
    assets = [d.asset for d in accepted_opens]
    assert len(set(assets)) == len(assets)
    assert not set(assets) & (set(existing) | pending)
    assert len(existing) + len(accepted_opens) <= max_open
    remaining = Decimal(free)
    in_use = Decimal(sum(existing.values()))
    for d in accepted_opens:
        budget = effective_budget(d, remaining)
        assert budget <= limits.max_budget_per_session
        in_use += budget
        remaining -= budget
    assert in_use <= limits.max_total_budget
    assert remaining >= limits.min_free_balance
