"""The long-running daemon: builds the engine from settings and runs it under APScheduler.

Jobs: one tick per strategy interval at each candle close (+ offset), a reconcile job, a stats job.
Start-up reconciles before the first tick and only then tells systemd READY=1. SIGTERM/SIGINT stop
scheduling, let an in-flight tick finish (bounded), and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import SecretStr

from bot import __version__
from bot.api.alura import AluraClient
from bot.api.errors import ApiError, Unauthorized
from bot.api.sim_control import venue_clock
from bot.api.transport import RequestHook, RequestRecord
from bot.domain import INTERVAL_SECONDS
from bot.engine.clock import Clock, FollowingClock, SystemClock
from bot.engine.executor import LiveExecutor, PaperExecutor
from bot.engine.market import LiveMarket
from bot.engine.reconcile import ReconcileReport, reconcile, reconcile_positions
from bot.engine.risk import RiskGate, RiskLimits
from bot.engine.systemd import Notifier
from bot.engine.tick import Engine, StrategySlot, TickReport
from bot.journal import Journal, JournalError, OwnerLock
from bot.settings import Mode, Settings

log = logging.getLogger("bot.daemon")
PAPER_STATE_KEY = "paper_executor"


class LiveModeRefused(Exception):
    """Live trading needs mode = "live" in the config AND --live on the command line."""


def effective_mode(settings: Settings, live_flag: bool) -> str:
    """Safety rule 1: both switches, or paper."""
    if settings.mode is Mode.LIVE and live_flag:
        return "live"
    if live_flag and settings.mode is not Mode.LIVE:
        raise LiveModeRefused('--live given but the config says mode = "paper"; set both')
    return "paper"


def build_slots(settings: Settings) -> list[StrategySlot]:
    """The enabled strategies with validated params; a session budget a strategy does not set
    is the config's `default_budget_usd`."""
    import strategies

    slots = []
    for cfg in settings.strategies:
        if not cfg.enabled:
            continue
        cls = strategies.resolve(cfg.name, settings.strategies_dir)
        params = dict(cfg.params)
        model = getattr(cls, "Params", None)
        if model is not None and "session" in getattr(model, "model_fields", {}):
            session = dict(params.get("session") or {})
            session.setdefault("budget", settings.default_budget_usd)
            params["session"] = session
        slots.append(StrategySlot(cls(params), [a.upper() for a in cfg.assets]))
    return slots


def risk_limits(settings: Settings) -> RiskLimits:
    r = settings.risk
    return RiskLimits(
        max_open_sessions=r.max_open_sessions,
        max_budget_per_session=r.max_budget_per_session,
        max_total_budget=r.max_total_budget,
        daily_loss_limit=r.daily_loss_limit,
        cooldown_s=r.cooldown_s,
        stale_after_intervals=r.stale_after_intervals,
        min_free_balance=r.min_free_balance,
    )


def next_boundary_delay_s(
    market_now_ms: int, interval: str, offset_s: float, speed: float
) -> float:
    """Wall seconds until the next candle close of `interval` (+ offset) on the market clock."""
    step = INTERVAL_SECONDS[interval] * 1000
    target = market_now_ms - market_now_ms % step + step + int(offset_s * 1000)
    if target - step > market_now_ms:
        target -= step
    return max(0.0, (target - market_now_ms) / 1000 / speed)


@dataclass
class DaemonParts:
    engine: Engine
    journal: Journal
    client: AluraClient
    mode: str


class Daemon:
    """Owns the scheduler, the engine, the journal, the client, metrics and systemd notification."""

    def __init__(
        self,
        settings: Settings,
        *,
        key: SecretStr | None,
        live: bool,
        clock: Clock | None = None,
        speed: float = 1.0,
        notifier: Notifier | None = None,
        metrics: Any = None,
        on_tick: Callable[[TickReport], None] | None = None,
        freeze_heap: bool = False,
    ) -> None:
        self.settings = settings
        self.freeze_heap = freeze_heap
        self.mode = effective_mode(settings, live)
        self.key = key
        self.clock = clock or SystemClock()
        self.speed = speed
        self.notifier = notifier or Notifier()
        self.metrics = metrics
        self.on_tick = on_tick
        self.stop_event = asyncio.Event()
        self.scheduler: AsyncIOScheduler | None = None
        self.parts: DaemonParts | None = None
        self.ready = False
        self.authenticated = False
        self.last_beat = time.monotonic()
        self._beat_task: asyncio.Task[None] | None = None
        self.owner: OwnerLock | None = None

    # -- assembly ---------------------------------------------------------------------------

    def build(self) -> DaemonParts:
        s = self.settings
        journal = Journal.open(s.journal_path)
        hooks: list[RequestHook] = [self.metrics.observe_request] if self.metrics else []
        hooks.append(self._journal_error_hook(journal))
        client = AluraClient.from_settings(s, self.key, hooks=hooks)
        if self.mode == "live":
            executor: Any = LiveExecutor(client)
        else:
            executor = PaperExecutor(balance=s.engine.paper_balance)
            saved = journal.get_control(PAPER_STATE_KEY)
            if saved:
                executor.load_json(json.loads(saved))

        async def reconciler(why: str) -> None:
            await self._reconcile_unlocked(why)

        positions = None
        if s.positions.base_url is not None and s.positions.wallet_address is not None:
            from bot.api.positions import PositionsClient

            positions = PositionsClient.from_settings(s, beside=client.transport)
        engine = Engine(
            positions=positions,
            slots=build_slots(s),
            market=LiveMarket(
                client, lookback=s.engine.lookback_candles, history=s.engine.history_candles
            ),
            executor=executor,
            journal=journal,
            risk=RiskGate(risk_limits(s)),
            clock=self.clock,
            strategy_timeout_s=s.engine.strategy_timeout_s,
            metrics=self.metrics,
            reconciler=reconciler,
            on_tick=self._after_tick,
        )
        self.parts = DaemonParts(engine, journal, client, self.mode)
        return self.parts

    def _journal_error_hook(self, journal: Journal) -> RequestHook:
        """Every failed exchange into `api_errors`, on the market clock; a journal that cannot
        take the row must not turn an API error into a crash of the request path."""

        def hook(record: RequestRecord) -> None:
            if record.error_kind is None:
                return
            try:
                journal.record_api_error(
                    self.clock.now_ms(),
                    record.endpoint,
                    record.method,
                    record.status,
                    record.error_kind,
                    record.error_message,
                )
            except (sqlite3.Error, JournalError) as exc:
                log.warning("api error not journaled: %s", exc)

        return hook

    # -- jobs -------------------------------------------------------------------------------

    async def reconcile(self, why: str = "periodic") -> None:
        """The reconcile job: never concurrently with a tick (a request may be in flight)."""
        assert self.parts is not None
        if self.parts.engine.stopping:
            return
        try:
            async with self.parts.engine.lock:
                await self._reconcile_unlocked(why)
        except asyncio.CancelledError:
            if not self.parts.engine.stopping:
                raise

    def settle_ms(self) -> int:
        """Market time within which a request sent before a crash or timeout may still land:
        its whole HTTP timeout, on the market clock."""
        h = self.settings.http
        wall_s = h.connect_timeout_s + h.write_timeout_s + h.read_timeout_s + h.pool_timeout_s
        return int(wall_s * self.speed * 1000)

    async def _reconcile_unlocked(
        self, why: str, *, raise_errors: bool = False
    ) -> ReconcileReport | None:
        assert self.parts is not None
        p = self.parts
        if self.settings.engine.clock == "venue" and why == "periodic":
            try:
                await self._follow_venue_clock()
            except ApiError as exc:
                log.warning("venue clock unavailable (%s); extrapolating", exc.kind)
        if self.mode == "live":
            try:
                report = await reconcile(
                    p.client, p.journal, self.clock, self.mode, settle_ms=self.settle_ms()
                )
                self.authenticated = True
            except ApiError as exc:
                if isinstance(exc, Unauthorized):  # the venue refuses our login: not ready
                    self.authenticated = False
                if raise_errors:
                    raise
                log.warning("reconcile (%s) failed: %s", why, exc)
                return None
            if p.engine.positions is not None:
                try:
                    extra = await reconcile_positions(
                        p.engine.positions, p.journal, self.clock, settle_ms=self.settle_ms()
                    )
                except ApiError as exc:
                    log.warning("positions reconcile (%s) failed: %s", why, exc)
                else:
                    report.adopted += extra.adopted
                    report.confirmed_intents += extra.confirmed_intents
                    report.failed_intents += extra.failed_intents
            if report.adopted or report.failed_intents or report.closed_sessions or report.orphans:
                log.info(
                    "reconciled (%s): adopted %d, failed intents %d, closed %d, orphans %d",
                    why,
                    len(report.adopted),
                    len(report.failed_intents),
                    len(report.closed_sessions),
                    len(report.orphans),
                )
            return report
        self._reconcile_paper()
        return ReconcileReport()

    def _reconcile_paper(self) -> None:
        """Paper mode: the executor's saved book is the venue."""
        assert self.parts is not None
        p = self.parts
        executor = p.engine.executor
        assert isinstance(executor, PaperExecutor)
        now = self.clock.now_ms()
        for intent in p.journal.unresolved_intents():
            if intent.session_id and intent.session_id in executor.sessions:
                p.journal.confirm(intent.id, {"paper": True}, intent.session_id, now)
            else:
                p.journal.fail(intent.id, "paper: not in the paper book after restart", now)
        for row in p.journal.open_sessions():
            if row.mode == "paper" and row.id not in executor.sessions:
                p.journal.close_session(row.id, now, Decimal(0), Decimal(0))
        self.authenticated = True  # paper mode never logs in: its book is ready once reconciled

    async def tick(self, interval: str) -> None:
        assert self.parts is not None
        try:
            await self.parts.engine.tick(interval)
        except asyncio.CancelledError:
            if not self.parts.engine.stopping:
                raise

    def _after_tick(self, report: TickReport) -> None:
        assert self.parts is not None
        executor = self.parts.engine.executor
        if isinstance(executor, PaperExecutor):
            self.parts.journal.set_control(PAPER_STATE_KEY, json.dumps(executor.to_json()))
        if self.notifier.enabled:
            self.notifier.status(
                f"last tick {datetime.now(UTC):%H:%M:%S} ({report.interval}); "
                f"opened {len(report.opened)}, closed {len(report.closed)}, "
                f"realised {self.parts.journal.realized_pnl_total()} USDC"
            )
        if self.on_tick is not None:
            self.on_tick(report)

    async def stats(self) -> None:
        """The stats job; quiet when cancelled by shutdown."""
        try:
            await self._stats()
        except asyncio.CancelledError:
            if self.parts is None or not self.parts.engine.stopping:
                raise

    async def _stats(self) -> None:
        assert self.parts is not None
        if self.parts.engine.stopping:
            return
        p = self.parts
        try:
            account = await p.engine.executor.account(self.clock.now_ms())
        except ApiError as exc:
            log.warning("stats refresh failed: %s", exc.kind)
            return
        now = self.clock.now_ms()
        if self.metrics is not None:
            self.metrics.refresh_from(p.journal, account, now)
        p.journal.record_pnl(
            now,
            p.journal.realized_pnl_total(),
            account.unrealized_pnl,
            account.equity,
            len(p.journal.open_sessions()),
        )
        client = p.engine.positions
        if client is not None:
            try:
                stats = await client.stats()
            except ApiError as exc:
                log.warning("positions stats failed: %s", exc.kind)
            else:
                if self.metrics is not None:
                    self.metrics.refresh_positions(stats, client.units)

    def is_ready(self) -> tuple[bool, str]:
        if not self.ready or self.parts is None:
            return False, "starting"
        if not self.authenticated:
            return False, "not authenticated"
        last = self.parts.engine.last_tick_ms
        if last is None:
            return True, "no tick yet"
        step = INTERVAL_SECONDS[self.parts.engine.intervals()[0]] * 1000
        age = self.clock.now_ms() - last
        stale = age > 3 * step
        return (not stale, f"last tick {age / 1000:.0f} s ago" if stale else "ok")

    # -- lifecycle --------------------------------------------------------------------------

    def schedule(self) -> AsyncIOScheduler:
        assert self.parts is not None
        s = self.settings.engine
        scheduler = AsyncIOScheduler(timezone=UTC)
        wall_now = datetime.now(UTC)
        for interval in self.parts.engine.intervals():
            delay = next_boundary_delay_s(
                self.clock.now_ms(), interval, s.tick_offset_s, self.speed
            )
            period = INTERVAL_SECONDS[interval] / self.speed
            scheduler.add_job(
                self.tick,
                IntervalTrigger(seconds=period, start_date=wall_now + timedelta(seconds=delay)),
                args=[interval],
                id=f"tick-{interval}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=s.misfire_grace_s,
            )
        scheduler.add_job(
            self.reconcile,
            IntervalTrigger(
                seconds=s.reconcile_every_s / self.speed if self.speed > 1 else s.reconcile_every_s
            ),
            id="reconcile",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=s.misfire_grace_s,
        )
        scheduler.add_job(
            self.stats,
            IntervalTrigger(seconds=s.stats_every_s),
            id="stats",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=s.misfire_grace_s,
            next_run_time=wall_now,
        )
        return scheduler

    def _freeze_heap(self) -> None:
        """What start-up built (modules, schemas, the client, strategies) lives as long as the
        process: moved out of the collector's sight, the full collections every few ticks stop
        rescanning it (~1 ms of CPU per tick at 1 s ticks, a tenth of the daemon's)."""
        gc.collect()
        gc.freeze()
        log.info(
            "start-up heap frozen: %d objects the garbage collector skips", gc.get_freeze_count()
        )

    def loop_alive(self) -> bool:
        """The event loop ran its heartbeat recently (a stalled loop answers 503 on /healthz)."""
        return time.monotonic() - self.last_beat < 15.0

    async def _heartbeat(self) -> None:
        """Marks the loop alive; pings systemd's watchdog while ticks are on schedule, so a
        stalled loop or an overdue tick lets WatchdogSec restart the service."""
        every = min(1.0, self.notifier.watchdog_s / 2) if self.notifier.watchdog_s else 1.0
        while True:
            self.last_beat = time.monotonic()
            if self.ready and self.is_ready()[0]:
                self.notifier.watchdog()
            await asyncio.sleep(every)

    async def _follow_venue_clock(self) -> None:
        """`engine.clock = "venue"`: take the simulator's market time and speed (re-read at
        each reconcile, so a restarted simulator is followed)."""
        assert self.parts is not None
        sample = await venue_clock(self.parts.client.transport)
        speed = sample.speed or 1.0
        if isinstance(self.clock, FollowingClock):
            self.clock.resync(sample.clock_ms, speed)
            return
        self.clock = FollowingClock(sample.clock_ms, speed)
        self.speed = speed
        self.parts.engine.clock = self.clock

    async def _learn_assets(self) -> None:
        """Assets the venue lists beyond the built-in six, before the reconcile maps indices to
        symbols; a venue that does not answer leaves the built-in table (never a reason to wait)."""
        assert self.parts is not None
        if self.mode != "live":
            return
        try:
            log.info("%s", (await self.parts.client.refresh_assets()).summary())
        except ApiError as exc:
            log.warning("asset listing unavailable (%s); using the built-in table", exc.kind)

    async def _first_reconcile(self) -> None:
        """Reconcile before anything else, retrying with backoff while the venue is unreachable:
        no tick runs and READY is not sent until the journal agrees with the venue."""
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                if self.settings.engine.clock == "venue":
                    await self._follow_venue_clock()
                await self._reconcile_unlocked("start-up", raise_errors=True)
                return
            except ApiError as exc:
                log.warning("start-up reconcile failed (%s); retrying in %.0f s", exc, delay)
                self.notifier.status(f"waiting for the venue: {exc.kind}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), delay)
            delay = min(delay * 2, 30.0)

    async def start(self) -> None:
        self.owner = OwnerLock(self.settings.journal_path).acquire()
        self._beat_task = asyncio.create_task(self._heartbeat())
        self.build()
        if self.metrics is not None:
            assert self.parts is not None
            first = self.parts.engine.intervals()[0]
            self.metrics.tick_interval.set(INTERVAL_SECONDS[first] / self.speed)
            self.metrics.daily_loss_limit.set(float(self.settings.risk.daily_loss_limit))
        log.info(
            "starting alura-bot %s in %s mode against %s (event loop: %s)",
            __version__,
            self.mode,
            self.settings.base_url,
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        await self._learn_assets()
        await self._first_reconcile()
        if self.stop_event.is_set():
            return
        self.scheduler = self.schedule()
        self.scheduler.start()
        if self.freeze_heap:
            self._freeze_heap()
        self.ready = True
        self.notifier.ready(f"{self.mode} mode; reconciled")

    async def stop(self) -> None:
        """Stop scheduling, let an in-flight tick finish (bounded), close everything."""
        self.notifier.stopping()
        if self._beat_task is not None:
            self._beat_task.cancel()
        if self.parts is not None:
            self.parts.engine.stopping = True
        if self.scheduler is not None:
            # pause first: no new run starts, and the running one is not cancelled (shutdown
            # cancels the executor's running jobs, which would cut a request that moves money)
            self.scheduler.pause()
        if self.parts is not None:
            try:
                await asyncio.wait_for(
                    self.parts.engine.lock.acquire(), self.settings.engine.shutdown_timeout_s
                )
            except TimeoutError:
                log.warning("in-flight tick did not finish in time; its intent stays for reconcile")
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.parts is not None:
            with contextlib.suppress(Exception):
                await self.parts.client.aclose()
            if self.parts.engine.positions is not None:
                with contextlib.suppress(Exception):
                    await self.parts.engine.positions.aclose()
            self.parts.journal.close()
        if self.owner is not None:
            self.owner.release()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop_event.set)
        await self.start()
        await self.stop_event.wait()
        started = time.monotonic()
        await self.stop()
        log.info("stopped cleanly in %.1f s", time.monotonic() - started)
        return 0
