"""The strategy interface: written once, vectorised, run by the daemon and the backtester alike.

A candle strategy computes indicator columns over candles (`indicators`), turns them into
boolean entry/exit arrays (`signals`), and says which session to open (`session_decision`). Row t
may read rows <= t only. The live engine looks at the last closed row; the backtest feeds whole
arrays to its loop: one definition, two drivers, identical decisions.

Position managers (`PositionManager`) work on live state instead: `manage(state) -> decisions`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, TypeVar

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


P = TypeVar("P", bound=StrategyParams)


class Strategy(ABC, Generic[P]):
    """A candle strategy. Subclasses set `name`, `Params` and implement the two array methods."""

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    kind: ClassVar[str] = "candles"

    def __init__(self, params: P | dict[str, Any] | None = None) -> None:
        self.params: P = self.parse_params(params)

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
