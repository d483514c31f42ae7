"""One engine cycle: fetch, snapshot, strategies, risk, journal intent, execute, journal outcome.

A failing or slow strategy is isolated (its error is journaled, the others go on); a decision is
journaled with its verdict before anything is sent, and an intent is committed before any request
that moves money (safety rule 2). An unknown outcome is reconciled, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from bot import failpoints
from bot.api.errors import ApiError, DuplicateAsset, OutcomeUnknown
from bot.domain import (
    INTERVAL_SECONDS,
    AccountView,
    ClosePosition,
    CloseSession,
    Decision,
    Hold,
    OpenAdvanced,
    OpenQuick,
    SessionView,
    Side,
    decision_action,
)
from bot.engine.clock import Clock
from bot.engine.executor import AccountState, Executor, open_request
from bot.engine.market import MarketSnapshot
from bot.engine.risk import RiskGate
from bot.journal import Journal, SessionRow
from bot.market import session_model as sm
from strategies.base import GuardState, PositionManager, Strategy

log = logging.getLogger("bot.engine")
ZERO = Decimal(0)
DAY_MS = 86_400_000


class StrategyBusy(RuntimeError):
    """The strategy has not returned from an earlier tick: it is skipped, not queued."""


T = TypeVar("T")


class SlotWorker:
    """One daemon thread per strategy, so a hung strategy holds only its own thread, is skipped
    while it hangs (never queued behind itself), and cannot keep the process from exiting."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy = False
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            fn, future = self._jobs.get()
            result: Any = None
            failure: BaseException | None = None
            try:
                result = fn()
            except Exception as exc:  # handed to the awaiting tick, which journals it
                failure = exc
            except BaseException as exc:  # a strategy's sys.exit() must not end the daemon
                failure = RuntimeError(f"{type(exc).__name__} raised in the strategy")
            self.busy = False
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                future.get_loop().call_soon_threadsafe(_settle, future, result, failure)

    async def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        if self.busy:
            raise StrategyBusy(f"still running from an earlier tick (limit {timeout_s:g} s)")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"strategy-{self.name}", daemon=True
            )
            self._thread.start()
        self.busy = True
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no answer within {timeout_s:g} s") from None


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # timed out meanwhile: nobody waits for it any more
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


@dataclass
class StrategySlot:
    """A configured strategy instance, the assets it trades, and the thread it runs on."""

    strategy: Strategy[Any] | PositionManager
    assets: list[str]
    worker: SlotWorker = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.worker = SlotWorker(self.strategy.name)

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def interval(self) -> str | None:
        return self.strategy.interval if isinstance(self.strategy, Strategy) else None


@dataclass
class TickReport:
    tick_id: int
    interval: str
    decisions: list[tuple[Decision, bool, str]] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0


class MarketSource(Protocol):
    """What the engine needs of the market (LiveMarket, or a replay in tests)."""

    async def snapshot(self, interval: str, assets: list[str], now_ms: int) -> MarketSnapshot: ...


def last_row_decisions(
    strategy: Strategy[Any],
    asset: str,
    snapshot: MarketSnapshot,
    open_by_strategy: set[str],
    values: dict[str, dict[str, float]] | None = None,
) -> list[Decision]:
    """The engine's reading of a candle strategy: only the last closed candle's flags matter.
    The row's indicator values go to `values[asset]` for the journal."""
    candles = snapshot.candles[asset]
    if len(candles) < strategy.warmup:
        return [
            Hold(strategy.name, asset, f"warming up ({len(candles)}/{strategy.warmup} candles)")
        ]
    flags = strategy.last_row(asset, candles)
    if values is not None:
        values[asset] = flags.values
    when = datetime.fromtimestamp(int(candles.ts[-1]) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    if asset in open_by_strategy:
        if flags.exit_long or flags.exit_short:
            return [CloseSession(strategy.name, asset, f"exit signal on the {when} candle")]
        return []
    if flags.enter_long:
        return [strategy.open_decision(asset, Side.LONG, f"long entry on the {when} candle")]
    if flags.enter_short:
        return [strategy.open_decision(asset, Side.SHORT, f"short entry on the {when} candle")]
    return []


def decision_inputs(
    decision: Decision,
    snapshot: MarketSnapshot,
    interval: str,
    signal_times: dict[str, int | None],
    values: dict[tuple[str, str], dict[str, float]],
) -> dict[str, Any]:
    """What the decision was made on, for the journal: the candle, the venue's signal, and the
    strategy's indicator values on that row (non-finite values as strings, JSON has no NaN)."""
    asset = getattr(decision, "asset", "") or ""
    out: dict[str, Any] = {"interval": interval, "signal_time": signal_times.get(asset)}
    candles = snapshot.candles.get(asset)
    if candles is not None and len(candles):
        out["candle_time"] = int(candles.ts[-1])
        out["close"] = float(candles.close[-1])
    sig = snapshot.signals.get(asset)
    if sig is not None:
        out["signal"] = {"signal": str(sig.signal), "strength": sig.strength}
    row = values.get((decision.strategy, asset))
    if row:
        out["indicators"] = {
            k: v if v == v and abs(v) != float("inf") else str(v) for k, v in row.items()
        }
    return out


def utc_day_start(now_ms: int) -> int:
    return now_ms - now_ms % DAY_MS


class Engine:
    """Runs ticks and reconciliation over one journal, one executor and the configured slots."""

    def __init__(
        self,
        *,
        slots: list[StrategySlot],
        market: MarketSource,
        executor: Executor,
        journal: Journal,
        risk: RiskGate,
        clock: Clock,
        strategy_timeout_s: float = 10.0,
        metrics: Any = None,
        reconciler: Callable[[str], Any] | None = None,
        on_tick: Callable[[TickReport], None] | None = None,
        positions: Any = None,
    ) -> None:
        self.slots = slots
        self.market = market
        self.executor = executor
        self.journal = journal
        self.risk = risk
        self.clock = clock
        self.strategy_timeout_s = strategy_timeout_s
        self.metrics = metrics
        self.reconciler = reconciler
        self.on_tick = on_tick
        self.positions = positions
        self.lock = asyncio.Lock()
        self.stopping = False
        self.last_tick_ms: int | None = None
        self.last_snapshot: MarketSnapshot | None = None

    # -- helpers ----------------------------------------------------------------------------

    def intervals(self) -> list[str]:
        found = {s.interval for s in self.slots if s.interval}
        return sorted(found, key=lambda i: INTERVAL_SECONDS[i]) or ["1h"]

    def _assets_for(self, interval: str) -> list[str]:
        assets: list[str] = []
        for slot in self.slots:
            if slot.interval in (interval, None):
                assets += [a for a in slot.assets if a not in assets]
        return assets

    def _session_views(
        self, rows: list[SessionRow], unrealized: dict[str, Decimal]
    ) -> tuple[SessionView, ...]:
        return tuple(
            SessionView(
                session_id=r.id,
                asset=r.asset,
                kind=r.kind,
                budget=r.budget,
                opened_at_ms=r.opened_at,
                strategy=r.strategy,
                unrealized_pnl=unrealized.get(r.id, ZERO),
            )
            for r in rows
        )

    async def _run_strategy(
        self,
        slot: StrategySlot,
        snapshot: MarketSnapshot,
        open_assets: dict[str, str],
        values: dict[tuple[str, str], dict[str, float]],
    ) -> list[Decision]:
        strategy = slot.strategy
        assert isinstance(strategy, Strategy)
        mine = {a for a, owner in open_assets.items() if owner == slot.name}
        rows: dict[str, dict[str, float]] = {}

        def run() -> list[Decision]:
            out: list[Decision] = []
            for asset in slot.assets:
                if asset in snapshot.candles:
                    out += last_row_decisions(strategy, asset, snapshot, mine, rows)
                else:
                    reason = snapshot.problems.get(asset, "no candles")
                    out.append(Hold(slot.name, asset, f"no valid market data: {reason}"))
            return out

        decisions = await slot.worker.run(run, self.strategy_timeout_s)
        values.update({(slot.name, a): v for a, v in rows.items()})
        return decisions

    async def _run_slots(
        self,
        slots: list[StrategySlot],
        call: Callable[[StrategySlot], Any],
        report: TickReport,
        what: str,
    ) -> list[Decision]:
        """Every slot at once, each on its own thread with its time limit: one slow or failing
        strategy costs only its own decisions, never the others' or the tick."""
        results = await asyncio.gather(*(call(slot) for slot in slots), return_exceptions=True)
        decisions: list[Decision] = []
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                msg = f"{what} {slot.name} failed: {type(result).__name__}: {result}"[:300]
                log.error(msg)
                report.errors.append(msg)
            else:
                decisions += result
        return decisions

    # -- the tick ---------------------------------------------------------------------------

    async def tick(self, interval: str) -> TickReport | None:
        """Run one tick; None when the engine is stopping (no new work starts then)."""
        if self.stopping:
            return None
        async with self.lock:
            if self.stopping:
                return None
            return await self._tick(interval)

    async def _snapshot_and_account(
        self, interval: str, now: int
    ) -> tuple[MarketSnapshot, AccountState | None]:
        """Both at once when the account does not depend on the snapshot (one round trip less
        per tick); an error in either is raised after both have finished."""
        snapshot = self.market.snapshot(interval, self._assets_for(interval), now)
        if self.executor.account_follows_snapshot:
            return await snapshot, None
        market, account = await asyncio.gather(
            snapshot, self.executor.account(now), return_exceptions=True
        )
        if isinstance(market, BaseException):
            raise market
        if isinstance(account, BaseException):
            raise account
        return market, account

    async def _tick(self, interval: str) -> TickReport:
        started = time.perf_counter()
        now = self.clock.now_ms()
        tick_id = self.journal.tick_started(now, interval)
        report = TickReport(tick_id, interval)
        try:
            snapshot, early = await self._snapshot_and_account(interval, now)
            self.last_snapshot = snapshot
            for closed in await self.executor.on_snapshot(snapshot):
                self.journal.close_session(closed.session_id, now, closed.realized_pnl, closed.fees)
                report.closed.append(closed.session_id)
            account = early if early is not None else await self.executor.account(now)
            unrealized = {sid: v.unrealized_pnl for sid, v in account.sessions.items()}
            open_rows = self.journal.open_sessions()
            open_assets = {r.asset: r.strategy for r in open_rows}
            values: dict[tuple[str, str], dict[str, float]] = {}
            decisions = await self._run_slots(
                [s for s in self.slots if s.interval == interval],
                lambda slot: self._run_strategy(slot, snapshot, open_assets, values),
                report,
                "strategy",
            )
            paused = self.journal.paused
            views = self._session_views(open_rows, unrealized)
            managers = [s for s in self.slots if isinstance(s.strategy, PositionManager)]
            if managers and interval == self.intervals()[0]:
                guard = GuardState(now, views, await self._managed_positions(now, report), paused)
                decisions += await self._run_slots(
                    managers, lambda slot: self._manage(slot, guard), report, "manager"
                )
            view = AccountView(
                free_balance=account.free_balance,
                realized_pnl_today=self.journal.realized_pnl_between(utc_day_start(now), now + 1),
                open_sessions=views,
                paused=paused,
                last_close_ms=self.journal.last_close_by_asset(),
            )
            unresolved = self.journal.unresolved_intents()
            pending = {i.asset for i in unresolved if i.asset} | {
                f"position:{i.request.get('position_id')}"
                for i in unresolved
                if i.kind == "positions_close"
            }
            signal_times = {a: snapshot.signal_time_ms(a) for a in snapshot.candles}
            for a, c in snapshot.candles.items():
                if len(c) and signal_times.get(a) is None:
                    signal_times[a] = int(c.ts[-1])
            verdicts = self.risk.check_batch(
                decisions,
                account=view,
                now_ms=now,
                signal_times=signal_times,
                interval_ms=INTERVAL_SECONDS[interval] * 1000,
                pending_assets=pending,
            )
            states = [
                "hold" if isinstance(d, Hold) else ("accepted" if v.accepted else "vetoed")
                for d, v in zip(decisions, verdicts, strict=True)
            ]
            ids = self.journal.record_decisions(
                tick_id,
                now,
                [
                    (
                        d,
                        state,
                        None if v.accepted else v.reason,
                        decision_inputs(d, snapshot, interval, signal_times, values),
                    )
                    for d, v, state in zip(decisions, verdicts, states, strict=True)
                ],
            )
            unsent = 0
            for decision, verdict, state, decision_id in zip(
                decisions, verdicts, states, ids, strict=True
            ):
                report.decisions.append((decision, verdict.accepted, verdict.reason))
                if self.metrics is not None:
                    self.metrics.count_decision(
                        decision.strategy,
                        decision_action(decision),
                        state,
                        None if verdict.accepted else verdict.reason,
                    )
                log.log(
                    logging.DEBUG if state == "hold" else logging.INFO,
                    "decision %s %s %s: %s",
                    decision_action(decision),
                    getattr(decision, "asset", None) or getattr(decision, "position_id", ""),
                    state,
                    decision.reason if state != "vetoed" else verdict.reason,
                    extra={"strategy": decision.strategy, "decision_id": decision_id},
                )
                if state == "accepted":
                    if self.stopping:  # SIGTERM: the request in flight may end, no new one starts
                        unsent += 1
                        continue
                    await self._execute(decision, decision_id, interval, report)
            if unsent:
                report.errors.append(f"shutting down: {unsent} accepted decision(s) not sent")
            self.journal.tick_finished(
                tick_id,
                self.clock.now_ms(),
                True,
                "; ".join(report.errors)[:500] or None,
                len(snapshot.signals),
                len(decisions),
            )
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"[:500]
            if isinstance(exc, ApiError):  # the venue failing, retries spent: expected, one line
                log.warning("tick failed: %s", msg)
            else:
                log.exception("tick failed")
            report.errors.append(msg)
            self.journal.tick_finished(tick_id, self.clock.now_ms(), False, msg, 0, 0)
        report.duration_s = time.perf_counter() - started
        self.last_tick_ms = now
        if self.metrics is not None:
            self.metrics.tick_done(report.duration_s, now / 1000)
        if self.on_tick is not None:
            self.on_tick(report)
        return report

    async def _manage(self, slot: StrategySlot, state: GuardState) -> list[Decision]:
        manager = slot.strategy
        assert isinstance(manager, PositionManager)
        return await slot.worker.run(lambda: manager.manage(state), self.strategy_timeout_s)

    # -- execution --------------------------------------------------------------------------

    async def _execute(
        self, decision: Decision, decision_id: int, interval: str, report: TickReport
    ) -> None:
        now = self.clock.now_ms()
        if isinstance(decision, OpenQuick | OpenAdvanced):
            await self._open(decision, decision_id, interval, now, report)
        elif isinstance(decision, CloseSession):
            await self._close(decision, decision_id, now, report)
        elif isinstance(decision, ClosePosition) and decision.venue == "positions":
            await self._close_user_position(decision, decision_id, now, report)

    async def _open(
        self,
        decision: OpenQuick | OpenAdvanced,
        decision_id: int,
        interval: str,
        now: int,
        report: TickReport,
    ) -> None:
        try:
            request = open_request(
                decision, getattr(self.executor, "assets", None) or self._assets()
            ).wire()
        except (ValueError, LookupError) as exc:
            log.error("refusing %s on %s: %s", decision_action(decision), decision.asset, exc)
            return
        kind = decision_action(decision)
        intent = self.journal.create_intent(
            kind,
            asset=decision.asset,
            venue="sessions",
            request=request,
            decision_id=decision_id,
            now_ms=now,
        )
        failpoints.hit("intent.committed")
        self.journal.mark_sent(intent, now)
        self._log_sent(kind, decision.asset, intent, decision)
        try:
            opened = await self.executor.open(decision, now, interval)
        except OutcomeUnknown as exc:
            self.journal.mark_unknown(intent, str(exc), self.clock.now_ms())
            log.warning("outcome unknown for %s on %s: reconciling", kind, decision.asset)
            await self._reconcile("outcome unknown")
            return
        except DuplicateAsset as exc:
            self.journal.mark_unknown(intent, str(exc), self.clock.now_ms())
            log.warning("duplicate asset on %s: reconciling, never reopening", decision.asset)
            await self._reconcile("duplicate asset")
            return
        except (ApiError, sm.SessionModelError, ValueError) as exc:
            self.journal.fail(intent, f"{type(exc).__name__}: {exc}"[:500], self.clock.now_ms())
            report.errors.append(f"{kind} {decision.asset}: {type(exc).__name__}")
            return
        failpoints.hit("open.answered")
        with self.journal.atomic():
            self.journal.confirm(intent, opened.raw, opened.session_id, self.clock.now_ms())
            self.journal.upsert_session(self._session_row(opened, decision, intent, now))
        report.opened.append(opened.session_id)

    def _log_sent(self, kind: str, subject: object, intent: str, decision: Any) -> None:
        """One line per money-moving request, with the fields an operator greps for."""
        log.info(
            "%s %s",
            kind,
            subject,
            extra={
                "intent": intent,
                "strategy": decision.strategy,
                "reason": decision.reason,
                "mode": self.executor.mode,
            },
        )

    def _assets(self) -> Any:
        from bot.domain import AssetRegistry

        return AssetRegistry()

    def _session_row(
        self, opened: Any, decision: OpenQuick | OpenAdvanced, intent: str, now: int
    ) -> SessionRow:
        return SessionRow(
            id=opened.session_id,
            asset=decision.asset,
            kind="quick" if isinstance(decision, OpenQuick) else "advanced",
            strategy=decision.strategy,
            status="open",
            budget=opened.budget,
            opened_at=now,
            closed_at=None,
            realized_pnl=None,
            fees=None,
            intent_id=intent,
            mode=self.executor.mode,
            raw=opened.raw,
            trade_id=opened.trade_id,
        )

    async def _close(
        self, decision: CloseSession, decision_id: int, now: int, report: TickReport
    ) -> None:
        row = next((r for r in self.journal.open_sessions() if r.asset == decision.asset), None)
        if row is None:
            return
        intent = self.journal.create_intent(
            "close_session",
            asset=decision.asset,
            venue="sessions",
            request={"sessionId": row.id, "tradeId": row.trade_id},
            decision_id=decision_id,
            now_ms=now,
        )
        failpoints.hit("intent.committed")
        self.journal.mark_sent(intent, now)
        self._log_sent("close_session", decision.asset, intent, decision)
        try:
            closed = await self.executor.close(row.id, row.trade_id, row.asset, now)
        except OutcomeUnknown as exc:
            self.journal.mark_unknown(intent, str(exc), self.clock.now_ms())
            await self._reconcile("outcome unknown on close")
            return
        except (ApiError, KeyError) as exc:
            self.journal.fail(intent, f"{type(exc).__name__}: {exc}"[:500], self.clock.now_ms())
            report.errors.append(f"close {decision.asset}: {type(exc).__name__}")
            return
        failpoints.hit("close.answered")
        with self.journal.atomic():
            self.journal.confirm(intent, closed.raw, row.id, self.clock.now_ms())
            self.journal.close_session(
                row.id, self.clock.now_ms(), closed.realized_pnl, closed.fees
            )
        report.closed.append(row.id)

    async def _managed_positions(self, now: int, report: TickReport) -> tuple[Any, ...]:
        """Open user positions of our own wallet, as position managers see them."""
        if self.positions is None:
            return ()
        from bot.api.errors import ApiError
        from strategies.base import ManagedPosition

        try:
            listed = [p async for p in self.positions.iter_positions(status="open")]
        except ApiError as exc:
            report.errors.append(f"positions list: {exc.kind}")
            return ()
        out = []
        for p in listed:
            if p.wallet_address != self.positions.wallet:
                continue
            status_now = p.market.status if p.market else None
            self.journal.record_position(p, now)
            out.append(
                ManagedPosition(
                    position_id=str(p.id),
                    amount=p.amount,
                    pnl=p.pnl,
                    close_pnl=p.close_pnl,
                    opened_at_ms=int(p.created_at.timestamp() * 1000),
                    market_status=status_now,
                    first_market_status=self.journal.first_market_status(str(p.id)),
                )
            )
        return tuple(out)

    async def _close_user_position(
        self, decision: ClosePosition, decision_id: int, now: int, report: TickReport
    ) -> None:
        """Close only a position just re-listed as open under our wallet; paper closes nothing."""
        from bot.api.errors import ApiError

        if self.positions is None:
            return
        if self.executor.mode != "live":
            await self.executor.close_position(self.positions, int(decision.position_id))
            log.info("paper: would close position %s (%s)", decision.position_id, decision.reason)
            return
        pid = int(decision.position_id)
        try:
            fresh = {p.id: p async for p in self.positions.iter_positions(status="open")}
        except ApiError as exc:
            report.errors.append(f"positions re-list: {exc.kind}")
            return
        if pid not in fresh or fresh[pid].wallet_address != self.positions.wallet:
            log.warning(
                "position %s changed before the close (no longer ours or open): skipped", pid
            )
            return
        intent = self.journal.create_intent(
            "positions_close",
            asset=None,
            venue="positions",
            request={"position_id": pid, "reason": decision.reason},
            decision_id=decision_id,
            now_ms=now,
        )
        self.journal.mark_sent(intent, now)
        self._log_sent("positions_close", pid, intent, decision)
        try:
            closed = await self.executor.close_position(self.positions, pid)
            failpoints.hit("close.answered")
        except OutcomeUnknown as exc:
            self.journal.mark_unknown(intent, str(exc), self.clock.now_ms())
            log.warning("outcome unknown for the close of position %s: reconciling", pid)
            await self._reconcile("outcome unknown on position close")
            return
        except ApiError as exc:
            self.journal.fail(intent, f"{type(exc).__name__}: {exc}"[:500], self.clock.now_ms())
            report.errors.append(f"close position {pid}: {exc.kind}")
            return
        if closed is None:
            self.journal.fail(intent, "the executor sent nothing", self.clock.now_ms())
            return
        with self.journal.atomic():
            self.journal.confirm(
                intent, closed.model_dump(mode="json"), str(pid), self.clock.now_ms()
            )
            self.journal.record_position(closed, self.clock.now_ms(), intent)
        report.closed.append(f"position:{pid}")

    async def _reconcile(self, why: str) -> None:
        if self.reconciler is not None:
            await self.reconciler(why)
