"""What a quick or advanced trading session does to money: the project's one explicit model.

The Alura backend does not publish its in-session algorithm, so the simulator, the paper executor
and the backtester all run *this* model, and the README documents it. Its rules:

1. Budget: a quick session's ``budget``; an advanced session's ``amount``, or the whole free
   balance with ``maxWalletBudget``. Each position gets a fixed stake of margin
   ``budget / max_positions``, or whatever cash is left if losses ate into it (no compounding).
2. Size: notional = margin * leverage, quantity = notional / entry price. Quick sessions use
   leverage 1 unless told otherwise; advanced sessions take leverage from their preset.
3. Targets apply **per position**, as % of that position's margin (not to the whole session):
   with leverage L, ``profitTarget`` / ``lossThreshold`` are price moves of tp/L % and sl/L %.
   So a quick session with budget 100, maxPositions 1, leverage 1, TP 2, SL 1 is the canonical
   backtest: TP at +2 % of the entry price, SL at -1 %.
4. Entry is at the price the driver passes (the next candle's open). Exits are checked intrabar
   from high/low; if one bar touches both levels the stop wins (the pessimistic reading). A bar
   that *opens* beyond a level fills at the open: worse than the stop, better than the target.
5. Fees: ``fee_rate * notional`` per side (Hyperliquid taker 0.045 % + optional builder fee),
   on the entry notional at entry and the exit notional at exit; both settle at the close.
6. Isolated margin, no liquidation engine: a position never returns less than zero, i.e. it loses
   at most its margin, fees included; a close that would lose more is floored and flagged.
7. ``strategyDuration`` is a time stop: on the first bar whose close time reaches
   ``opened_at + duration``, after that bar's TP/SL, everything left closes at the bar's close.
8. Re-entry: quick sessions, and presets with ``reentry``, reopen after exits (at most
   ``max_positions`` at once); without it a session opens ``max_positions`` positions in all and
   completes when the last one closes. A session whose cash is gone also closes.
9. Conservation (exact up to float rounding): per session
   ``budget == cash + margin_in_use - realised_pnl + fees_paid``, where ``realised_pnl`` is the
   gross PnL of closed positions and ``fees_paid`` their entry and exit fees; per ``Wallet``
   ``net_deposits == balance + locked - realised_pnl + fees_paid``.
10. Money is ``float`` inside (speed, numba); ``to_decimal`` converts it at the boundary.

The scalar functions at the top use only arithmetic, ``if`` and tuples of numbers, so the
backtest's compiled loop can ``numba.njit`` them unchanged: one copy of the money math.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from enum import Enum
from typing import Any, Final, Literal, TypeVar, get_args

from bot.domain import ExecutionStrategy, Side, StrategyDuration

__all__ = [
    "DEFAULT_PRESETS",
    "EXIT_NONE",
    "EXIT_STOP_LOSS",
    "EXIT_TAKE_PROFIT",
    "LONG",
    "MAX_LEVERAGE",
    "MAX_PROFIT_TARGET",
    "MIN_BUDGET",
    "SCALAR_CORE",
    "SHORT",
    "TAKER_FEE_RATE",
    "AdvancedPreset",
    "ExitReason",
    "FeeSchedule",
    "Fill",
    "InsufficientBalance",
    "MaxPositionsReached",
    "Position",
    "ReentryNotAllowed",
    "SessionCloseReason",
    "SessionClosed",
    "SessionKind",
    "SessionModelError",
    "SessionSpec",
    "SessionState",
    "SessionStatus",
    "Wallet",
    "advanced_spec",
    "entry_qty",
    "exit_levels",
    "fee",
    "intrabar_exit",
    "parse_execution_strategy",
    "parse_strategy_duration",
    "position_pnl",
    "presets_from_mapping",
    "quick_spec",
    "settle",
    "state_from_json",
    "state_to_json",
    "to_decimal",
]

TAKER_FEE_RATE: Final = 0.00045
"""Hyperliquid's base perp taker fee (0.045 %); the backend's orders are market orders."""
MAX_FEE_RATE: Final = 0.01
MIN_BUDGET: Final = 10.0
"""The API rejects a quick session budget below 10 USDC; the model applies it to amount too."""
MAX_PROFIT_TARGET: Final = 500.0
MAX_LOSS_THRESHOLD: Final = 100.0
"""A stop beyond 100 % of the margin could never fire before the margin is gone."""
MIN_LEVERAGE: Final = 1.0
MAX_LEVERAGE: Final = 50.0

LONG: Final = 1
SHORT: Final = -1
EXIT_NONE: Final = 0
EXIT_TAKE_PROFIT: Final = 1
EXIT_STOP_LOSS: Final = 2

_DUST: Final = 1e-9
"""Cash below budget * _DUST counts as gone: float residue must not open dust positions."""

SessionKind = Literal["quick", "advanced"]
SessionStatus = Literal["active", "closed"]
ExitReason = Literal["take_profit", "stop_loss", "manual", "session_close", "time_stop"]
SessionCloseReason = Literal[
    "session_close", "time_stop", "manual", "completed", "budget_exhausted"
]
_EXIT_REASONS: Final = frozenset(get_args(ExitReason))


# --------------------------------------------------------------------------------------------
# Scalar core: floats and ints only, so numba can compile these unchanged.
# --------------------------------------------------------------------------------------------


def fee(notional: float, fee_rate: float) -> float:
    """Fee for one side of a trade; charged on the absolute notional so shorts pay too."""
    return abs(notional) * fee_rate


def entry_qty(margin: float, leverage: float, price: float) -> float:
    """Quantity bought with ``margin`` at ``leverage``: notional = margin * leverage."""
    return margin * leverage / price


def exit_levels(
    entry_price: float, side: int, leverage: float, tp_pct: float, sl_pct: float
) -> tuple[float, float]:
    """(tp_price, sl_price): targets are % of margin, so the price moves are tp/L and sl/L %.

    A level at or below zero (e.g. a short's +100 % target at leverage 1) is simply unreachable.
    """
    tp_move = tp_pct / leverage / 100.0
    sl_move = sl_pct / leverage / 100.0
    return entry_price * (1.0 + side * tp_move), entry_price * (1.0 - side * sl_move)


def intrabar_exit(
    side: int, open_: float, high: float, low: float, tp_price: float, sl_price: float
) -> tuple[int, float]:
    """(code, fill price) for one bar: 0 none (price NaN), 1 take-profit, 2 stop-loss.

    The path inside a bar is unknown, so the stop wins when both levels are touched. A bar that
    opens beyond a level (a gap) fills at the open: worse than the stop, better than the target.
    """
    if side > 0:
        if open_ <= sl_price:
            return EXIT_STOP_LOSS, open_
        if open_ >= tp_price:
            return EXIT_TAKE_PROFIT, open_
        if low <= sl_price:
            return EXIT_STOP_LOSS, sl_price
        if high >= tp_price:
            return EXIT_TAKE_PROFIT, tp_price
        return EXIT_NONE, math.nan
    if open_ >= sl_price:
        return EXIT_STOP_LOSS, open_
    if open_ <= tp_price:
        return EXIT_TAKE_PROFIT, open_
    if high >= sl_price:
        return EXIT_STOP_LOSS, sl_price
    if low <= tp_price:
        return EXIT_TAKE_PROFIT, tp_price
    return EXIT_NONE, math.nan


def position_pnl(side: int, qty: float, entry_price: float, exit_price: float) -> float:
    """Gross PnL of a position (before fees); side is +1 long, -1 short."""
    return side * qty * (exit_price - entry_price)


def settle(
    side: int,
    qty: float,
    entry_price: float,
    exit_price: float,
    margin: float,
    entry_fee: float,
    fee_rate: float,
) -> tuple[float, float, int]:
    """(gross pnl, exit fee, liquidated 0/1) of a close, with the loss capped at the margin.

    Isolated margin without a liquidation engine: the position returns
    ``max(0, margin + gross - fees)``, so when that would be negative the gross PnL is raised to
    ``fees - margin`` and the close is flagged as a liquidation.
    """
    # Inlined rather than calling position_pnl/fee: a jitted function cannot call plain ones.
    gross = side * qty * (exit_price - entry_price)
    exit_fee = abs(qty * exit_price) * fee_rate
    floor = entry_fee + exit_fee - margin
    if gross < floor:
        return floor, exit_fee, 1
    return gross, exit_fee, 0


SCALAR_CORE: Final = (fee, entry_qty, exit_levels, intrabar_exit, position_pnl, settle)
"""What the backtest wraps with ``numba.njit``; none calls another, so each compiles alone."""


# --------------------------------------------------------------------------------------------
# Boundary conversion and validation helpers.
# --------------------------------------------------------------------------------------------

_DECIMAL_CONTEXT: Final = Context(prec=60)


def to_decimal(x: float, places: int = 6) -> Decimal:
    """Float -> Decimal rounded half-even to ``places``, for API bodies and the journal.

    Going through ``repr`` (the shortest round-tripping text) and quantizing keeps binary noise
    such as ``1.9091000000000002`` out of requests and makes journaled amounts comparable.
    """
    if not 0 <= places <= 18:
        raise ValueError(f"places must be between 0 and 18, got {places}")
    if not math.isfinite(x):
        raise ValueError(f"cannot convert non-finite amount {x!r} to Decimal")
    quantum = Decimal(1).scaleb(-places)
    try:
        result = Decimal(repr(float(x))).quantize(
            quantum, rounding=ROUND_HALF_EVEN, context=_DECIMAL_CONTEXT
        )
    except InvalidOperation:  # more digits than the context's 60 (1e300 with 6 places)
        raise ValueError(f"amount {x!r} is too large for {places} decimal places") from None
    return result.copy_abs() if result.is_zero() else result


def _number(key: str, value: object) -> float:
    """A finite real from config or a request; bools and strings are refused, not coerced."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{key}: must be finite, got {value!r}")
    return x


def _integer(key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{key}: must be >= {minimum}, got {value}")
    return value


def _positive(key: str, value: object, maximum: float | None = None) -> float:
    x = _number(key, value)
    if x <= 0:
        raise ValueError(f"{key}: must be > 0, got {value!r}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{key}: must be <= {maximum:g}, got {value!r}")
    return x


def _leverage(key: str, value: object) -> float:
    x = _number(key, value)
    if not MIN_LEVERAGE <= x <= MAX_LEVERAGE:
        raise ValueError(
            f"{key}: must be between {MIN_LEVERAGE:g} and {MAX_LEVERAGE:g}, got {value!r}"
        )
    return x


def _price(key: str, value: float) -> float:
    x = _number(key, value)
    if x <= 0:
        raise ValueError(f"{key}: must be a positive price, got {value!r}")
    return x


def _side(value: Side | int) -> int:
    raw = value.value if isinstance(value, Side) else value
    if isinstance(raw, bool) or raw not in (LONG, SHORT):
        raise ValueError(f"side: expected Side, +1 (long) or -1 (short), got {value!r}")
    return int(raw)


_E = TypeVar("_E", bound=Enum)


def _parse_enum(enum_cls: type[_E], value: object, key: str) -> _E:
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        wanted = value.strip().lower()
        for member in enum_cls:
            if wanted in (str(member.value).lower(), member.name.lower()):
                return member
    allowed = ", ".join(str(m.value) for m in enum_cls)
    raise ValueError(f"{key}: unknown value {value!r}; expected one of {allowed}")


def parse_execution_strategy(
    value: ExecutionStrategy | str, key: str = "executionStrategy"
) -> ExecutionStrategy:
    """Accepts the enum or its API spelling (case-insensitive); the error lists the choices."""
    return _parse_enum(ExecutionStrategy, value, key)


def parse_strategy_duration(
    value: StrategyDuration | str, key: str = "strategyDuration"
) -> StrategyDuration:
    """Accepts the enum or its API spelling (case-insensitive); the error lists the choices."""
    return _parse_enum(StrategyDuration, value, key)


# --------------------------------------------------------------------------------------------
# Data: fees and presets.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Per-side fee rates; the builder fee is what Alura charges on top of Hyperliquid's taker."""

    taker: float = TAKER_FEE_RATE
    builder: float = 0.0

    def __post_init__(self) -> None:
        for key in ("taker", "builder"):
            x = _number(f"fees.{key}", getattr(self, key))
            if not 0.0 <= x <= MAX_FEE_RATE:
                raise ValueError(f"fees.{key}: must be between 0 and {MAX_FEE_RATE}, got {x!r}")

    @property
    def rate(self) -> float:
        return self.taker + self.builder


@dataclass(frozen=True, slots=True)
class AdvancedPreset:
    """What an execution strategy means in the model; data so config can retune it."""

    leverage: float
    tp_pct: float
    sl_pct: float
    reentry: bool
    max_positions: int

    def __post_init__(self) -> None:
        _check_preset(self, "preset")


_PRESET_FIELDS: Final = ("leverage", "tp_pct", "sl_pct", "reentry", "max_positions")


def _check_preset(preset: AdvancedPreset, where: str) -> None:
    _leverage(f"{where}.leverage", preset.leverage)
    _positive(f"{where}.tp_pct", preset.tp_pct)
    _positive(f"{where}.sl_pct", preset.sl_pct, MAX_LOSS_THRESHOLD)
    if not isinstance(preset.reentry, bool):
        raise ValueError(f"{where}.reentry: expected true or false, got {preset.reentry!r}")
    _integer(f"{where}.max_positions", preset.max_positions, 1)


DEFAULT_PRESETS: dict[ExecutionStrategy, AdvancedPreset] = {
    ExecutionStrategy.CONSERVATIVE: AdvancedPreset(2.0, 3.0, 1.5, reentry=False, max_positions=1),
    ExecutionStrategy.AGGRESSIVE: AdvancedPreset(5.0, 8.0, 4.0, reentry=True, max_positions=2),
    ExecutionStrategy.DEGEN: AdvancedPreset(10.0, 20.0, 10.0, reentry=True, max_positions=3),
}
"""Guesses, not the backend's numbers (unpublished): override them with presets_from_mapping."""


def presets_from_mapping(
    mapping: Mapping[str, Mapping[str, object]],
    base: Mapping[ExecutionStrategy, AdvancedPreset] | None = None,
    where: str = "presets",
) -> dict[ExecutionStrategy, AdvancedPreset]:
    """Overlay config (``{"Degen": {"leverage": 20}}``) on ``base``; errors name the bad key.

    Fields not given keep the base preset's value, so config only states what it changes.
    """
    result = dict(DEFAULT_PRESETS if base is None else base)
    for raw_name, fields in mapping.items():
        strategy = parse_execution_strategy(raw_name, key=f"{where}.{raw_name}")
        key = f"{where}.{raw_name}"
        if not isinstance(fields, Mapping):
            raise ValueError(f"{key}: expected a table of preset fields, got {fields!r}")
        unknown = sorted(set(map(str, fields)) - set(_PRESET_FIELDS))
        if unknown:
            raise ValueError(
                f"{key}.{unknown[0]}: unknown preset field; expected {', '.join(_PRESET_FIELDS)}"
            )
        current = result[strategy]
        values: dict[str, object] = {name: getattr(current, name) for name in _PRESET_FIELDS}
        values.update(fields)
        leverage = _leverage(f"{key}.leverage", values["leverage"])
        tp_pct = _positive(f"{key}.tp_pct", values["tp_pct"])
        sl_pct = _positive(f"{key}.sl_pct", values["sl_pct"], MAX_LOSS_THRESHOLD)
        reentry = values["reentry"]
        if not isinstance(reentry, bool):
            raise ValueError(f"{key}.reentry: expected true or false, got {reentry!r}")
        max_positions = _integer(f"{key}.max_positions", values["max_positions"], 1)
        result[strategy] = AdvancedPreset(leverage, tp_pct, sl_pct, reentry, max_positions)
    return result


# --------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------


class SessionModelError(Exception):
    """Base for refusals of the session model (the simulator maps them to HTTP errors)."""


class SessionClosed(SessionModelError):
    """The session is closed or past its duration, so it can open nothing."""


class MaxPositionsReached(SessionModelError):
    """The session already holds max_positions open positions."""


class ReentryNotAllowed(MaxPositionsReached):
    """A no-re-entry session already opened all the positions it ever may."""


class InsufficientBalance(SessionModelError):
    """Not enough money; carries the numbers so callers can report them without parsing."""

    def __init__(self, needed: float, available: float, what: str = "balance") -> None:
        self.needed = needed
        self.available = available
        super().__init__(
            f"insufficient {what}: need {needed:.6f} USDC, available {available:.6f} USDC"
        )


# --------------------------------------------------------------------------------------------
# Session specification.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """Everything the model needs to know about a session, in model units (floats, ms, %)."""

    kind: SessionKind
    asset_index: int
    budget: float
    tp_pct: float
    sl_pct: float
    max_positions: int
    leverage: float
    duration_s: int | None
    opened_at_ms: int
    reentry: bool = True
    execution_strategy: ExecutionStrategy | None = None
    strategy_duration: StrategyDuration | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("quick", "advanced"):
            raise ValueError(f"kind: expected 'quick' or 'advanced', got {self.kind!r}")
        _integer("assetIndex", self.asset_index, 0)
        _positive("budget", self.budget)
        _positive("tp_pct", self.tp_pct)
        _positive("sl_pct", self.sl_pct, MAX_LOSS_THRESHOLD)
        _integer("maxPositions", self.max_positions, 1)
        _leverage("leverage", self.leverage)
        if self.duration_s is not None:
            _integer("duration_s", self.duration_s, 1)
        _integer("opened_at_ms", self.opened_at_ms, 0)

    @property
    def ends_at_ms(self) -> int | None:
        """When the time stop fires; None for sessions without a duration (quick ones)."""
        if self.duration_s is None:
            return None
        return self.opened_at_ms + self.duration_s * 1000

    @property
    def margin_per_position(self) -> float:
        return self.budget / self.max_positions


def quick_spec(
    budget: float,
    profit_target: float,
    loss_threshold: float | None,
    max_positions: int,
    asset_index: int,
    opened_at_ms: int,
    *,
    leverage: float = 1.0,
) -> SessionSpec:
    """Validate a quick session as the API states it (errors name the API fields).

    ``loss_threshold=None`` (the API does not require it) means no stop: the margin is the limit.
    """
    b = _number("budget", budget)
    if b < MIN_BUDGET:
        raise ValueError(f"budget: must be >= {MIN_BUDGET:g} USDC, got {budget!r}")
    tp = _positive("profitTarget", profit_target, MAX_PROFIT_TARGET)
    sl = (
        MAX_LOSS_THRESHOLD
        if loss_threshold is None
        else _positive("lossThreshold", loss_threshold, MAX_LOSS_THRESHOLD)
    )
    return SessionSpec(
        kind="quick",
        asset_index=_integer("assetIndex", asset_index, 0),
        budget=b,
        tp_pct=tp,
        sl_pct=sl,
        max_positions=_integer("maxPositions", max_positions, 1),
        leverage=_leverage("leverage", leverage),
        duration_s=None,
        opened_at_ms=_integer("opened_at_ms", opened_at_ms, 0),
        reentry=True,
    )


def advanced_spec(
    amount: float,
    execution_strategy: ExecutionStrategy | str,
    strategy_duration: StrategyDuration | str,
    asset_index: int,
    opened_at_ms: int,
    *,
    presets: Mapping[ExecutionStrategy, AdvancedPreset] | None = None,
    free_balance: float | None = None,
    max_wallet_budget: bool = False,
) -> SessionSpec:
    """Validate an advanced session and resolve its preset; maxWalletBudget uses all free cash.

    With ``max_wallet_budget`` the ``amount`` is ignored (the API still sends one) and
    ``free_balance`` is required; otherwise ``amount`` may not exceed ``free_balance`` when given.
    """
    strategy = parse_execution_strategy(execution_strategy)
    duration = parse_strategy_duration(strategy_duration)
    table = DEFAULT_PRESETS if presets is None else presets
    if strategy not in table:
        raise ValueError(f"executionStrategy: no preset configured for {strategy.value!r}")
    preset = table[strategy]
    free = None if free_balance is None else _number("free_balance", free_balance)
    if max_wallet_budget:
        if free is None:
            raise ValueError("maxWalletBudget: needs the wallet's free balance, none was given")
        if free < MIN_BUDGET:
            raise InsufficientBalance(MIN_BUDGET, free, "free balance for maxWalletBudget")
        budget = free
    else:
        budget = _number("amount", amount)
        if budget < MIN_BUDGET:
            raise ValueError(f"amount: must be >= {MIN_BUDGET:g} USDC, got {amount!r}")
        if free is not None and budget > free:
            raise InsufficientBalance(budget, free, "free balance")
    return SessionSpec(
        kind="advanced",
        asset_index=_integer("assetIndex", asset_index, 0),
        budget=budget,
        tp_pct=preset.tp_pct,
        sl_pct=preset.sl_pct,
        max_positions=preset.max_positions,
        leverage=preset.leverage,
        duration_s=duration.seconds,
        opened_at_ms=_integer("opened_at_ms", opened_at_ms, 0),
        reentry=preset.reentry,
        execution_strategy=strategy,
        strategy_duration=duration,
    )


# --------------------------------------------------------------------------------------------
# Session state: pure transitions, times passed in.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """An open position; its levels are fixed at entry. ``seq`` numbers positions per session."""

    side: int
    qty: float
    entry_price: float
    entry_fee: float
    margin: float
    opened_at_ms: int
    tp_price: float
    sl_price: float
    seq: int = 0

    @property
    def notional(self) -> float:
        return self.qty * self.entry_price


@dataclass(frozen=True, slots=True)
class Fill:
    """A closed position: what the journal, the simulator's trade logs and reports record."""

    seq: int
    side: int
    qty: float
    margin: float
    entry_price: float
    exit_price: float
    opened_at_ms: int
    closed_at_ms: int
    reason: ExitReason
    gross_pnl: float
    entry_fee: float
    exit_fee: float
    liquidated: bool = False

    @property
    def fees(self) -> float:
        return self.entry_fee + self.exit_fee

    @property
    def net_pnl(self) -> float:
        return self.gross_pnl - self.fees


def _check_reason(reason: str, allowed: frozenset[str], key: str) -> None:
    if reason not in allowed:
        raise ValueError(f"{key}: unknown reason {reason!r}; expected one of {sorted(allowed)}")


@dataclass(slots=True)
class SessionState:
    """One session's money, advanced only by the methods below (no I/O, no clock).

    ``cash`` is the part of the budget not locked in positions. Fees are computed at each fill
    but settled (taken from cash, added to ``fees_paid``) when the position closes, out of what
    the position returns, so cash never goes negative. Invariant, exact up to float rounding:
    ``spec.budget == cash + margin_in_use - realised_pnl + fees_paid``.
    """

    spec: SessionSpec
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    cash: float = field(init=False, default=0.0)
    positions: list[Position] = field(init=False, default_factory=list)
    fills: list[Fill] = field(init=False, default_factory=list)
    realised_pnl: float = field(init=False, default=0.0)
    fees_paid: float = field(init=False, default=0.0)
    positions_opened: int = field(init=False, default=0)
    status: SessionStatus = field(init=False, default="active")
    close_reason: SessionCloseReason | None = field(init=False, default=None)
    closed_at_ms: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.cash = self.spec.budget

    # -- views ---------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def margin_in_use(self) -> float:
        return sum((p.margin for p in self.positions), 0.0)

    @property
    def fees_accrued(self) -> float:
        """Fees settled plus entry fees of open positions (what a fee report should show)."""
        return self.fees_paid + sum((p.entry_fee for p in self.positions), 0.0)

    @property
    def net_realised(self) -> float:
        return self.realised_pnl - self.fees_paid

    def unrealised(self, price: float) -> float:
        """Gross PnL of the open positions at ``price``, each floored like a close would be."""
        rate = self.fees.rate
        total = 0.0
        for p in self.positions:
            gross, _, _ = settle(p.side, p.qty, p.entry_price, price, p.margin, p.entry_fee, rate)
            total += gross
        return total

    def equity(self, price: float) -> float:
        """Cash after closing everything at ``price``, fees included (mark-to-close value)."""
        rate = self.fees.rate
        total = self.cash
        for p in self.positions:
            gross, exit_fee, _ = settle(
                p.side, p.qty, p.entry_price, price, p.margin, p.entry_fee, rate
            )
            total += max(0.0, p.margin + gross - p.entry_fee - exit_fee)
        return total

    def conservation_error(self) -> float:
        """How far the invariant is off (float rounding only); tests and the simulator check it."""
        return (
            self.cash + self.margin_in_use - self.realised_pnl + self.fees_paid - self.spec.budget
        )

    # -- transitions ---------------------------------------------------------------------

    def open_position(self, side: Side | int, price: float, ts_ms: int) -> Position:
        """Open at ``price`` (the driver passes the next bar's open) with this session's stake.

        Raises SessionClosed, MaxPositionsReached, ReentryNotAllowed or InsufficientBalance
        without changing anything.
        """
        s = _side(side)
        px = _price("price", price)
        spec = self.spec
        if self.status != "active":
            raise SessionClosed(f"session is closed ({self.close_reason}); cannot open")
        if ts_ms < spec.opened_at_ms:
            raise ValueError(f"ts_ms {ts_ms} is before the session opened ({spec.opened_at_ms})")
        ends = spec.ends_at_ms
        if ends is not None and ts_ms >= ends:
            raise SessionClosed(f"session duration ended at {ends}; cannot open at {ts_ms}")
        if len(self.positions) >= spec.max_positions:
            raise MaxPositionsReached(
                f"session already holds {len(self.positions)} of {spec.max_positions} positions"
            )
        if not spec.reentry and self.positions_opened >= spec.max_positions:
            raise ReentryNotAllowed(
                f"no re-entry: all {spec.max_positions} positions of this session were used"
            )
        margin = min(spec.margin_per_position, self.cash)
        if margin <= spec.budget * _DUST:
            raise InsufficientBalance(spec.margin_per_position, self.cash, "session cash")
        qty = entry_qty(margin, spec.leverage, px)
        tp_price, sl_price = exit_levels(px, s, spec.leverage, spec.tp_pct, spec.sl_pct)
        self.positions_opened += 1
        position = Position(
            side=s,
            qty=qty,
            entry_price=px,
            entry_fee=fee(qty * px, self.fees.rate),
            margin=margin,
            opened_at_ms=ts_ms,
            tp_price=tp_price,
            sl_price=sl_price,
            seq=self.positions_opened,
        )
        self.cash -= margin
        self.positions.append(position)
        return position

    def on_bar(self, ts_ms: int, open_: float, high: float, low: float, close: float) -> list[Fill]:
        """Apply one finished bar: intrabar TP/SL per position, then the time stop.

        ``ts_ms`` is the bar's *close* time (open time + interval), when its high/low are known.
        Positions opened after it are skipped; call on_bar for a bar before opening positions
        decided on it. The time stop fires on the first bar with ``ts_ms >= ends_at_ms`` (the bar
        holding the deadline), after that bar's TP/SL, at its close: the first price known at or
        after the deadline, never before it. A closed session ignores bars.
        """
        if self.status != "active":
            return []
        _check_bar(open_, high, low, close)
        fills: list[Fill] = []
        i = 0
        while i < len(self.positions):
            p = self.positions[i]
            if p.opened_at_ms > ts_ms:
                i += 1
                continue
            code, px = intrabar_exit(p.side, open_, high, low, p.tp_price, p.sl_price)
            if code == EXIT_NONE:
                i += 1
                continue
            reason: ExitReason = "take_profit" if code == EXIT_TAKE_PROFIT else "stop_loss"
            fills.append(self._close(i, px, ts_ms, reason))
        ends = self.spec.ends_at_ms
        if ends is not None and ts_ms >= ends:
            fills.extend(self.close_session(close, ts_ms, "time_stop"))
        else:
            self._maybe_complete(ts_ms)
        return fills

    def close_position(
        self, i: int, price: float, ts_ms: int, reason: ExitReason = "manual"
    ) -> Fill:
        """Close open position ``i`` (index into ``positions``) at ``price``."""
        _check_reason(reason, _EXIT_REASONS, "reason")
        px = _price("price", price)
        if not 0 <= i < len(self.positions):
            raise IndexError(f"no open position at index {i} ({len(self.positions)} open)")
        fill = self._close(i, px, ts_ms, reason)
        self._maybe_complete(ts_ms)
        return fill

    def close_all(self, price: float, ts_ms: int, reason: ExitReason = "manual") -> list[Fill]:
        """Close every open position at ``price``; the session itself stays open."""
        _check_reason(reason, _EXIT_REASONS, "reason")
        px = _price("price", price)
        fills = [self._close(0, px, ts_ms, reason) for _ in range(len(self.positions))]
        self._maybe_complete(ts_ms)
        return fills

    def close_session(
        self, price: float, ts_ms: int, reason: ExitReason = "session_close"
    ) -> list[Fill]:
        """Close all positions and the session; closing a closed session is a no-op."""
        _check_reason(reason, _EXIT_REASONS, "reason")
        if self.status != "active":
            return []
        px = _price("price", price)
        fills = [self._close(0, px, ts_ms, reason) for _ in range(len(self.positions))]
        self._finish(ts_ms, _session_reason(reason))
        return fills

    # -- internals -----------------------------------------------------------------------

    def _close(self, i: int, price: float, ts_ms: int, reason: ExitReason) -> Fill:
        p = self.positions[i]
        if ts_ms < p.opened_at_ms:
            raise ValueError(f"ts_ms {ts_ms} is before position {p.seq} opened ({p.opened_at_ms})")
        gross, exit_fee, liquidated = settle(
            p.side, p.qty, p.entry_price, price, p.margin, p.entry_fee, self.fees.rate
        )
        fees = p.entry_fee + exit_fee
        del self.positions[i]
        # A liquidated position returns exactly nothing, not float residue of margin - margin.
        self.cash += 0.0 if liquidated else max(0.0, p.margin + gross - fees)
        self.realised_pnl += gross
        self.fees_paid += fees
        fill = Fill(
            seq=p.seq,
            side=p.side,
            qty=p.qty,
            margin=p.margin,
            entry_price=p.entry_price,
            exit_price=price,
            opened_at_ms=p.opened_at_ms,
            closed_at_ms=ts_ms,
            reason=reason,
            gross_pnl=gross,
            entry_fee=p.entry_fee,
            exit_fee=exit_fee,
            liquidated=bool(liquidated),
        )
        self.fills.append(fill)
        return fill

    def _maybe_complete(self, ts_ms: int) -> None:
        """Close a session that can never open again: slots used up, or cash gone."""
        if self.status != "active" or self.positions:
            return
        if not self.spec.reentry and self.positions_opened >= self.spec.max_positions:
            self._finish(ts_ms, "completed")
        elif self.cash <= self.spec.budget * _DUST:
            self._finish(ts_ms, "budget_exhausted")

    def _finish(self, ts_ms: int, reason: SessionCloseReason) -> None:
        self.status = "closed"
        self.close_reason = reason
        self.closed_at_ms = ts_ms


def _session_reason(reason: ExitReason) -> SessionCloseReason:
    if reason == "time_stop":
        return "time_stop"
    if reason == "manual":
        return "manual"
    return "session_close"


def _check_bar(open_: float, high: float, low: float, close: float) -> None:
    for key, value in (("open", open_), ("high", high), ("low", low), ("close", close)):
        _price(key, value)
    if low > min(open_, close) or high < max(open_, close):
        raise ValueError(
            f"bar is inconsistent: open={open_!r} high={high!r} low={low!r} close={close!r}"
        )


# --------------------------------------------------------------------------------------------
# Wallet: the account-level ledger the simulator keeps.
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Wallet:
    """A user's USDC: free ``balance`` and ``locked`` margin; never lets either go negative.

    Invariant, exact up to float rounding:
    ``net_deposits == balance + locked - realised_pnl + fees_paid``.
    """

    balance: float
    locked: float = field(init=False, default=0.0)
    realised_pnl: float = field(init=False, default=0.0)
    fees_paid: float = field(init=False, default=0.0)
    net_deposits: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.balance = _number("balance", self.balance)
        if self.balance < 0:
            raise ValueError(f"balance: must be >= 0, got {self.balance!r}")
        self.net_deposits = self.balance

    def lock(self, margin: float) -> None:
        """Move ``margin`` from free balance to locked (a session or position opens)."""
        amount = _positive("margin", margin)
        if amount > self.balance:
            raise InsufficientBalance(amount, self.balance)
        self.balance -= amount
        self.locked += amount

    def release(self, margin: float, pnl: float, fees: float) -> float:
        """Unlock ``margin`` and book ``pnl`` (gross) and ``fees``; returns what came back."""
        amount = _number("margin", margin)
        gross = _number("pnl", pnl)
        charged = _number("fees", fees)
        if amount < 0 or charged < 0:
            raise ValueError(f"margin and fees must be >= 0, got {margin!r} and {fees!r}")
        tolerance = 1e-9 * max(1.0, self.locked)
        if amount > self.locked + tolerance:
            raise ValueError(f"cannot release {amount:.6f} USDC, only {self.locked:.6f} locked")
        returned = amount + gross - charged
        if self.balance + returned < 0:
            raise InsufficientBalance(-returned, self.balance, "balance to cover the loss")
        self.locked -= amount
        if abs(self.locked) <= tolerance:
            self.locked = 0.0
        self.balance += returned
        self.realised_pnl += gross
        self.fees_paid += charged
        return returned

    def deposit(self, amount: float) -> None:
        x = _positive("amount", amount)
        self.balance += x
        self.net_deposits += x

    def withdraw(self, amount: float) -> None:
        x = _positive("amount", amount)
        if x > self.balance:
            raise InsufficientBalance(x, self.balance)
        self.balance -= x
        self.net_deposits -= x

    def conservation_error(self) -> float:
        return self.balance + self.locked - self.realised_pnl + self.fees_paid - self.net_deposits


# -- persistence: plain JSON, so a restarted simulator or paper executor resumes exactly ----------


def state_to_json(state: SessionState) -> dict[str, Any]:
    """`{"spec": ..., "state": ...}` with enums by value; floats survive JSON exactly (repr)."""
    spec = asdict(state.spec)
    spec["execution_strategy"] = (
        state.spec.execution_strategy.value if state.spec.execution_strategy else None
    )
    spec["strategy_duration"] = (
        state.spec.strategy_duration.value if state.spec.strategy_duration else None
    )
    return {
        "spec": spec,
        "state": {
            "cash": state.cash,
            "positions": [asdict(p) for p in state.positions],
            "fills": [asdict(f) for f in state.fills],
            "realised_pnl": state.realised_pnl,
            "fees_paid": state.fees_paid,
            "positions_opened": state.positions_opened,
            "status": state.status,
            "close_reason": state.close_reason,
            "closed_at_ms": state.closed_at_ms,
        },
    }


def state_from_json(data: dict[str, Any], fees: FeeSchedule) -> SessionState:
    spec_data = dict(data["spec"])
    if spec_data["execution_strategy"]:
        spec_data["execution_strategy"] = ExecutionStrategy(spec_data["execution_strategy"])
    if spec_data["strategy_duration"]:
        spec_data["strategy_duration"] = StrategyDuration(spec_data["strategy_duration"])
    state = SessionState(SessionSpec(**spec_data), fees)
    raw = data["state"]
    state.cash = raw["cash"]
    state.positions = [Position(**p) for p in raw["positions"]]
    state.fills = [Fill(**f) for f in raw["fills"]]
    state.realised_pnl = raw["realised_pnl"]
    state.fees_paid = raw["fees_paid"]
    state.positions_opened = raw["positions_opened"]
    state.status = raw["status"]
    state.close_reason = raw["close_reason"]
    state.closed_at_ms = raw["closed_at_ms"]
    return state
