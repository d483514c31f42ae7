"""RiskGate: each rule vetoes with its code, closes pass the kill switch, batches are cumulative."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import AccountView, CloseSession, Hold, OpenQuick, SessionView, Side
from bot.engine.risk import RiskGate, RiskLimits, allows_open

NOW = 10 * 86_400_000
HOUR = 3_600_000


def open_(asset: str = "BTC", budget: int = 100) -> OpenQuick:
    return OpenQuick("s", asset, Side.LONG, Decimal(budget), Decimal(2), Decimal(1), 1, "test")


def account(**kw: object) -> AccountView:
    base: dict[str, object] = dict(
        free_balance=Decimal(1000),
        realized_pnl_today=Decimal(0),
        open_sessions=(),
        paused=False,
        last_close_ms={},
    )
    base.update(kw)
    return AccountView(**base)  # type: ignore[arg-type]


def view(asset: str, budget: int = 100) -> SessionView:
    return SessionView(f"id-{asset}", asset, "quick", Decimal(budget), 0, "s")


def check(
    decisions: list,
    acc: AccountView | None = None,
    limits: RiskLimits | None = None,
    signal_age_ms: int = 0,
    pending: set[str] | None = None,
) -> list[str]:
    gate = RiskGate(limits or RiskLimits())
    times = {a: NOW - HOUR - signal_age_ms for a in ("BTC", "ETH", "SOL", "XRP")}
    return [
        v.reason
        for v in gate.check_batch(
            decisions,
            account=acc or account(),
            now_ms=NOW,
            signal_times=times,
            interval_ms=HOUR,
            pending_assets=pending or set(),
        )
    ]


def test_accepts_a_plain_open() -> None:
    assert check([open_()]) == ["ok"]


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
        (account(), None, 3 * HOUR, None, "stale_data"),
        (account(free_balance=Decimal(110)), None, 0, None, "min_free_balance"),
    ],
)
def test_each_rule_vetoes_with_its_code(
    acc: AccountView, limits: RiskLimits | None, age: int, pending: set[str] | None, reason: str
) -> None:
    assert check([open_()], acc, limits, age, pending) == [reason]


def test_kill_switch_lets_closes_through() -> None:
    assert check([CloseSession("g", "BTC", "stop"), open_("ETH")], account(paused=True)) == [
        "close",
        "paused",
    ]


def test_hold_is_never_vetoed() -> None:
    assert check([Hold("s", "BTC", "warming")], account(paused=True)) == ["hold"]


def test_batch_is_cumulative_per_asset_and_count() -> None:
    limits = RiskLimits(max_open_sessions=2)
    assert check([open_("BTC"), open_("BTC"), open_("ETH"), open_("SOL")], limits=limits) == [
        "ok",
        "asset_has_session",
        "ok",
        "max_open_sessions",
    ]


def test_missing_signal_time_is_stale() -> None:
    gate = RiskGate(RiskLimits())
    verdict = gate.check_batch(
        [open_()],
        account=account(),
        now_ms=NOW,
        signal_times={},
        interval_ms=HOUR,
        pending_assets=set(),
    )
    assert verdict[0].reason == "stale_data"


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_budget_per_session"):
        RiskLimits(max_budget_per_session=Decimal(5))


def test_numeric_core_is_plain_numbers() -> None:
    assert (
        allows_open(
            False,
            False,
            False,
            0,
            3,
            100.0,
            250.0,
            0.0,
            1000.0,
            0.0,
            100.0,
            1e9,
            3600.0,
            0.0,
            7200.0,
            1000.0,
            20.0,
        )
        == 0
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(["BTC", "ETH", "SOL", "XRP"]), st.integers(10, 400)), max_size=12
    ),
    st.integers(1, 4),
    st.integers(100, 1500),
)
def test_accepted_batches_respect_every_limit(
    orders: list[tuple[str, int]], max_open: int, max_total: int
) -> None:
    limits = RiskLimits(
        max_open_sessions=max_open,
        max_budget_per_session=Decimal(400),
        max_total_budget=Decimal(max(max_total, 400)),
    )
    decisions = [open_(a, b) for a, b in orders]
    reasons = check(decisions, limits=limits)
    accepted = [d for d, r in zip(decisions, reasons, strict=True) if r == "ok"]
    assert len({d.asset for d in accepted}) == len(accepted)
    assert len(accepted) <= max_open
    assert sum(d.budget for d in accepted) <= limits.max_total_budget
