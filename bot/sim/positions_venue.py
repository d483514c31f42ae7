"""State and rules of the simulated user-positions service (a Solana sports prediction market).

No HTTP here: `positions_api` puts both the backend (`/api/v1/*`) and the proxy (`/api/*`) layers
on top of this one implementation, so the two layers can only differ where the real ones do.

Choices the contract leaves open, fixed here and relied on by tests:

* **Ordering**: lists are newest first, by position id descending (ids grow with creation).
* **Close**: marks the position status 4 (cancelled), as the live service does (NOTES.md); pass
  ``close_status=6`` for the documented "early-closed" value. ``position_type`` becomes ``CLOSE``,
  ``close_pnl = close_price - amount`` (``close_price`` defaults to ``amount``) and
  ``pnl = close_pnl - fee_paid``.
* **payout_expected** is deliberately inconsistent, as in the real service: the stored (backend)
  value applies the multiplier twice, ``amount * odds * multiplier`` (``backend_payout``), while
  the proxy layer shows ``amount * odds`` (``proxy_payout``). Settlement pays ``proxy_payout``:
  the value a client computes itself from ``amount`` and the odds.
* **Odds** are ``multiplier_bps``, overridden by the chosen side's ``odds_*_bps`` when given.
* **Markets**: ``fixture_id`` is the market id as a string, so a numeric ``fixture_id`` filter
  (which the service matches against the market id) also matches the fixture id a client sees.
* **Market supply** (so an accelerated clock never runs out of markets): past the markets made at
  construction, each fixed time slot (``n_markets`` slots per three days, epoch-aligned) brings
  its own markets, drawn from (seed, slot), once the slot lies wholly within three days of the
  clock. What a venue holds at a time therefore depends on the seed and the time, not on how
  often it was asked. Settled markets nobody bet on are **dropped** ``RETAIN_MS`` (14 days) after
  they settle, and slots that would already be dropped are skipped unseen (their ids are still
  used up), so markets stay bounded over months; markets with positions are always kept.
* **Settlement** (lazy, on every call, by the clock): a market goes live at ``starts_at_ms`` and
  resolves at ``settles_at_ms`` with an outcome drawn from (seed, market id): home/away win
  (weighted by the market odds), void (market status 3, ``winner`` None; positions refunded, 5,
  pnl 0) or cancelled (market 4; positions 4, stake back, fee kept: pnl ``-fee_paid``). Won
  positions: ``pnl = payout - amount - fee``; lost: ``-amount - fee``.
* **The documents' example market** (``example_market=True``, which `alura-bot sim` sets): market
  id 0 at address ``MarketXYZ123`` (teams A and B, multiplier 12000, odds 10500/9500, as in the
  user-positions document), always open and never settled, so the document's curl examples work
  as written and a position on it stays open until closed. Its times are ``NEVER_MS``.
* **Wallets** exist once they have placed a position (or were seeded); unknown ones are NotFound.
  Addresses are not validated (the real service does not) unless ``strict_wallets=True``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
import re
import threading
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from pydantic import TypeAdapter

from bot.sim.clock import SimClock, ms_to_iso

__all__ = [
    "BPS",
    "CLOSE_STATUSES",
    "DEFAULT_FEE_BPS",
    "DEFAULT_LIMIT",
    "EXAMPLE_MARKET_ADDRESS",
    "HORIZON_MS",
    "I64_MAX",
    "MAX_LIMIT",
    "NEVER_MS",
    "RETAIN_MS",
    "AuditRow",
    "Conflict",
    "InvalidArgs",
    "Market",
    "MarketNotOpen",
    "MarketStatus",
    "NotFound",
    "NotOwner",
    "Position",
    "PositionMarket",
    "PositionPage",
    "PositionStatus",
    "PositionsVenue",
    "VenueError",
    "WalletStats",
    "b58decode",
    "b58encode",
    "backend_payout",
    "clamp_paging",
    "effective_odds_bps",
    "is_solana_address",
    "position_odds_bps",
    "proxy_payout",
    "require_int",
]

BPS = 10_000
DEFAULT_FEE_BPS = 40  # 0.4 %: the document's example (2_000_000 fee on 500_000_000)
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
I64_MAX = 2**63 - 1  # amounts live in BIGINT columns on the real backend
NEVER_MS = I64_MAX  # start and settlement time of a market that never starts (the example one)
EXAMPLE_MARKET_ID = 0  # outside the generated ids (1, 2, ...), so it never shifts them
EXAMPLE_MARKET_ADDRESS = "MarketXYZ123"  # the user-positions document's example address
FIRST_POSITION_ID = 1001
STATE_FORMAT = 1

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
_MATCH_MS = 2 * _HOUR_MS
_QUARTER_MS = 15 * 60_000
HORIZON_MS = 3 * _DAY_MS
RETAIN_MS = 14 * _DAY_MS
P_CANCELLED = 0.03
P_VOID = 0.04


class PositionStatus(IntEnum):
    PLACED = 1
    WON = 2
    LOST = 3
    CANCELLED = 4
    REFUNDED = 5
    EARLY_CLOSED = 6


class MarketStatus(IntEnum):
    OPEN = 1
    LIVE = 2
    SETTLED = 3
    CANCELLED = 4


CLOSE_STATUSES = frozenset({int(PositionStatus.CANCELLED), int(PositionStatus.EARLY_CLOSED)})
PositionType = Literal["OPEN", "CLOSE"]


# --------------------------------------------------------------------------- errors


class VenueError(Exception):
    """A rule the service enforces; `code` is the `error` string the backend answers with."""

    code = "Backend error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail


class NotFound(VenueError):
    code = "Not found"


class InvalidArgs(VenueError):
    code = "INVALID_ARGS"


class Conflict(VenueError):
    """Optimistic-lock failure: the position changed (or was closed) under the caller."""

    code = "CONFLICT"


class MarketNotOpen(Conflict):
    code = "MARKET_NOT_OPEN"


class NotOwner(VenueError):
    """Simulator-only (owner_check): the real service lets any wallet close any position."""

    code = "NOT_OWNER"


# --------------------------------------------------------------------------- records


@dataclass
class Market:
    id: int
    fixture_id: str
    address: str
    home_team: str
    away_team: str
    status: int
    multiplier_bps: int
    odds_home_bps: int
    odds_away_bps: int
    starts_at_ms: int
    settles_at_ms: int
    winner: int | None = None


@dataclass
class PositionMarket:
    """The market summary embedded in every position (kept in step with the market)."""

    fixture_id: str
    home_team: str
    away_team: str
    status: int


@dataclass
class Position:
    id: int
    wallet_address: str
    market_address: str
    position_type: PositionType
    selected_team: int
    amount: int
    multiplier_bps: int
    payout_expected: int
    status: int
    is_claimed: bool
    pnl: int
    fee_paid: int
    timestamp: str
    created_at: str
    updated_at: str
    confirmation_status: str
    market: PositionMarket | None = None
    bet_address: str | None = None
    odds_home_bps: int | None = None
    odds_away_bps: int | None = None
    close_price: int | None = None
    close_pnl: int | None = None
    closed_at: str | None = None
    transaction_signature: str | None = None
    version: int = 1  # internal optimistic-lock counter, never sent over HTTP


@dataclass
class AuditRow:
    id: int
    at: str
    action: Literal["open", "close", "settle"]
    position_id: int
    actor: str | None
    old_status: int | None
    new_status: int
    version: int
    detail: str = ""


@dataclass
class PositionPage:
    positions: list[Position]
    page: int
    limit: int
    total: int
    total_pages: int


@dataclass
class WalletStats:
    total_positions: int = 0
    open_positions: int = 0
    closed_positions: int = 0
    won_positions: int = 0
    lost_positions: int = 0
    total_volume: int = 0
    total_pnl: int = 0
    total_fees_paid: int = 0
    win_rate: float = 0.0


@dataclass
class _State:
    """Everything `to_json` persists; validated by pydantic on the way back in."""

    format: int
    seed: int
    fee_bps: int
    owner_check: bool
    close_status: int
    auto_settle: bool
    strict_wallets: bool
    next_position_id: int
    wallets: list[str]
    markets: list[Market]
    positions: list[Position]
    audit: list[AuditRow] = field(default_factory=list)
    n_markets: int = 12
    next_slot: int | None = None  # None in files saved before markets were supplied by slot
    next_market_id: int | None = None


_STATE_ADAPTER: TypeAdapter[_State] = TypeAdapter(_State)


# --------------------------------------------------------------------------- pure helpers

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_INT_RE = re.compile(r"[+-]?[0-9]+")


def b58encode(data: bytes) -> str:
    """Bitcoin/Solana base58 (no checksum)."""
    n = int.from_bytes(data, "big")
    out: list[str] = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`; ValueError on a character outside the alphabet."""
    n = 0
    for ch in text:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"not a base58 character: {ch!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def is_solana_address(text: str) -> bool:
    """32..44 base58 characters decoding to a 32-byte public key."""
    if not 32 <= len(text) <= 44:
        return False
    try:
        return len(b58decode(text)) == 32
    except ValueError:
        return False


def require_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """A JSON integer (bools excluded, as serde would) within i64 and above `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgs(f"{name} must be an integer")
    if not -I64_MAX - 1 <= value <= I64_MAX:
        raise InvalidArgs(f"{name} is out of range")
    if minimum is not None and value < minimum:
        raise InvalidArgs(f"{name} must be >= {minimum}")
    return value


def clamp_paging(page: int | None, limit: int | None) -> tuple[int, int]:
    """page >= 1; limit defaults to 50 and is clamped to 1..100 (NOTES.md)."""
    page_n = 1 if page is None else max(1, page)
    limit_n = DEFAULT_LIMIT if limit is None else min(MAX_LIMIT, max(1, limit))
    return page_n, limit_n


def effective_odds_bps(
    selected_team: int, multiplier_bps: int, home: int | None, away: int | None
) -> int:
    """The multiplier, overridden by the chosen side's odds when those were given."""
    if selected_team == 1 and home is not None:
        return home
    if selected_team == 2 and away is not None:
        return away
    return multiplier_bps


def position_odds_bps(p: Position) -> int:
    return effective_odds_bps(p.selected_team, p.multiplier_bps, p.odds_home_bps, p.odds_away_bps)


def proxy_payout(amount: int, odds_bps: int) -> int:
    """``amount * odds``: what the proxy layer shows, and what settlement pays."""
    return amount * odds_bps // BPS


def backend_payout(amount: int, multiplier_bps: int, odds_bps: int) -> int:
    """``amount * odds * multiplier``: the backend's stored value (multiplier applied twice)."""
    return amount * odds_bps * multiplier_bps // (BPS * BPS)


def _rng(seed: int, *parts: object) -> random.Random:
    """A seeded, reproducible generator (str seeds hash with SHA-512: stable across runs)."""
    return random.Random(":".join(["alura-sim", str(seed), *map(str, parts)]))  # noqa: S311


def _slot_shape(n_markets: int) -> tuple[int, int]:
    """(slot length, markets per slot) giving about `n_markets` starts per three days."""
    if n_markets <= 0:
        return HORIZON_MS, 0
    per_slot = -(-n_markets * _QUARTER_MS // HORIZON_MS)
    quarters = round(HORIZON_MS * per_slot / n_markets / _QUARTER_MS)
    return max(1, quarters) * _QUARTER_MS, per_slot


def _digest(seed: int, *parts: object, size: int = 32) -> bytes:
    text = ":".join(["alura-sim", str(seed), *map(str, parts)]).encode()
    return hashlib.sha512(text).digest()[:size]


_TEAMS = (
    "Arsenal", "Aston Villa", "Barcelona", "Bayern Munich", "Benfica", "Borussia Dortmund",
    "Celtic", "Chelsea", "Flamengo", "Galatasaray", "Inter", "Juventus", "Liverpool",
    "Manchester City", "Napoli", "Paris Saint-Germain", "Porto", "Real Madrid", "River Plate",
    "Sevilla", "Tottenham", "Atletico Madrid",
)  # fmt: skip


def _example_market() -> Market:
    """The documents' example market: open for bets forever (see the module docstring)."""
    return Market(
        id=EXAMPLE_MARKET_ID,
        fixture_id=str(EXAMPLE_MARKET_ID),
        address=EXAMPLE_MARKET_ADDRESS,
        home_team="A",
        away_team="B",
        status=int(MarketStatus.OPEN),
        multiplier_bps=12_000,
        odds_home_bps=10_500,
        odds_away_bps=9_500,
        starts_at_ms=NEVER_MS,
        settles_at_ms=NEVER_MS,
    )


# --------------------------------------------------------------------------- the venue


class PositionsVenue:
    """The whole simulated service: markets, positions, settlement, stats, audit.

    Deterministic for a given seed, clock and call sequence. Thread-safe (one re-entrant lock),
    and every public method returns copies, so callers cannot mutate state behind the lock.
    `revision` counts state changes, reads included (they settle and add markets), so a caller
    that persists the state knows when to save.
    """

    def __init__(
        self,
        clock: SimClock,
        seed: int,
        *,
        owner_check: bool = True,
        fee_bps: int = DEFAULT_FEE_BPS,
        close_status: int = int(PositionStatus.CANCELLED),
        auto_settle: bool = True,
        strict_wallets: bool = False,
        n_markets: int = 12,
        n_past_markets: int = 6,
        example_market: bool = False,
    ) -> None:
        if not 0 <= fee_bps <= BPS:
            raise ValueError(f"fee_bps must be within 0..{BPS}")
        if close_status not in CLOSE_STATUSES:
            raise ValueError(f"close_status must be one of {sorted(CLOSE_STATUSES)}")
        if n_markets < 0 or n_past_markets < 0:
            raise ValueError("market counts must be >= 0")
        self.clock = clock
        self.seed = seed
        self.owner_check = owner_check
        self.fee_bps = fee_bps
        self.close_status = close_status
        self.auto_settle = auto_settle
        self.strict_wallets = strict_wallets
        self._lock = threading.RLock()
        self._markets: dict[int, Market] = {}
        self._by_address: dict[str, Market] = {}
        self._positions: dict[int, Position] = {}
        self._wallets: set[str] = set()
        self._audit: list[AuditRow] = []
        self._next_id = FIRST_POSITION_ID
        self._positioned: set[str] = set()
        self._revision = 0
        self._n_markets = n_markets
        self._slot_ms, self._per_slot = _slot_shape(n_markets)
        self._generate_markets(n_markets, n_past_markets)
        self._next_market_id = len(self._markets) + 1
        if example_market:
            self._add_market(_example_market())
        self._next_slot = -(-(self.clock.now_ms() + HORIZON_MS) // self._slot_ms)
        self._settle_locked(self.clock.now_ms())

    @property
    def revision(self) -> int:
        """Grows with every change to what `to_json` holds (not persisted: compare, don't store)."""
        return self._revision

    # ---------------------------------------------------------------- markets

    def _generate_markets(self, n_upcoming: int, n_past: int) -> None:
        rng = _rng(self.seed, "markets")
        start = self.clock.now_ms()
        quarter = 15 * 60_000
        starts: list[int] = []
        for _ in range(n_past):  # already played, settled before the clock starts
            starts.append(start - rng.randint(3 * _HOUR_MS, 10 * _DAY_MS) // quarter * quarter)
        for _ in range(n_upcoming):  # spread over the next three simulated days
            starts.append(start + rng.randint(_HOUR_MS, 3 * _DAY_MS) // quarter * quarter)
        for market_id, starts_at in enumerate(sorted(starts), start=1):
            self._add_market(self._draw_market(market_id, starts_at, rng))

    def _draw_market(self, market_id: int, starts_at: int, rng: random.Random) -> Market:
        home, away = rng.sample(_TEAMS, 2)
        p_home = rng.uniform(0.25, 0.75)
        margin = 1.05
        return Market(
            id=market_id,
            fixture_id=str(market_id),
            address=b58encode(_digest(self.seed, "market", market_id)),
            home_team=home,
            away_team=away,
            status=int(MarketStatus.OPEN),
            multiplier_bps=rng.choice((10_000, 11_000, 12_000, 15_000)),
            odds_home_bps=int(BPS / (p_home * margin)),
            odds_away_bps=int(BPS / ((1 - p_home) * margin)),
            starts_at_ms=starts_at,
            settles_at_ms=starts_at + _MATCH_MS,
        )

    def _supply_markets(self, now_ms: int) -> None:
        """Fill every slot that ends within HORIZON_MS of `now_ms`, in slot order.

        After a long jump, slots whose markets would all be past RETAIN_MS already are skipped,
        ids included, so the result matches a venue that was stepped there.
        """
        if not self._per_slot:
            return
        end = (now_ms + HORIZON_MS) // self._slot_ms
        unseen = (now_ms - RETAIN_MS - _MATCH_MS) // self._slot_ms - 1
        if unseen > self._next_slot:
            self._next_market_id += (unseen - self._next_slot) * self._per_slot
            self._next_slot = unseen
        while self._next_slot < end:
            rng = _rng(self.seed, "slot", self._next_slot)
            base = self._next_slot * self._slot_ms
            quarters = self._slot_ms // _QUARTER_MS
            for starts_at in sorted(
                base + rng.randrange(quarters) * _QUARTER_MS for _ in range(self._per_slot)
            ):
                self._add_market(self._draw_market(self._next_market_id, starts_at, rng))
                self._next_market_id += 1
            self._next_slot += 1

    def _prune_markets(self, now_ms: int) -> None:
        """Drop settled markets nobody bet on, RETAIN_MS after they settled."""
        cutoff = now_ms - RETAIN_MS
        stale = [
            m
            for m in self._markets.values()
            if m.settles_at_ms < cutoff
            and m.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED)
            and m.address not in self._positioned
        ]
        for m in stale:
            del self._markets[m.id]
            del self._by_address[m.address]
            self._revision += 1

    def _add_market(self, market: Market) -> None:
        self._markets[market.id] = market
        self._by_address[market.address] = market
        self._revision += 1

    def markets(self, now_ms: int | None = None) -> list[Market]:
        """All markets (copies) as of `now_ms` (default: the clock), in the order they were made."""
        with self._lock:
            self._maybe_settle(now_ms)
            return [copy.copy(m) for m in self._markets.values()]

    def market(self, key: str | int) -> Market:
        with self._lock:
            self._maybe_settle()
            return copy.copy(self._find_market(key))

    def _find_market(self, key: str | int) -> Market:
        """By fixture (market) id first, then by address, as the service looks it up."""
        if isinstance(key, int) and not isinstance(key, bool):
            found = self._markets.get(key)
            if found is not None:
                return found
            key = str(key)
        if isinstance(key, str):
            text = key.strip()
            if _INT_RE.fullmatch(text):
                found = self._markets.get(int(text))
                if found is not None:
                    return found
            found = self._by_address.get(text)
            if found is not None:
                return found
        raise NotFound(f"market {key!r} not found")

    # ---------------------------------------------------------------- queries

    def wallets(self) -> list[str]:
        with self._lock:
            return sorted(self._wallets)

    def get_position(self, position_id: int) -> Position:
        with self._lock:
            self._maybe_settle()
            return copy.deepcopy(self._get(position_id))

    def _get(self, position_id: int) -> Position:
        found = self._positions.get(position_id)
        if found is None:
            raise NotFound(f"position {position_id} not found")
        return found

    def list_positions(
        self,
        wallet: str,
        status: str | None = None,
        fixture_id: str | None = None,
        page: int | None = 1,
        limit: int | None = None,
    ) -> PositionPage:
        """A wallet's positions, newest (highest id) first, filtered and paged per NOTES.md.

        status: ``current``/``open`` -> placed (1); ``history``/``closed`` -> anything else;
        any other value (``all``, ``OPEN``, ``2``...) applies no filter. A numeric fixture_id
        matches the market id, anything else the market address.
        """
        page_n, limit_n = clamp_paging(page, limit)
        with self._lock:
            self._maybe_settle()
            self._require_wallet(wallet)
            rows = [p for p in self._positions.values() if p.wallet_address == wallet]
            if status in ("current", "open"):
                rows = [p for p in rows if p.status == PositionStatus.PLACED]
            elif status in ("history", "closed"):
                rows = [p for p in rows if p.status != PositionStatus.PLACED]
            if fixture_id:
                if _INT_RE.fullmatch(fixture_id):
                    market = self._markets.get(int(fixture_id))
                    address = market.address if market is not None else None
                else:
                    address = fixture_id
                rows = [p for p in rows if p.market_address == address]
            rows.sort(key=lambda p: p.id, reverse=True)
            total = len(rows)
            offset = (page_n - 1) * limit_n
            chosen = [copy.deepcopy(p) for p in rows[offset : offset + limit_n]]
        return PositionPage(chosen, page_n, limit_n, total, -(-total // limit_n))

    def stats(self, wallet: str) -> WalletStats:
        """Derived from the wallet's positions; win_rate = won / (won + lost), 0 when none."""
        with self._lock:
            self._maybe_settle()
            self._require_wallet(wallet)
            rows = [p for p in self._positions.values() if p.wallet_address == wallet]
        won = sum(p.status == PositionStatus.WON for p in rows)
        lost = sum(p.status == PositionStatus.LOST for p in rows)
        placed = sum(p.status == PositionStatus.PLACED for p in rows)
        return WalletStats(
            total_positions=len(rows),
            open_positions=placed,
            closed_positions=len(rows) - placed,
            won_positions=won,
            lost_positions=lost,
            total_volume=sum(p.amount for p in rows),
            total_pnl=sum(p.pnl for p in rows),
            total_fees_paid=sum(p.fee_paid for p in rows),
            win_rate=won / (won + lost) if won + lost else 0.0,
        )

    def audit_log(self, position_id: int | None = None) -> list[AuditRow]:
        with self._lock:
            return [
                copy.copy(a)
                for a in self._audit
                if position_id is None or a.position_id == position_id
            ]

    def _require_wallet(self, wallet: str) -> None:
        if wallet not in self._wallets:
            raise NotFound(f"wallet {wallet!r} not found")

    # ---------------------------------------------------------------- commands

    def open_position(
        self,
        wallet: str,
        market: str | int,
        selected_team: int,
        amount: int,
        multiplier_bps: int,
        odds_home_bps: int | None = None,
        odds_away_bps: int | None = None,
    ) -> Position:
        """Place a bet. INVALID_ARGS for bad input, NotFound for an unknown market,
        MARKET_NOT_OPEN once the market has reached its settlement time."""
        self._check_wallet(wallet)
        selected_team = require_int(selected_team, "selected_team")
        if selected_team not in (1, 2):
            raise InvalidArgs("selected_team must be 1 or 2")
        amount = require_int(amount, "amount", minimum=1)
        multiplier_bps = require_int(multiplier_bps, "multiplier_bps", minimum=1)
        if odds_home_bps is not None:
            odds_home_bps = require_int(odds_home_bps, "odds_home_bps", minimum=1)
        if odds_away_bps is not None:
            odds_away_bps = require_int(odds_away_bps, "odds_away_bps", minimum=1)
        with self._lock:
            now = self.clock.now_ms()
            self._maybe_settle(now)
            found = self._find_market(market)
            if found.status not in (MarketStatus.OPEN, MarketStatus.LIVE) or (
                now >= found.settles_at_ms
            ):
                raise MarketNotOpen(f"market {found.id} has status {found.status}")
            position = self._create(
                wallet,
                found,
                selected_team,
                amount,
                multiplier_bps,
                odds_home_bps,
                odds_away_bps,
                now,
            )
            return copy.deepcopy(position)

    def _check_wallet(self, wallet: object) -> None:
        if not isinstance(wallet, str) or not wallet.strip():
            raise InvalidArgs("wallet_address is required")
        if self.strict_wallets and not is_solana_address(wallet):
            raise InvalidArgs("wallet_address is not a base58 Solana address")

    def _create(
        self,
        wallet: str,
        market: Market,
        selected_team: int,
        amount: int,
        multiplier_bps: int,
        odds_home_bps: int | None,
        odds_away_bps: int | None,
        at_ms: int,
    ) -> Position:
        pid = self._next_id
        self._next_id += 1
        odds = effective_odds_bps(selected_team, multiplier_bps, odds_home_bps, odds_away_bps)
        at = ms_to_iso(at_ms)
        position = Position(
            id=pid,
            wallet_address=wallet,
            market_address=market.address,
            position_type="OPEN",
            selected_team=selected_team,
            amount=amount,
            multiplier_bps=multiplier_bps,
            payout_expected=backend_payout(amount, multiplier_bps, odds),
            status=int(PositionStatus.PLACED),
            is_claimed=False,
            pnl=0,
            fee_paid=amount * self.fee_bps // BPS,
            timestamp=at,
            created_at=at,
            updated_at=at,
            confirmation_status="confirmed",
            market=PositionMarket(
                market.fixture_id, market.home_team, market.away_team, market.status
            ),
            bet_address=b58encode(_digest(self.seed, "bet", pid)),
            odds_home_bps=odds_home_bps,
            odds_away_bps=odds_away_bps,
            transaction_signature=b58encode(_digest(self.seed, "tx", pid, "open", size=64)),
        )
        self._positions[pid] = position
        self._positioned.add(market.address)
        self._wallets.add(wallet)
        self._record(position, "open", wallet, None, at)
        return position

    def close_position(
        self,
        position_id: int,
        wallet_address: str | None = None,
        close_price: int | None = None,
        expected_version: int | None = None,
    ) -> Position:
        """Close early, in one locked step with a version check (NOTES.md).

        With ``owner_check`` (default) a missing or foreign wallet is NOT_OWNER: the bot must
        always say whose position it closes. Already closed or version moved -> CONFLICT.
        """
        position_id = require_int(position_id, "position_id", minimum=1)
        if close_price is not None:
            close_price = require_int(close_price, "close_price", minimum=0)
        if wallet_address is not None and not isinstance(wallet_address, str):
            raise InvalidArgs("wallet_address must be a string")
        with self._lock:
            now = self.clock.now_ms()
            self._maybe_settle(now)
            position = self._get(position_id)
            if self.owner_check and wallet_address != position.wallet_address:
                raise NotOwner(f"position {position_id} is not owned by {wallet_address!r}")
            if position.status != PositionStatus.PLACED:
                raise Conflict(f"position {position_id} is not open (status {position.status})")
            if expected_version is not None and expected_version != position.version:
                raise Conflict(
                    f"position {position_id} is at version {position.version}, "
                    f"expected {expected_version}"
                )
            self._close(position, close_price, wallet_address, now)
            return copy.deepcopy(position)

    def _close(self, p: Position, close_price: int | None, actor: str | None, at_ms: int) -> None:
        old = p.status
        price = p.amount if close_price is None else close_price
        at = ms_to_iso(at_ms)
        p.status = self.close_status
        p.position_type = "CLOSE"
        p.close_price = price
        p.close_pnl = price - p.amount
        p.pnl = p.close_pnl - p.fee_paid
        p.closed_at = p.updated_at = at
        p.version += 1
        self._record(p, "close", actor, old, at, f"close_price={price}")

    def settle(self, now_ms: int | None = None) -> list[int]:
        """Move markets on to `now_ms` (default: the clock); returns ids of positions resolved.

        Idempotent, and independent of how often it runs: outcomes come from the seed and
        resolution times are the markets' own `settles_at_ms`.
        """
        with self._lock:
            return self._settle_locked(self.clock.now_ms() if now_ms is None else now_ms)

    def _maybe_settle(self, now_ms: int | None = None) -> None:
        if self.auto_settle:
            self._settle_locked(self.clock.now_ms() if now_ms is None else now_ms)

    def _settle_locked(self, now_ms: int) -> list[int]:
        self._supply_markets(now_ms)
        resolved: list[int] = []
        for market in self._markets.values():
            before = market.status
            if market.status == MarketStatus.OPEN and now_ms >= market.starts_at_ms:
                market.status = int(MarketStatus.LIVE)
            if market.status == MarketStatus.LIVE and now_ms >= market.settles_at_ms:
                self._resolve_market(market)
                for p in self._positions.values():
                    if p.market_address == market.address and p.status == PositionStatus.PLACED:
                        self._apply_outcome(p, market)
                        resolved.append(p.id)
            if market.status != before:
                self._revision += 1
                for p in self._positions.values():
                    if p.market_address == market.address and p.market is not None:
                        p.market.status = market.status
        self._prune_markets(now_ms)
        return resolved

    def _resolve_market(self, market: Market) -> None:
        rng = _rng(self.seed, "outcome", market.id)
        draw = rng.random()
        if draw < P_CANCELLED:
            market.status, market.winner = int(MarketStatus.CANCELLED), None
        elif draw < P_CANCELLED + P_VOID:
            market.status, market.winner = int(MarketStatus.SETTLED), None  # void: refunds
        else:
            p_home = market.odds_away_bps / (market.odds_home_bps + market.odds_away_bps)
            market.status = int(MarketStatus.SETTLED)
            market.winner = 1 if rng.random() < p_home else 2

    def _apply_outcome(self, p: Position, market: Market) -> None:
        old = p.status
        if market.status == MarketStatus.CANCELLED:
            p.status, p.pnl = int(PositionStatus.CANCELLED), -p.fee_paid
        elif market.winner is None:
            p.status, p.pnl = int(PositionStatus.REFUNDED), 0
        elif market.winner == p.selected_team:
            payout = proxy_payout(p.amount, position_odds_bps(p))
            p.status, p.pnl = int(PositionStatus.WON), payout - p.amount - p.fee_paid
        else:
            p.status, p.pnl = int(PositionStatus.LOST), -p.amount - p.fee_paid
        at = ms_to_iso(market.settles_at_ms)
        p.closed_at = p.updated_at = at
        p.version += 1
        self._record(p, "settle", None, old, at, f"market {market.id} winner={market.winner}")

    def _record(
        self,
        p: Position,
        action: Literal["open", "close", "settle"],
        actor: str | None,
        old_status: int | None,
        at: str,
        detail: str = "",
    ) -> None:
        row = AuditRow(
            len(self._audit) + 1, at, action, p.id, actor, old_status, p.status, p.version, detail
        )
        self._audit.append(row)
        self._revision += 1

    # ---------------------------------------------------------------- seeding

    def seed_wallet(self, wallet: str, n: int) -> list[Position]:
        """Give `wallet` a plausible history of `n` positions (n=0 just registers it).

        Settled bets on past markets, open bets on upcoming ones, some closed early; created in
        time order so ids still grow with creation time. Deterministic per seed and call order.
        """
        self._check_wallet(wallet)
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            now = self.clock.now_ms()
            self._maybe_settle(now)
            if wallet not in self._wallets:
                self._wallets.add(wallet)
                self._revision += 1
            rng = _rng(self.seed, "wallet", wallet, self._next_id)
            past = [
                m
                for m in self._markets.values()
                if m.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED)
            ]
            live = [
                m
                for m in self._markets.values()
                if m.status in (MarketStatus.OPEN, MarketStatus.LIVE)
                and now < m.settles_at_ms < NEVER_MS
            ]
            plans: list[tuple[int, Market, bool]] = []
            for _ in range(n):
                if past and (not live or rng.random() < 0.6):
                    m = rng.choice(past)
                    at = m.starts_at_ms - rng.randint(10 * 60_000, 2 * _DAY_MS)
                    plans.append((at, m, False))
                elif live:
                    m = rng.choice(live)
                    at = min(now, m.starts_at_ms) - rng.randint(60_000, 6 * _HOUR_MS)
                    plans.append((at, m, rng.random() < 0.3))
            created: list[Position] = []
            for at, m, close_early in sorted(plans, key=lambda t: (t[0], t[1].id)):
                team = rng.choice((1, 2))
                amount = rng.randint(1, 50) * 100_000_000
                multiplier = rng.choice((10_000, 11_000, 12_000, 15_000))
                p = self._create(
                    wallet, m, team, amount, multiplier, m.odds_home_bps, m.odds_away_bps, at
                )
                if p.market is not None:
                    p.market.status = m.status
                if m.status in (MarketStatus.SETTLED, MarketStatus.CANCELLED):
                    self._apply_outcome(p, m)
                elif close_early:
                    self._close(p, amount * rng.randint(50, 150) // 100, wallet, now)
                created.append(p)
            return [copy.deepcopy(p) for p in created]

    # ---------------------------------------------------------------- persistence

    def to_json(self) -> str:
        """The whole state as JSON text (settings, markets, positions, audit; not the clock)."""
        with self._lock:
            state = _State(
                format=STATE_FORMAT,
                seed=self.seed,
                fee_bps=self.fee_bps,
                owner_check=self.owner_check,
                close_status=self.close_status,
                auto_settle=self.auto_settle,
                strict_wallets=self.strict_wallets,
                next_position_id=self._next_id,
                wallets=sorted(self._wallets),
                markets=list(self._markets.values()),
                positions=list(self._positions.values()),
                audit=list(self._audit),
                n_markets=self._n_markets,
                next_slot=self._next_slot,
                next_market_id=self._next_market_id,
            )
            return json.dumps(dataclasses.asdict(state), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, clock: SimClock) -> PositionsVenue:
        """Rebuild a venue from `to_json` output; ValueError (pydantic's) if malformed."""
        state = _STATE_ADAPTER.validate_json(text, strict=True)
        if state.format != STATE_FORMAT:
            raise ValueError(f"unsupported state format {state.format}")
        venue = cls(
            clock,
            state.seed,
            owner_check=state.owner_check,
            fee_bps=state.fee_bps,
            close_status=state.close_status,
            auto_settle=False,  # restore first, settle afterwards
            strict_wallets=state.strict_wallets,
            n_markets=0,
            n_past_markets=0,
        )
        for market in state.markets:
            venue._add_market(market)
        for position in state.positions:
            if position.market_address not in venue._by_address:
                raise ValueError(f"position {position.id} refers to an unknown market")
            venue._positions[position.id] = position
        venue._positioned = {p.market_address for p in state.positions}
        venue._n_markets = state.n_markets
        venue._slot_ms, venue._per_slot = _slot_shape(state.n_markets)
        last_id = max([0, *(m.id for m in state.markets)])
        venue._next_market_id = max(state.next_market_id or 1, last_id + 1)
        if state.next_slot is not None:
            venue._next_slot = state.next_slot
        else:
            last_start = max([venue.clock.now_ms(), *(m.starts_at_ms for m in state.markets)])
            venue._next_slot = last_start // venue._slot_ms + 1
        venue._wallets = set(state.wallets) | {p.wallet_address for p in state.positions}
        venue._audit = list(state.audit)
        venue._next_id = max([state.next_position_id, *(p.id + 1 for p in state.positions)])
        venue.auto_settle = state.auto_settle
        return venue
