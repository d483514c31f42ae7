"""position_guard's rules, one per test: kill switch, time stop, market change, TP/SL on positions
and sessions. Pure: a GuardState in, decisions out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.domain import ClosePosition, CloseSession, SessionView
from strategies.base import GuardState, ManagedPosition, StrategyParamsError
from strategies.position_guard import PositionGuard, parse_transition

HOUR = 3_600_000
NOW = 100 * HOUR


def position(**kw: Any) -> ManagedPosition:
    base: dict[str, Any] = dict(
        position_id="7",
        amount=1_000_000_000,
        pnl=0,
        close_pnl=None,
        opened_at_ms=NOW - HOUR,
        market_status=1,
        first_market_status=1,
    )
    base.update(kw)
    return ManagedPosition(**base)


def session(**kw: Any) -> SessionView:
    base: dict[str, Any] = dict(
        session_id="s1",
        asset="BTC",
        kind="quick",
        budget=Decimal(100),
        opened_at_ms=NOW - HOUR,
        strategy="x",
    )
    base.update(kw)
    return SessionView(**base)


def state(
    positions: tuple[ManagedPosition, ...] = (),
    sessions: tuple[SessionView, ...] = (),
    paused: bool = False,
) -> GuardState:
    return GuardState(now_ms=NOW, sessions=sessions, positions=positions, paused=paused)


def reasons(guard: PositionGuard, st: GuardState) -> list[str]:
    return [d.reason for d in guard.manage(st)]


def test_nothing_to_do_decides_nothing() -> None:
    assert PositionGuard({}).manage(state((position(),), (session(),))) == []


def test_kill_switch_closes_every_position_and_session() -> None:
    out = PositionGuard({}).manage(state((position(),), (session(),), paused=True))
    assert {type(d) for d in out} == {ClosePosition, CloseSession}
    assert all(d.reason == "kill switch" for d in out)


def test_kill_switch_closes_nothing_when_close_all_when_paused_is_off() -> None:
    guard = PositionGuard({"close_all_when_paused": False})
    assert guard.manage(state((position(),), (session(),), paused=True)) == []


def test_position_time_stop_closes_at_the_age_not_before() -> None:
    guard = PositionGuard({"positions_max_age_h": 2})
    young = position(opened_at_ms=NOW - 2 * HOUR + 1)
    old = position(position_id="8", opened_at_ms=NOW - 2 * HOUR)
    out = guard.manage(state((young, old)))
    assert [(d.position_id, d.reason) for d in out] == [("8", "time stop (2 h)")]  # type: ignore[union-attr]


def test_market_change_from_first_seen_status_closes() -> None:
    out = PositionGuard({}).manage(state((position(first_market_status=1, market_status=2),)))
    assert [d.reason for d in out] == ["market status changed 1 -> 2"]


def test_position_first_seen_on_a_live_market_is_not_a_change() -> None:
    assert (
        PositionGuard({}).manage(state((position(first_market_status=2, market_status=2),))) == []
    )


def test_unknown_baseline_is_not_a_change() -> None:
    assert (
        PositionGuard({}).manage(state((position(first_market_status=None, market_status=3),)))
        == []
    )


def test_market_change_honours_the_configured_transitions_only() -> None:
    guard = PositionGuard({"market_transitions": ["*->4"]})
    assert guard.manage(state((position(market_status=2),))) == []
    out = guard.manage(state((position(market_status=4),)))
    assert [d.reason for d in out] == ["market status changed 1 -> 4"]


def test_market_change_rule_can_be_switched_off() -> None:
    guard = PositionGuard({"close_on_market_change": False})
    assert guard.manage(state((position(market_status=2),))) == []


def test_bad_transition_is_a_params_error_naming_it() -> None:
    with pytest.raises(StrategyParamsError, match="market_transitions"):
        PositionGuard({"market_transitions": ["open->closed"]})
    assert parse_transition(" * -> 4 ") == (None, 4)


def test_position_take_profit_on_close_pnl_before_pnl() -> None:
    guard = PositionGuard({"positions_take_profit_pct": 10})
    hit = position(pnl=0, close_pnl=100_000_000)
    not_hit = position(position_id="8", pnl=500_000_000, close_pnl=99_999_999)
    out = guard.manage(state((hit, not_hit)))
    assert [(d.position_id, d.reason) for d in out] == [("7", "profit target (10.00 % >= 10 %)")]  # type: ignore[union-attr]


def test_position_stop_loss_on_pnl_when_no_close_pnl() -> None:
    guard = PositionGuard({"positions_stop_loss_pct": 25})
    out = guard.manage(
        state((position(pnl=-250_000_000), position(position_id="8", pnl=-249_999_999)))
    )
    assert [d.position_id for d in out] == ["7"]  # type: ignore[union-attr]
    assert out[0].reason.startswith("stop loss (-25.00 %")


def test_position_without_stake_is_never_closed_on_pnl() -> None:
    guard = PositionGuard({"positions_take_profit_pct": 1, "positions_stop_loss_pct": 1})
    assert guard.manage(state((position(amount=0, pnl=-5),))) == []


def test_session_time_stop_and_targets() -> None:
    guard = PositionGuard({"max_age_h": 5, "take_profit_pct": 3, "stop_loss_pct": 2})
    out = guard.manage(
        state(
            sessions=(
                session(asset="BTC", opened_at_ms=NOW - 5 * HOUR),
                session(asset="ETH", unrealized_pnl=Decimal(3)),
                session(asset="SOL", unrealized_pnl=Decimal(-2)),
                session(asset="XRP", unrealized_pnl=Decimal("2.99")),
            )
        )
    )
    assert {d.asset: d.reason.split(" (")[0] for d in out} == {  # type: ignore[union-attr]
        "BTC": "time stop",
        "ETH": "profit target",
        "SOL": "adverse move",
    }


def test_guard_never_reads_payout_expected() -> None:
    assert "payout_expected" not in {f for f in ManagedPosition.__dataclass_fields__}
