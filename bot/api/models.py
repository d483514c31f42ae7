"""Pydantic models at the HTTP boundary.

Requests are strict: they enforce the documented constraints before anything is sent.
Responses are tolerant: documented fields are typed, unknown fields are kept (`extra="allow"`),
because the backend publishes no response schemas (see shared/api/NOTES.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from bot.api.errors import OutcomeUnknown
from bot.domain import ExecutionStrategy, SignalKind, StrategyDuration

MAX_WIRE_DIGITS = 15


def decimal_to_wire(value: Decimal) -> int | float:
    """JSON has no decimal type: send a number whose text is exactly the Decimal's, or refuse."""
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) != value.normalize():
        raise ValueError(f"{value} cannot be sent exactly as a JSON number")
    return as_float


def _money(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


Money = Annotated[Decimal, BeforeValidator(_money)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        """The JSON body, camelCase as the API documents, money as exact JSON numbers."""
        out: dict[str, Any] = {}
        for key, value in self.model_dump(by_alias=True, exclude_none=True).items():
            if isinstance(value, Decimal):
                out[key] = decimal_to_wire(value)
            elif hasattr(value, "value"):
                out[key] = value.value
            else:
                out[key] = value
        return out


# A strict int: `True` or `"1"` or `1.0` is refused rather than sent as assetIndex 1. Whether the
# index is a *known* asset is checked by `AluraClient._check_asset` at send time, not here,
# because the asset table is extended at run time from the aggregated-symbols endpoint.
AssetIndex = Annotated[StrictInt, Field(ge=0, alias="assetIndex")]


class QuickSessionRequest(_Request):
    """POST /trading-sessions. budget >= 10, profitTarget <= 500 (documented).

    `asset_index` is a strict, non-negative int (no bools, no strings); that it names a known
    asset is checked by `AluraClient` when sending, against its run-time-extendable asset table.
    """

    budget: Annotated[Money, Field(ge=10, max_digits=18, decimal_places=6)]
    profit_target: Annotated[Money, Field(gt=0, le=500, alias="profitTarget")]
    loss_threshold: Annotated[Money | None, Field(gt=0, le=100, alias="lossThreshold")] = None
    max_positions: Annotated[int | None, Field(ge=1, le=50, alias="maxPositions")] = None
    asset_index: AssetIndex


class AdvancedSessionRequest(_Request):
    """POST /trading-sessions/advance.

    `asset_index` is a strict, non-negative int (no bools, no strings); that it names a known
    asset is checked by `AluraClient` when sending, against its run-time-extendable asset table.
    """

    amount: Annotated[Money, Field(ge=10, max_digits=18, decimal_places=6)]
    execution_strategy: Annotated[ExecutionStrategy, Field(alias="executionStrategy")]
    strategy_duration: Annotated[StrategyDuration, Field(alias="strategyDuration")]
    asset_index: AssetIndex
    max_wallet_budget: Annotated[bool, Field(alias="maxWalletBudget")] = False


class AmountRequest(_Request):
    """Bodies of the funds endpoints (withdraw, send-usdc): exact money and a destination."""

    amount: Annotated[Money, Field(gt=0, max_digits=18, decimal_places=6)]
    destination: str | None = None


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Challenge(_Response):
    address: str
    nonce: str
    message: str


class TokenGrant(_Response):
    ok: bool = True
    access_token: str = Field(alias="accessToken", repr=False)
    token_type: str = Field(default="Bearer", alias="tokenType")
    expires_in: float = Field(default=86_400, alias="expiresIn", gt=0)


def _as_str(value: Any) -> Any:
    return str(value) if isinstance(value, int) else value


Id = Annotated[str, BeforeValidator(_as_str)]


class TradingSession(_Response):
    id: Id = Field(validation_alias=AliasChoices("id", "sessionId", "_id"))
    asset_index: int = Field(validation_alias=AliasChoices("assetIndex", "asset_index"))
    status: str = "active"
    kind: str | None = Field(default=None, validation_alias=AliasChoices("kind", "type"))
    budget: Money | None = Field(default=None, validation_alias=AliasChoices("budget", "amount"))
    trade_id: Id | None = Field(default=None, validation_alias=AliasChoices("tradeId", "trade_id"))
    realized_pnl: Money | None = Field(
        default=None, validation_alias=AliasChoices("realizedPnl", "realized_pnl")
    )
    fees_paid: Money | None = Field(
        default=None, validation_alias=AliasChoices("feesPaid", "fees_paid")
    )
    created_at: datetime | None = Field(
        default=None, validation_alias=AliasChoices("createdAt", "created_at")
    )


class SessionList(_Response):
    sessions: list[TradingSession]


class OpenPosition(_Response):
    id: Id
    asset_index: int = Field(validation_alias=AliasChoices("assetIndex", "asset_index"))
    side: str | None = None
    size: Money | None = None
    entry_price: Money | None = Field(
        default=None, validation_alias=AliasChoices("entryPrice", "entry_price")
    )
    unrealized_pnl: Money | None = Field(
        default=None, validation_alias=AliasChoices("unrealizedPnl", "unrealized_pnl")
    )


class Trade(_Response):
    id: Id
    session_id: Id | None = Field(
        default=None, validation_alias=AliasChoices("sessionId", "session_id")
    )
    asset_index: int | None = Field(
        default=None, validation_alias=AliasChoices("assetIndex", "asset_index")
    )
    status: str | None = None
    positions: list[OpenPosition] = []


class CurrentTrade(_Response):
    trades: list[Trade] = []


class LogEntry(_Response):
    time: datetime | None = Field(
        default=None, validation_alias=AliasChoices("time", "timestamp", "createdAt")
    )
    message: str | None = None


class LogPage(_Response):
    logs: list[LogEntry] = Field(default=[], validation_alias=AliasChoices("logs", "items", "data"))
    page: int | None = None
    limit: int | None = None
    total: int | None = None


class Candle(_Response):
    time: int = Field(validation_alias=AliasChoices("time", "timestamp", "t", "openTime"))
    open: float = Field(validation_alias=AliasChoices("open", "o"))
    high: float = Field(validation_alias=AliasChoices("high", "h"))
    low: float = Field(validation_alias=AliasChoices("low", "l"))
    close: float = Field(validation_alias=AliasChoices("close", "c"))
    volume: float = Field(default=0.0, validation_alias=AliasChoices("volume", "v"))

    @field_validator("open", "high", "low", "close")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not (value > 0 and value != float("inf")):
            raise ValueError("price must be a positive finite number")
        return value

    @field_validator("volume")
    @classmethod
    def _volume(cls, value: float) -> float:
        if not (value >= 0 and value != float("inf")):
            raise ValueError("volume must be a non-negative finite number")
        return value


class CandleSeries(_Response):
    symbol: str | None = None
    interval: str | None = None
    candles: list[Candle]


class Signal(_Response):
    """One indicator signal; the shape the simulator serves is documented in the README."""

    symbol: str
    interval: str
    signal: SignalKind
    strength: Annotated[float, Field(ge=0, le=1)] = 0.0
    indicators: dict[str, float] = {}
    candle_time: int = Field(validation_alias=AliasChoices("candleTime", "candle_time", "time"))

    @field_validator("indicators")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if v != v or v in (float("inf"), float("-inf"))]
        if bad:
            raise ValueError(f"non-finite indicator values: {', '.join(sorted(bad))}")
        return value

    @property
    def candle_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.candle_time / 1000, tz=UTC)


class SignalList(_Response):
    interval: str | None = None
    signals: list[Signal]


class SymbolInfo(_Response):
    symbol: str
    asset_index: int | None = Field(
        default=None, validation_alias=AliasChoices("assetIndex", "asset_index", "index")
    )
    intervals: list[str] = []


class SymbolList(_Response):
    symbols: list[SymbolInfo]


class SymbolListing(_Response):
    """The same answer with its entries unchecked: `refresh_assets` reads them one by one, so
    one odd listing is skipped instead of hiding every other one."""

    symbols: list[Any]


class Profile(_Response):
    address: str | None = None
    usdc_balance: Money | None = Field(
        default=None, validation_alias=AliasChoices("usdcBalance", "balance", "usdc_balance")
    )


class Health(_Response):
    status: str = "unknown"


class Generic(_Response):
    """An endpoint whose answer the documents do not describe: every field is kept as sent."""


class ClosedAmounts(_Response):
    """The money fields of the answer to an applied close, read by the same `Money` rules as
    every other answer."""

    realized_pnl: Money | None = Field(
        default=None, validation_alias=AliasChoices("realizedPnl", "realized_pnl")
    )
    fees_paid: Money | None = Field(
        default=None, validation_alias=AliasChoices("feesPaid", "fees_paid")
    )


def applied_amounts(answer: Mapping[str, Any], endpoint: str) -> tuple[Decimal, Decimal]:
    """(realised PnL, fees) of a close that was applied: absent is zero, but an unreadable
    amount makes the outcome unknown, so the caller reconciles from the venue's logs instead of
    journaling a failure for a close that happened."""
    try:
        closed = ClosedAmounts.model_validate(answer)
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise OutcomeUnknown(
            f"the answer's {fields or 'amounts'}: not an amount; reconciling",
            endpoint=endpoint,
            method="POST",
        ) from None
    return closed.realized_pnl or Decimal(0), closed.fees_paid or Decimal(0)
