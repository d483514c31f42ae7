"""The session model: hand-computed examples, validation, and money-conservation properties."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import ExecutionStrategy, Side, StrategyDuration
from bot.market import session_model as sm
from bot.market.session_model import (
    DEFAULT_PRESETS,
    EXIT_NONE,
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    LONG,
    SHORT,
    TAKER_FEE_RATE,
    AdvancedPreset,
    FeeSchedule,
    Fill,
    InsufficientBalance,
    MaxPositionsReached,
    Position,
    ReentryNotAllowed,
    SessionClosed,
    SessionModelError,
    SessionSpec,
    SessionState,
    Wallet,
    advanced_spec,
    entry_qty,
    exit_levels,
    fee,
    intrabar_exit,
    position_pnl,
    presets_from_mapping,
    quick_spec,
    settle,
    to_decimal,
)

MINUTE = 60_000
DAY = 86_400_000


def canonical_state() -> SessionState:
    """Quick session that reproduces the canonical backtest: 100 USDC, TP 2 %, SL 1 %, 1x."""
    return SessionState(quick_spec(100.0, 2.0, 1.0, 1, 0, 0))


# ---------------------------------------------------------------------------------------------
# Scalar core, by hand.
# ---------------------------------------------------------------------------------------------


class TestScalarCore:
    def test_fee_per_side_on_notional(self) -> None:
        assert fee(100.0, TAKER_FEE_RATE) == pytest.approx(0.045)
        assert fee(102.0, TAKER_FEE_RATE) == pytest.approx(0.0459)
        assert fee(-100.0, TAKER_FEE_RATE) == pytest.approx(0.045)  # short notional sign
        assert FeeSchedule().rate == TAKER_FEE_RATE
        assert FeeSchedule(builder=0.0001).rate == pytest.approx(0.00055)

    def test_fee_schedule_rejects_nonsense(self) -> None:
        with pytest.raises(ValueError, match=r"fees\.taker"):
            FeeSchedule(taker=-0.1)
        with pytest.raises(ValueError, match=r"fees\.builder"):
            FeeSchedule(builder=0.5)

    def test_entry_qty_uses_margin_times_leverage(self) -> None:
        assert entry_qty(100.0, 1.0, 100.0) == pytest.approx(1.0)
        assert entry_qty(100.0, 5.0, 50.0) == pytest.approx(10.0)

    @pytest.mark.parametrize(
        ("side", "leverage", "tp_pct", "sl_pct", "expected"),
        [
            (LONG, 1.0, 2.0, 1.0, (102.0, 99.0)),
            (SHORT, 1.0, 2.0, 1.0, (98.0, 101.0)),
            # At 5x, 10 % / 5 % of margin are 2 % / 1 % of price.
            (LONG, 5.0, 10.0, 5.0, (102.0, 99.0)),
            (SHORT, 5.0, 10.0, 5.0, (98.0, 101.0)),
            (LONG, 5.0, 2.0, 1.0, (100.4, 99.8)),
            (SHORT, 5.0, 2.0, 1.0, (99.6, 100.2)),
        ],
    )
    def test_exit_levels(
        self,
        side: int,
        leverage: float,
        tp_pct: float,
        sl_pct: float,
        expected: tuple[float, float],
    ) -> None:
        tp, sl = exit_levels(100.0, side, leverage, tp_pct, sl_pct)
        assert (tp, sl) == pytest.approx(expected)

    def test_long_bar_touching_both_levels_stops(self) -> None:
        assert intrabar_exit(LONG, 100.0, 103.0, 98.5, 102.0, 99.0) == (EXIT_STOP_LOSS, 99.0)

    def test_short_bar_touching_both_levels_stops(self) -> None:
        assert intrabar_exit(SHORT, 100.0, 101.5, 97.0, 98.0, 101.0) == (EXIT_STOP_LOSS, 101.0)

    def test_touches_one_level(self) -> None:
        assert intrabar_exit(LONG, 100.0, 102.5, 99.5, 102.0, 99.0) == (EXIT_TAKE_PROFIT, 102.0)
        assert intrabar_exit(SHORT, 100.0, 100.5, 97.5, 98.0, 101.0) == (EXIT_TAKE_PROFIT, 98.0)
        code, price = intrabar_exit(LONG, 100.0, 101.0, 99.5, 102.0, 99.0)
        assert code == EXIT_NONE
        assert math.isnan(price)

    def test_gap_through_stop_fills_at_the_worse_open(self) -> None:
        assert intrabar_exit(LONG, 98.0, 98.5, 97.0, 102.0, 99.0) == (EXIT_STOP_LOSS, 98.0)
        assert intrabar_exit(SHORT, 103.0, 104.0, 102.5, 98.0, 101.0) == (EXIT_STOP_LOSS, 103.0)

    def test_gap_through_target_fills_at_the_better_open(self) -> None:
        assert intrabar_exit(LONG, 103.0, 104.0, 98.0, 102.0, 99.0) == (EXIT_TAKE_PROFIT, 103.0)
        assert intrabar_exit(SHORT, 97.0, 102.0, 96.0, 98.0, 101.0) == (EXIT_TAKE_PROFIT, 97.0)

    def test_position_pnl_is_gross(self) -> None:
        assert position_pnl(LONG, 1.0, 100.0, 102.0) == pytest.approx(2.0)
        assert position_pnl(SHORT, 1.0, 100.0, 102.0) == pytest.approx(-2.0)
        assert position_pnl(SHORT, 2.0, 100.0, 98.0) == pytest.approx(4.0)

    def test_settle_caps_the_loss_at_the_margin_fees_included(self) -> None:
        # 10x: 100 margin, qty 10 at 100; a gap to 80 would lose 200.
        entry_fee = fee(1000.0, TAKER_FEE_RATE)
        gross, exit_fee, liquidated = settle(LONG, 10.0, 100.0, 80.0, 100.0, entry_fee, 0.00045)
        assert liquidated == 1
        assert exit_fee == pytest.approx(0.36)
        assert gross - entry_fee - exit_fee == pytest.approx(-100.0)
        gross, _, liquidated = settle(LONG, 10.0, 100.0, 99.0, 100.0, entry_fee, 0.00045)
        assert gross == pytest.approx(-10.0)
        assert liquidated == 0

    def test_canonical_round_trip_with_scalars(self) -> None:
        """Long at the next open, TP +2 %, 0.045 % per side: net = 2.0 - 0.0909."""
        qty = entry_qty(100.0, 1.0, 100.0)
        entry_fee = fee(qty * 100.0, TAKER_FEE_RATE)
        tp, sl = exit_levels(100.0, LONG, 1.0, 2.0, 1.0)
        code, price = intrabar_exit(LONG, 100.0, 102.5, 99.5, tp, sl)
        assert code == EXIT_TAKE_PROFIT
        gross, exit_fee, liquidated = settle(
            LONG, qty, 100.0, price, 100.0, entry_fee, TAKER_FEE_RATE
        )
        assert liquidated == 0
        assert gross == pytest.approx(2.0)
        assert entry_fee + exit_fee == pytest.approx(0.045 + 0.0459)
        assert gross - entry_fee - exit_fee == pytest.approx(1.9091)

    def test_scalar_core_calls_nothing_numba_could_not_see(self) -> None:
        """Each core function may only use arithmetic, abs, math.nan and module constants."""
        allowed = {"abs", "math", "nan", "EXIT_NONE", "EXIT_TAKE_PROFIT", "EXIT_STOP_LOSS"}
        for func in sm.SCALAR_CORE:
            assert set(func.__code__.co_names) <= allowed, func.__name__

    def test_scalar_core_compiles_with_numba(self) -> None:
        numba = pytest.importorskip("numba")
        jitted = {f.__name__: numba.njit(f) for f in sm.SCALAR_CORE}
        assert jitted["exit_levels"](100.0, LONG, 5.0, 10.0, 5.0) == pytest.approx((102.0, 99.0))
        assert jitted["intrabar_exit"](LONG, 98.0, 98.5, 97.0, 102.0, 99.0) == (2, 98.0)
        assert jitted["settle"](LONG, 1.0, 100.0, 102.0, 100.0, 0.045, 0.00045) == (
            settle(LONG, 1.0, 100.0, 102.0, 100.0, 0.045, 0.00045)
        )


# ---------------------------------------------------------------------------------------------
# Session state, by hand.
# ---------------------------------------------------------------------------------------------


class TestQuickSession:
    def test_canonical_take_profit(self) -> None:
        state = canonical_state()
        pos = state.open_position(Side.LONG, 100.0, MINUTE)
        assert (pos.qty, pos.margin, pos.tp_price, pos.sl_price) == pytest.approx(
            (1.0, 100.0, 102.0, 99.0)
        )
        assert state.margin_in_use == pytest.approx(100.0)
        assert state.cash == pytest.approx(0.0)
        [fill] = state.on_bar(2 * MINUTE, 100.0, 102.5, 99.5, 101.0)
        assert fill.reason == "take_profit"
        assert fill.exit_price == pytest.approx(102.0)
        assert fill.gross_pnl == pytest.approx(2.0)
        assert fill.fees == pytest.approx(0.0909)
        assert fill.net_pnl == pytest.approx(1.9091)
        assert state.cash == pytest.approx(101.9091)
        assert state.realised_pnl == pytest.approx(2.0)
        assert state.fees_paid == pytest.approx(0.0909)
        assert state.is_active  # quick sessions re-enter until closed
        assert state.conservation_error() == pytest.approx(0.0, abs=1e-12)

    def test_canonical_bar_touching_both_stops(self) -> None:
        state = canonical_state()
        state.open_position(LONG, 100.0, MINUTE)
        [fill] = state.on_bar(2 * MINUTE, 100.0, 103.0, 98.5, 101.0)
        assert fill.reason == "stop_loss"
        assert fill.exit_price == pytest.approx(99.0)
        assert fill.gross_pnl == pytest.approx(-1.0)
        assert fill.fees == pytest.approx(0.045 + 0.04455)

    def test_gap_through_stop_fills_at_open(self) -> None:
        state = canonical_state()
        state.open_position(LONG, 100.0, MINUTE)
        assert state.on_bar(2 * MINUTE, 100.0, 101.0, 99.5, 100.5) == []
        [fill] = state.on_bar(3 * MINUTE, 97.0, 98.0, 96.0, 97.5)
        assert fill.reason == "stop_loss"
        assert fill.exit_price == pytest.approx(97.0)
        assert fill.gross_pnl == pytest.approx(-3.0)

    def test_short_take_profit(self) -> None:
        state = canonical_state()
        pos = state.open_position(Side.SHORT, 100.0, MINUTE)
        assert (pos.tp_price, pos.sl_price) == pytest.approx((98.0, 101.0))
        [fill] = state.on_bar(2 * MINUTE, 100.0, 100.5, 97.9, 98.5)
        assert fill.reason == "take_profit"
        assert fill.gross_pnl == pytest.approx(2.0)
        assert fill.fees == pytest.approx(0.045 + 0.0441)

    def test_stake_is_budget_over_max_positions(self) -> None:
        state = SessionState(quick_spec(90.0, 10.0, 5.0, 3, 1, 0))
        for _ in range(3):
            assert state.open_position(LONG, 10.0, MINUTE).margin == pytest.approx(30.0)
        with pytest.raises(MaxPositionsReached, match="3 of 3"):
            state.open_position(LONG, 10.0, MINUTE)

    def test_stake_shrinks_to_remaining_cash_after_a_loss(self) -> None:
        state = canonical_state()
        state.open_position(LONG, 100.0, MINUTE)
        state.close_position(0, 95.0, 2 * MINUTE)
        pos = state.open_position(LONG, 95.0, 3 * MINUTE)
        assert pos.margin == pytest.approx(100.0 - 5.0 - 0.045 - 0.04275)

    def test_leverage_caps_loss_at_margin(self) -> None:
        state = SessionState(quick_spec(100.0, 50.0, 50.0, 1, 0, 0, leverage=10.0))
        state.open_position(LONG, 100.0, MINUTE)
        [fill] = state.on_bar(2 * MINUTE, 80.0, 81.0, 79.0, 80.5)
        assert fill.liquidated
        assert fill.net_pnl == pytest.approx(-100.0)
        assert state.cash == 0.0
        assert (state.status, state.close_reason) == ("closed", "budget_exhausted")

    def test_positions_opened_after_the_bar_are_skipped(self) -> None:
        state = canonical_state()
        state.open_position(LONG, 100.0, 5 * MINUTE)
        assert state.on_bar(4 * MINUTE, 100.0, 110.0, 90.0, 100.0) == []
        assert len(state.positions) == 1

    def test_equity_and_unrealised(self) -> None:
        state = canonical_state()
        state.open_position(LONG, 100.0, MINUTE)
        assert state.unrealised(101.0) == pytest.approx(1.0)
        assert state.equity(101.0) == pytest.approx(101.0 - 0.045 - 0.04545)
        assert state.fees_accrued == pytest.approx(0.045)

    def test_close_session_then_refuse(self) -> None:
        state = canonical_state()
        state.open_position(LONG, 100.0, MINUTE)
        [fill] = state.close_session(100.5, 2 * MINUTE)
        assert fill.reason == "session_close"
        assert (state.status, state.close_reason, state.closed_at_ms) == (
            "closed",
            "session_close",
            2 * MINUTE,
        )
        with pytest.raises(SessionClosed):
            state.open_position(LONG, 100.0, 3 * MINUTE)
        assert state.close_session(100.0, 3 * MINUTE) == []
        assert state.on_bar(3 * MINUTE, 100.0, 200.0, 50.0, 100.0) == []

    def test_close_all_keeps_quick_session_open(self) -> None:
        state = SessionState(quick_spec(100.0, 10.0, 5.0, 2, 0, 0))
        state.open_position(LONG, 100.0, MINUTE)
        state.open_position(SHORT, 100.0, MINUTE)
        fills = state.close_all(101.0, 2 * MINUTE)
        assert [f.seq for f in fills] == [1, 2]
        assert sum(f.gross_pnl for f in fills) == pytest.approx(0.0)
        assert state.is_active
        assert state.positions == []

    def test_bad_inputs(self) -> None:
        state = canonical_state()
        with pytest.raises(ValueError, match="side"):
            state.open_position(0, 100.0, MINUTE)
        with pytest.raises(ValueError, match="price"):
            state.open_position(LONG, -1.0, MINUTE)
        with pytest.raises(IndexError, match="no open position"):
            state.close_position(0, 100.0, MINUTE)
        state.open_position(LONG, 100.0, MINUTE)
        with pytest.raises(ValueError, match="reason"):
            state.close_position(0, 100.0, MINUTE, "because")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="inconsistent"):
            state.on_bar(2 * MINUTE, 100.0, 99.0, 98.0, 98.5)


class TestAdvancedSession:
    def test_conservative_preset_levels(self) -> None:
        spec = advanced_spec(100.0, "Conservative", "1D", 0, 0)
        assert (spec.leverage, spec.tp_pct, spec.sl_pct, spec.reentry) == (2.0, 3.0, 1.5, False)
        assert spec.duration_s == 86_400
        assert spec.ends_at_ms == DAY
        pos = SessionState(spec).open_position(LONG, 100.0, 0)
        assert pos.qty == pytest.approx(2.0)
        assert (pos.tp_price, pos.sl_price) == pytest.approx((101.5, 99.25))

    def test_time_stop_at_the_close_of_the_bar_reaching_the_deadline(self) -> None:
        state = SessionState(advanced_spec(100.0, ExecutionStrategy.AGGRESSIVE, "1D", 2, 0))
        state.open_position(LONG, 100.0, 0)
        assert state.on_bar(DAY - MINUTE, 100.0, 100.5, 99.5, 100.2) == []
        [fill] = state.on_bar(DAY, 100.2, 100.6, 99.9, 100.4)
        assert (fill.reason, fill.closed_at_ms) == ("time_stop", DAY)
        assert fill.exit_price == pytest.approx(100.4)
        assert (state.status, state.close_reason) == ("closed", "time_stop")

    def test_tp_inside_deadline_bar_wins_over_time_stop(self) -> None:
        state = SessionState(advanced_spec(100.0, "Aggressive", "1D", 2, 0))
        state.open_position(LONG, 100.0, 0)  # 5x, TP 8 % -> +1.6 %
        [fill] = state.on_bar(DAY, 100.0, 101.7, 99.9, 100.1)
        assert fill.reason == "take_profit"
        assert state.close_reason == "time_stop"

    def test_cannot_open_after_duration(self) -> None:
        state = SessionState(advanced_spec(100.0, "Degen", "1D", 0, 1_000))
        with pytest.raises(SessionClosed, match="duration ended"):
            state.open_position(LONG, 100.0, 1_000 + DAY)

    def test_no_reentry_completes_after_last_position(self) -> None:
        state = SessionState(advanced_spec(100.0, "Conservative", "7D", 0, 0))
        state.open_position(LONG, 100.0, 0)
        [fill] = state.on_bar(MINUTE, 100.0, 101.6, 99.9, 101.0)
        assert fill.reason == "take_profit"
        assert (state.status, state.close_reason) == ("closed", "completed")
        with pytest.raises(SessionClosed):
            state.open_position(LONG, 100.0, 2 * MINUTE)

    def test_no_reentry_refuses_a_new_position_while_one_is_still_open(self) -> None:
        presets = presets_from_mapping({"Conservative": {"max_positions": 2}})
        state = SessionState(advanced_spec(100.0, "Conservative", "7D", 0, 0, presets=presets))
        state.open_position(LONG, 100.0, 0)
        state.open_position(LONG, 100.0, 0)
        state.close_position(0, 100.0, MINUTE)
        with pytest.raises(ReentryNotAllowed):
            state.open_position(LONG, 100.0, MINUTE)
        assert state.is_active

    def test_reentry_presets_reopen(self) -> None:
        state = SessionState(advanced_spec(100.0, "Degen", "1D", 0, 0))
        for t in range(1, 6):
            state.open_position(SHORT, 100.0, t * MINUTE)
            state.close_position(0, 100.0, t * MINUTE)
        assert state.is_active
        assert state.positions_opened == 5

    def test_max_wallet_budget_uses_free_balance(self) -> None:
        spec = advanced_spec(10.0, "Degen", "3D", 0, 0, free_balance=1234.5, max_wallet_budget=True)
        assert spec.budget == 1234.5
        assert spec.margin_per_position == pytest.approx(1234.5 / 3)


# ---------------------------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------------------------


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"budget": 9.99}, "budget"),
            ({"budget": math.nan}, "budget"),
            ({"profit_target": 500.01}, "profitTarget"),
            ({"profit_target": 0.0}, "profitTarget"),
            ({"profit_target": -1.0}, "profitTarget"),
            ({"loss_threshold": 0.0}, "lossThreshold"),
            ({"loss_threshold": 101.0}, "lossThreshold"),
            ({"max_positions": 0}, "maxPositions"),
            ({"max_positions": 1.5}, "maxPositions"),
            ({"asset_index": -1}, "assetIndex"),
            ({"budget": True}, "budget"),
            ({"budget": "100"}, "budget"),
        ],
    )
    def test_quick_spec_rejects(self, kwargs: dict[str, object], field: str) -> None:
        args: dict[str, object] = {
            "budget": 100.0,
            "profit_target": 40.0,
            "loss_threshold": 5.0,
            "max_positions": 3,
            "asset_index": 0,
            "opened_at_ms": 0,
        }
        args.update(kwargs)
        with pytest.raises(ValueError, match=field):
            quick_spec(**args)  # type: ignore[arg-type]

    def test_quick_spec_limits_are_inclusive(self) -> None:
        spec = quick_spec(10, 500, 100, 1, 0, 0)
        assert (spec.budget, spec.tp_pct, spec.sl_pct) == (10.0, 500.0, 100.0)

    def test_quick_spec_without_loss_threshold_stops_at_the_margin(self) -> None:
        spec = quick_spec(100.0, 40.0, None, 1, 0, 0)
        assert spec.sl_pct == 100.0

    def test_advanced_spec_rejects_unknown_enums(self) -> None:
        with pytest.raises(ValueError, match=r"executionStrategy.*'Yolo'.*Conservative"):
            advanced_spec(100.0, "Yolo", "1D", 0, 0)
        with pytest.raises(ValueError, match=r"strategyDuration.*'2D'.*365D"):
            advanced_spec(100.0, "Degen", "2D", 0, 0)

    def test_advanced_spec_accepts_any_case(self) -> None:
        spec = advanced_spec(100.0, "degen", "30d", 0, 0)
        assert spec.execution_strategy is ExecutionStrategy.DEGEN
        assert spec.strategy_duration is StrategyDuration.D30

    def test_advanced_spec_rejects_small_amount(self) -> None:
        with pytest.raises(ValueError, match="amount"):
            advanced_spec(5.0, "Degen", "1D", 0, 0)

    def test_advanced_spec_checks_balances(self) -> None:
        with pytest.raises(ValueError, match="maxWalletBudget"):
            advanced_spec(100.0, "Degen", "1D", 0, 0, max_wallet_budget=True)
        with pytest.raises(InsufficientBalance, match=r"need 200\.000000.*available 150\.0"):
            advanced_spec(200.0, "Degen", "1D", 0, 0, free_balance=150.0)
        with pytest.raises(InsufficientBalance):
            advanced_spec(10.0, "Degen", "1D", 0, 0, free_balance=5.0, max_wallet_budget=True)

    def test_spec_checks_itself(self) -> None:
        with pytest.raises(ValueError, match="kind"):
            SessionSpec("slow", 0, 100.0, 2.0, 1.0, 1, 1.0, None, 0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="leverage"):
            SessionSpec("quick", 0, 100.0, 2.0, 1.0, 1, 51.0, None, 0)


class TestPresets:
    def test_defaults_are_data(self) -> None:
        assert set(DEFAULT_PRESETS) == set(ExecutionStrategy)
        assert DEFAULT_PRESETS[ExecutionStrategy.DEGEN] == AdvancedPreset(
            10.0, 20.0, 10.0, reentry=True, max_positions=3
        )

    def test_override_merges_fields(self) -> None:
        presets = presets_from_mapping({"Degen": {"leverage": 20, "tp_pct": 30.0}})
        degen = presets[ExecutionStrategy.DEGEN]
        assert (degen.leverage, degen.tp_pct, degen.sl_pct) == (20.0, 30.0, 10.0)
        assert (
            presets[ExecutionStrategy.CONSERVATIVE]
            == DEFAULT_PRESETS[ExecutionStrategy.CONSERVATIVE]
        )
        assert DEFAULT_PRESETS[ExecutionStrategy.DEGEN].leverage == 10.0  # untouched

    @pytest.mark.parametrize(
        ("mapping", "message"),
        [
            ({"Degen": {"leverage": 60}}, r"presets\.Degen\.leverage.*between 1 and 50"),
            ({"Degen": {"leverage": 0.5}}, r"presets\.Degen\.leverage"),
            ({"Degen": {"leverage": True}}, r"presets\.Degen\.leverage.*number"),
            ({"Aggressive": {"tp_pct": 0}}, r"presets\.Aggressive\.tp_pct.*> 0"),
            ({"Aggressive": {"sl_pct": -1}}, r"presets\.Aggressive\.sl_pct"),
            ({"Aggressive": {"reentry": "yes"}}, r"presets\.Aggressive\.reentry"),
            ({"Aggressive": {"max_positions": 0}}, r"presets\.Aggressive\.max_positions"),
            ({"Aggressive": {"lev": 2}}, r"presets\.Aggressive\.lev.*unknown preset field"),
            ({"Yolo": {"leverage": 2}}, r"presets\.Yolo.*expected one of"),
            ({"Degen": 3}, r"presets\.Degen.*table"),
        ],
    )
    def test_bad_config_names_the_key(self, mapping: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            presets_from_mapping(mapping)  # type: ignore[arg-type]

    def test_preset_validates_when_built_directly(self) -> None:
        with pytest.raises(ValueError, match=r"preset\.leverage"):
            AdvancedPreset(100.0, 1.0, 1.0, reentry=True, max_positions=1)


class TestBoundary:
    def test_to_decimal_quantizes(self) -> None:
        assert to_decimal(2.0 - 0.0909) == Decimal("1.909100")
        assert to_decimal(1.9091000000000002) == Decimal("1.909100")
        assert to_decimal(0.1 + 0.2, places=2) == Decimal("0.30")
        assert to_decimal(0.0000005) == Decimal("0.000000")  # half-even
        assert to_decimal(0.0000015) == Decimal("0.000002")
        assert str(to_decimal(-0.0)) == "0.000000"
        assert to_decimal(1e20) == Decimal("100000000000000000000.000000")

    def test_to_decimal_refuses_non_finite(self) -> None:
        with pytest.raises(ValueError, match="non-finite"):
            to_decimal(math.inf)
        with pytest.raises(ValueError, match="places"):
            to_decimal(1.0, places=-1)

    def test_to_decimal_refuses_amounts_too_large_to_write_down(self) -> None:
        with pytest.raises(ValueError, match=r"too large for 6 decimal places"):
            to_decimal(1.7976931348623157e308)
        assert to_decimal(1e50) == Decimal(10) ** 50


class TestWallet:
    def test_lock_and_release(self) -> None:
        wallet = Wallet(100.0)
        wallet.lock(100.0)
        assert (wallet.balance, wallet.locked) == (0.0, 100.0)
        returned = wallet.release(100.0, 2.0, 0.0909)
        assert returned == pytest.approx(101.9091)
        assert wallet.balance == pytest.approx(101.9091)
        assert wallet.conservation_error() == pytest.approx(0.0, abs=1e-12)

    def test_refuses_to_go_negative(self) -> None:
        wallet = Wallet(50.0)
        with pytest.raises(InsufficientBalance, match=r"need 60\.000000 USDC, available 50"):
            wallet.lock(60.0)
        with pytest.raises(InsufficientBalance) as info:
            wallet.withdraw(51.0)
        assert (info.value.needed, info.value.available) == (51.0, 50.0)
        wallet.lock(10.0)
        with pytest.raises(InsufficientBalance):
            wallet.release(10.0, -100.0, 0.0)
        with pytest.raises(ValueError, match="only 10"):
            wallet.release(20.0, 0.0, 0.0)
        assert (wallet.balance, wallet.locked) == (40.0, 10.0)  # refusals change nothing

    def test_deposits_and_withdrawals_move_the_baseline(self) -> None:
        wallet = Wallet(0.0)
        wallet.deposit(25.0)
        wallet.withdraw(5.0)
        assert (wallet.balance, wallet.net_deposits) == (20.0, 20.0)
        assert wallet.conservation_error() == 0.0


# ---------------------------------------------------------------------------------------------
# Properties.
# ---------------------------------------------------------------------------------------------

_move = st.floats(-0.3, 0.3, allow_nan=False)
_wick = st.floats(0.0, 0.1, allow_nan=False)
_ops = st.one_of(
    st.tuples(st.just("open"), st.sampled_from([LONG, SHORT])),
    st.tuples(st.just("bar"), _move, _wick, _wick, st.floats(-0.1, 0.1)),
    st.tuples(st.just("close"), st.integers(0, 4), _move),
    st.tuples(st.just("close_all"), _move),
    st.tuples(st.just("close_session"), _move),
)


@st.composite
def _specs(draw: st.DrawFn) -> SessionSpec:
    if draw(st.booleans()):
        return quick_spec(
            draw(st.floats(10.0, 1e6)),
            draw(st.floats(0.1, 500.0)),
            draw(st.one_of(st.none(), st.floats(0.1, 100.0))),
            draw(st.integers(1, 4)),
            0,
            0,
            leverage=draw(st.sampled_from([1.0, 3.0, 10.0, 50.0])),
        )
    return advanced_spec(
        draw(st.floats(10.0, 1e6)),
        draw(st.sampled_from(list(ExecutionStrategy))),
        StrategyDuration.D1,
        0,
        0,
    )


def _scale(state: SessionState) -> float:
    return state.spec.budget + abs(state.realised_pnl) + state.fees_paid + state.cash


def _check_fill_prices(fill: Fill, before: dict[int, Position]) -> None:
    """TP fills at the target or better (gap); SL at the stop or worse (gap)."""
    pos = before[fill.seq]
    if fill.reason == "take_profit":
        assert pos.side * (fill.exit_price - pos.tp_price) >= 0.0
    elif fill.reason == "stop_loss":
        assert pos.side * (fill.exit_price - pos.sl_price) <= 0.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=_specs(),
    ops=st.lists(_ops, max_size=60),
    dt=st.integers(MINUTE, 12 * 3_600_000),
    builder=st.sampled_from([0.0, 0.0001, 0.001]),
)
def test_money_is_conserved_and_limits_hold(
    spec: SessionSpec,
    ops: list[tuple[object, ...]],
    dt: int,
    builder: float,
) -> None:
    wallet = Wallet(spec.budget * 2)
    wallet.lock(spec.budget)
    state = SessionState(spec, FeeSchedule(builder=builder))
    price = 100.0
    now = 0
    for op in ops:
        now += dt
        kind = op[0]
        was_closed = not state.is_active
        before = {p.seq: p for p in state.positions}
        fills: list[Fill] = []
        if kind == "open":
            side = op[1]
            assert isinstance(side, int)
            try:
                state.open_position(side, price, now)
            except SessionModelError as exc:
                if was_closed:
                    assert isinstance(exc, SessionClosed)
        elif kind == "bar":
            _, move, up, down, drift = op
            assert isinstance(move, float) and isinstance(drift, float)
            assert isinstance(up, float) and isinstance(down, float)
            open_ = price * (1.0 + move)
            close = open_ * (1.0 + drift)
            high = max(open_, close) * (1.0 + up)
            low = min(open_, close) * (1.0 - down)
            fills = state.on_bar(now, open_, high, low, close)
            for fill in fills:
                _check_fill_prices(fill, before)
            price = close
        else:
            move = op[-1]
            assert isinstance(move, float)
            price *= 1.0 + move
            if kind == "close":
                index = op[1]
                assert isinstance(index, int)
                if index < len(state.positions):
                    fills = [state.close_position(index, price, now)]
            elif kind == "close_all":
                fills = state.close_all(price, now)
            else:
                fills = state.close_session(price, now)
        if was_closed:
            assert fills == []
            with pytest.raises(SessionClosed):
                state.open_position(LONG, price, now)
        for fill in fills:
            assert fill.net_pnl >= -fill.margin * (1.0 + 1e-12)
        assert len(state.positions) <= spec.max_positions
        assert state.cash >= 0.0
        assert abs(state.conservation_error()) <= 1e-9 * _scale(state)
        if not spec.reentry:
            assert state.positions_opened <= spec.max_positions

    # Closing at the mark realises exactly the mark-to-close equity.
    expected = state.equity(price)
    state.close_session(price, now + dt)
    assert state.cash == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert state.margin_in_use == 0.0
    assert abs(state.conservation_error()) <= 1e-9 * _scale(state)

    # The wallet ledger settles the session without going negative and stays conserved.
    returned = wallet.release(spec.budget, state.realised_pnl, state.fees_paid)
    assert returned == pytest.approx(state.cash, rel=1e-9, abs=1e-9)
    assert wallet.balance >= 0.0
    assert abs(wallet.conservation_error()) <= 1e-9 * (wallet.net_deposits + abs(returned))


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from([LONG, SHORT]),
    leverage=st.floats(1.0, 50.0),
    tp_pct=st.floats(0.1, 500.0),
    sl_pct=st.floats(0.1, 100.0),
    open_move=st.floats(-0.5, 0.5),
    up=st.floats(0.0, 0.5),
    down=st.floats(0.0, 0.5),
)
def test_intrabar_fill_prices(
    side: int,
    leverage: float,
    tp_pct: float,
    sl_pct: float,
    open_move: float,
    up: float,
    down: float,
) -> None:
    tp, sl = exit_levels(100.0, side, leverage, tp_pct, sl_pct)
    open_ = 100.0 * (1.0 + open_move)
    high, low = open_ * (1.0 + up), open_ * (1.0 - down)
    code, price = intrabar_exit(side, open_, high, low, tp, sl)
    if code == EXIT_TAKE_PROFIT:
        assert side * (price - tp) >= 0.0  # target or better
        assert low <= price <= high
    elif code == EXIT_STOP_LOSS:
        assert side * (price - sl) <= 0.0  # stop or worse
        assert low <= price <= high
    else:
        touched_tp = high >= tp if side > 0 else low <= tp
        touched_sl = low <= sl if side > 0 else high >= sl
        assert not (touched_tp or touched_sl)
    both = (high >= tp and low <= sl) if side > 0 else (low <= tp and high >= sl)
    opened_beyond_tp = side * (open_ - tp) >= 0.0
    if both and not opened_beyond_tp:
        assert code == EXIT_STOP_LOSS


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["lock", "release", "deposit", "withdraw"]), _move, _move),
        max_size=50,
    ),
    start=st.floats(0.0, 1e6),
)
def test_wallet_never_negative_and_conserved(
    ops: list[tuple[str, float, float]], start: float
) -> None:
    wallet = Wallet(start)
    locks: list[float] = []
    for kind, a, b in ops:
        amount = abs(a) * 1000.0 + 0.01
        try:
            if kind == "lock":
                wallet.lock(amount)
                locks.append(amount)
            elif kind == "release" and locks:
                margin = locks[-1]
                wallet.release(margin, b * margin * 3.0, abs(a) * margin * 0.01)
                locks.pop()
            elif kind == "deposit":
                wallet.deposit(amount)
            elif kind == "withdraw":
                wallet.withdraw(amount)
        except InsufficientBalance:
            pass
        assert wallet.balance >= 0.0
        assert wallet.locked >= 0.0
        assert wallet.locked == pytest.approx(sum(locks), rel=1e-9, abs=1e-6)
        scale = wallet.net_deposits + abs(wallet.realised_pnl) + wallet.fees_paid + 1.0
        assert abs(wallet.conservation_error()) <= 1e-9 * scale
