"""The strategy interface: written once, vectorised, run by the daemon and the backtester alike.

A candle strategy computes indicator columns over candles (`indicators`), turns them into
boolean entry/exit arrays (`signals`), and says which session to open (`session_decision`). Row t
may read rows <= t only. The live engine looks at the last closed row; the backtest feeds whole
arrays to its loop: one definition, two drivers, identical decisions.

Position managers (`PositionManager`) work on live state instead: `manage(state) -> decisions`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.domain import (
    INTERVAL_SECONDS,
    Decision,
    ExecutionStrategy,
    OpenAdvanced,
    OpenQuick,
    Side,
    StrategyDuration,
)
from bot.market.data import Candles

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


class StrategyParamsError(ValueError):
    """Bad strategy parameters; one line per field, naming the strategy."""


class SessionParams(BaseModel):
    """Which session a strategy opens on an entry; the API's documented limits apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["quick", "advanced"] = "quick"
    budget: Decimal = Field(default=Decimal(100), ge=10)
    profit_target: Decimal = Field(default=Decimal(2), gt=0, le=500)
    loss_threshold: Decimal = Field(default=Decimal(1), gt=0, le=100)
    max_positions: int = Field(default=1, ge=1, le=50)
    execution_strategy: ExecutionStrategy = ExecutionStrategy.CONSERVATIVE
    strategy_duration: StrategyDuration = StrategyDuration.D1
    max_wallet_budget: bool = False


class StrategyParams(BaseModel):
    """Base of every strategy's params: the candle interval and the session to open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: str = "1h"
    allow_short: bool = False
    session: SessionParams = SessionParams()

    @model_validator(mode="after")
    def _known_interval(self) -> StrategyParams:
        if self.interval not in INTERVAL_SECONDS:
            raise ValueError(f"interval must be one of {', '.join(INTERVAL_SECONDS)}")
        return self


@dataclass(frozen=True)
class Signals:
    """Per-row boolean arrays; `enter_short`/`exit_short` stay False for long-only strategies."""

    enter_long: BoolArray
    exit_long: BoolArray
    enter_short: BoolArray
    exit_short: BoolArray

    @classmethod
    def long_only(cls, enter: BoolArray, exit_: BoolArray) -> Signals:
        none = np.zeros(len(enter), dtype=np.bool_)
        return cls(enter, exit_, none, none.copy())


@dataclass(frozen=True)
class LastRow:
    """The flags of the newest closed candle: all the live engine acts on. `values` holds that
    row's indicator values, journaled with each decision so an operator can see why."""

    enter_long: bool
    exit_long: bool
    enter_short: bool
    exit_short: bool
    values: dict[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, flags: Signals, columns: dict[str, FloatArray] | None = None) -> LastRow:
        return cls(
            bool(flags.enter_long[-1]),
            bool(flags.exit_long[-1]),
            bool(flags.enter_short[-1]),
            bool(flags.exit_short[-1]),
            {k: float(v[-1]) for k, v in (columns or {}).items() if len(v)},
        )


class IndicatorStream(Protocol):
    """`indicators` one candle at a time: the columns' values for the row just pushed, equal to
    that row of the vectorised columns (bit for bit; the parity tests hold each one to it)."""

    def push(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> dict[str, float]: ...


@dataclass
class _Follow:
    """One asset's stream and where in the candle series it has got to."""

    stream: IndicatorStream
    first_ts: int
    recent: deque[dict[str, float]]
    rows: int = 0
    last_ts: int = 0
    last_close: float = 0.0
    flags: LastRow | None = None

    def continues(self, candles: Candles) -> bool:
        """True when `candles` is the series already pushed, plus possibly newer rows."""
        i = self.rows - 1
        return (
            len(candles) >= self.rows
            and int(candles.ts[0]) == self.first_ts
            and int(candles.ts[i]) == self.last_ts
            and float(candles.close[i]) == self.last_close
        )


_COLUMNS = ("open", "high", "low", "close", "volume")

P = TypeVar("P", bound=StrategyParams)


class Strategy(ABC, Generic[P]):
    """A candle strategy. Subclasses set `name`, `Params` and implement the two array methods."""

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    kind: ClassVar[str] = "candles"
    signal_rows: ClassVar[int] = 2
    """Rows of columns `signals` reads to decide the newest row (2: a cross needs the previous)."""

    def __init__(self, params: P | dict[str, Any] | None = None) -> None:
        self.params: P = self.parse_params(params)
        self._follow: dict[str, _Follow] = {}

    @classmethod
    def parse_params(cls, params: Any) -> P:
        if isinstance(params, cls.Params):
            return params  # type: ignore[return-value]
        try:
            return cls.Params.model_validate(params or {})  # type: ignore[return-value]
        except ValidationError as exc:
            lines = [
                f"strategy {cls.name}: {'.'.join(str(p) for p in e['loc']) or 'params'}"
                f"{'' if isinstance(e.get('input'), dict) else ' = ' + repr(e.get('input'))}: "
                f"{e['msg']}"
                for e in exc.errors()
            ]
            raise StrategyParamsError("\n".join(lines)) from None

    @property
    def interval(self) -> str:
        return self.params.interval

    @property
    def warmup(self) -> int:
        """Closed candles needed before the last row's decision is meaningful."""
        return 100

    @abstractmethod
    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        """Vectorised indicator columns; row t uses candles up to t only."""

    @abstractmethod
    def signals(self, candles: Candles, columns: dict[str, FloatArray]) -> Signals:
        """Entry and exit flags per row, from the columns; row t uses rows <= t only."""

    def run(self, candles: Candles) -> Signals:
        return self.signals(candles, self.indicators(candles))

    def stream(self) -> IndicatorStream | None:
        """A fresh one-candle-at-a-time `indicators` for the live engine, or None (the default)
        to recompute the whole series every tick."""
        return None

    def last_row(self, asset: str, candles: Candles) -> LastRow:
        """The newest row's flags. With a `stream`, only candles not seen before are computed;
        a series that does not continue the last one (a refetch, the history cut back) starts
        a new stream. Same flags as `run(candles)` at its last row, either way."""
        if not len(candles):
            return LastRow(False, False, False, False)
        follow = self._follow.get(asset)
        if follow is None or not follow.continues(candles):
            stream = self.stream()
            if stream is None:
                columns = self.indicators(candles)
                return LastRow.of(self.signals(candles, columns), columns)
            follow = _Follow(stream, int(candles.ts[0]), deque(maxlen=self.signal_rows))
            self._follow[asset] = follow
        if len(candles) > follow.rows or follow.flags is None:
            fresh = [getattr(candles, k)[follow.rows :].tolist() for k in _COLUMNS]
            for row in zip(*fresh, strict=True):
                follow.recent.append(follow.stream.push(*row))
            follow.rows = len(candles)
            follow.last_ts = int(candles.ts[-1])
            follow.last_close = float(candles.close[-1])
            recent = list(follow.recent)
            columns = {k: np.array([r[k] for r in recent]) for k in recent[0]}
            follow.flags = LastRow.of(self.signals(candles.tail(len(recent)), columns), columns)
        return follow.flags

    def open_decision(self, asset: str, side: Side, reason: str) -> Decision:
        """The session to open on an entry, from the strategy's `session` params."""
        s = self.params.session
        if s.kind == "quick":
            return OpenQuick(
                strategy=self.name,
                asset=asset,
                side=side,
                budget=s.budget,
                profit_target=s.profit_target,
                loss_threshold=s.loss_threshold,
                max_positions=s.max_positions,
                reason=reason,
            )
        return OpenAdvanced(
            strategy=self.name,
            asset=asset,
            side=side,
            amount=s.budget,
            execution_strategy=s.execution_strategy,
            strategy_duration=s.strategy_duration,
            max_wallet_budget=s.max_wallet_budget,
            reason=reason,
        )


@dataclass(frozen=True)
class ManagedPosition:
    """A user-positions-API position as a manager sees it (raw units, never payout_expected)."""

    position_id: str
    amount: int
    pnl: int
    close_pnl: int | None
    opened_at_ms: int
    market_status: int | None
    # what the journal saw first for this position: the baseline of "market status changed"
    first_market_status: int | None = None


@dataclass(frozen=True)
class GuardState:
    """Live state for position managers: sessions with PnL, user positions, the kill switch."""

    now_ms: int
    sessions: tuple[Any, ...]  # SessionView
    positions: tuple[ManagedPosition, ...]
    paused: bool


class PositionManager(ABC):
    """Manages what is already open; pure: state in, decisions out."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    kind: ClassVar[str] = "manager"

    def __init__(self, params: BaseModel | dict[str, Any] | None = None) -> None:
        if isinstance(params, self.Params):
            self.params = params
        else:
            try:
                self.params = self.Params.model_validate(params or {})
            except ValidationError as exc:
                raise StrategyParamsError(
                    "\n".join(
                        f"strategy {self.name}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                        for e in exc.errors()
                    )
                ) from None

    @abstractmethod
    def manage(self, state: GuardState) -> list[Decision]: ...
