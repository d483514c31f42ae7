"""Value types shared by the API client, the engine, the simulator and the backtester.

Plain frozen dataclasses and enums: no I/O, no pydantic, so they are cheap to build on hot paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum

# Hyperliquid perp asset indices as documented by the Alura API; extendable at run time from
# `/api/indicators/candles/aggregated/symbols` via `AssetRegistry.extend`.
DEFAULT_ASSETS: dict[str, int] = {"BTC": 0, "ETH": 1, "SOL": 2, "XRP": 3, "DOGE": 4, "AVAX": 5}


class ExecutionStrategy(StrEnum):
    CONSERVATIVE = "Conservative"
    AGGRESSIVE = "Aggressive"
    DEGEN = "Degen"


class StrategyDuration(StrEnum):
    D1 = "1D"
    D3 = "3D"
    D7 = "7D"
    D30 = "30D"
    D90 = "90D"
    D365 = "365D"

    @property
    def seconds(self) -> int:
        return int(self.value[:-1]) * 86_400


class SignalKind(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    NEUTRAL = "NEUTRAL"


class Side(Enum):
    LONG = 1
    SHORT = -1


INTERVAL_SECONDS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3_600,
    "4h": 14_400,
    "1d": 86_400,
}


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    index: int


class UnknownAsset(ValueError):
    """Raised for a symbol or index the registry does not know; names what it does know."""


class AssetRegistry:
    """Maps symbols to Hyperliquid asset indices and back; starts from the documented table."""

    def __init__(self, assets: dict[str, int] | None = None) -> None:
        self._by_symbol: dict[str, int] = dict(DEFAULT_ASSETS if assets is None else assets)

    def extend(self, assets: dict[str, int]) -> None:
        for symbol, index in assets.items():
            self._by_symbol[symbol.upper()] = int(index)

    def by_symbol(self, symbol: str) -> Asset:
        key = symbol.upper()
        if key not in self._by_symbol:
            known = ", ".join(sorted(self._by_symbol))
            raise UnknownAsset(f"unknown asset {symbol!r}; known: {known}")
        return Asset(key, self._by_symbol[key])

    def by_index(self, index: int) -> Asset:
        for symbol, idx in self._by_symbol.items():
            if idx == index:
                return Asset(symbol, idx)
        known = ", ".join(f"{s}={i}" for s, i in sorted(self._by_symbol.items()))
        raise UnknownAsset(f"unknown asset index {index}; known: {known}")

    def knows_index(self, index: int) -> bool:
        return index in self._by_symbol.values()

    def symbols(self) -> list[str]:
        return sorted(self._by_symbol, key=self._by_symbol.__getitem__)


BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def validate_solana_address(value: str) -> str:
    """A Solana address is base58 of a 32-byte key: 32..44 chars from the base58 alphabet."""
    text = value.strip()
    bad = sorted({c for c in text if c not in BASE58_ALPHABET})
    if bad:
        raise ValueError(f"not a base58 Solana address: invalid characters {''.join(bad)!r}")
    num = 0
    for ch in text:
        num = num * 58 + BASE58_ALPHABET.index(ch)
    leading = len(text) - len(text.lstrip("1"))
    size = leading + (num.bit_length() + 7) // 8
    if not 32 <= len(text) <= 44 or size != 32:
        raise ValueError("not a Solana address: must decode to exactly 32 bytes (32..44 chars)")
    return text


# -- decisions: what strategies ask for; the RiskGate and executors act on them -------------------


@dataclass(frozen=True, slots=True)
class OpenQuick:
    """Open a quick session (POST /trading-sessions). `side` is the strategy's intended direction:
    the paper executor and the backtest use it; the live API takes no direction."""

    strategy: str
    asset: str
    side: Side
    budget: Decimal
    profit_target: Decimal
    loss_threshold: Decimal
    max_positions: int
    reason: str


@dataclass(frozen=True, slots=True)
class OpenAdvanced:
    """Open an advanced session (POST /trading-sessions/advance)."""

    strategy: str
    asset: str
    side: Side
    amount: Decimal
    execution_strategy: ExecutionStrategy
    strategy_duration: StrategyDuration
    max_wallet_budget: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CloseSession:
    """Close every position of the session on `asset` (the trade), e.g. on an exit signal."""

    strategy: str
    asset: str
    reason: str


@dataclass(frozen=True, slots=True)
class ClosePosition:
    """Close one position by id: a trading-session position, or a user-positions-API position."""

    strategy: str
    position_id: str
    venue: str  # "sessions" | "positions"
    reason: str
    asset: str | None = None
    close_price: int | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    strategy: str
    asset: str | None
    reason: str


Decision = OpenQuick | OpenAdvanced | CloseSession | ClosePosition | Hold
OPENING = (OpenQuick, OpenAdvanced)


def decision_action(decision: Decision) -> str:
    """The bounded `action` label of a decision (metrics, journal)."""
    return {
        OpenQuick: "open_quick",
        OpenAdvanced: "open_advanced",
        CloseSession: "close_session",
        ClosePosition: "close_position",
        Hold: "hold",
    }[type(decision)]


@dataclass(frozen=True, slots=True)
class SessionView:
    """What the engine knows of one open session (from the journal, reconciled with the venue)."""

    session_id: str
    asset: str
    kind: str  # "quick" | "advanced"
    budget: Decimal
    opened_at_ms: int
    strategy: str
    unrealized_pnl: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class AccountView:
    """Money and limits the RiskGate needs, as of this tick."""

    free_balance: Decimal
    realized_pnl_today: Decimal
    open_sessions: tuple[SessionView, ...]
    paused: bool
    last_close_ms: dict[str, int]  # asset -> when a session on it last closed or failed
