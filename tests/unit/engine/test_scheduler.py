"""The daemon's APScheduler jobs, read off the scheduler `Daemon.schedule()` builds.

The market clock is injected (`ManualClock`), so the alignment to candle close + offset is exact;
the wall-clock anchor of the triggers is `datetime.now(UTC)` inside `schedule()`, so it is
bracketed by readings taken just before and after the call. Nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from bot.engine.clock import ManualClock
from bot.engine.daemon import Daemon, next_boundary_delay_s
from bot.settings import Settings

HOUR_MS = 3_600_000
MONDAY = int(datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000)  # a candle boundary
STRATEGIES = [
    {"name": "signal_follower", "params": {"interval": "1h"}},
    {"name": "ema_cross", "assets": ["BTC"], "params": {"interval": "4h"}},
    {"name": "position_guard"},
]


@pytest.fixture
def built(tmp_path: Path, clean_env: Path) -> Iterator[Any]:
    """Make a paper daemon with its parts built (journal in tmp), its scheduler not started."""
    made: list[Daemon] = []

    def make(now_ms: int, *, speed: float = 1.0, engine: dict[str, Any] | None = None) -> Daemon:
        settings = Settings(
            journal_path=tmp_path / f"j{len(made)}.sqlite",
            strategies=STRATEGIES,
            engine={
                "tick_offset_s": 5.0,
                "misfire_grace_s": 42,
                "reconcile_every_s": 300,
                "stats_every_s": 20,
                **(engine or {}),
            },
        )
        daemon = Daemon(settings, key=None, live=False, clock=ManualClock(now_ms), speed=speed)
        daemon.build()
        made.append(daemon)
        return daemon

    yield make
    for d in made:
        assert d.parts is not None
        d.parts.journal.close()


def scheduled(daemon: Daemon) -> tuple[datetime, Any, datetime]:
    before = datetime.now(UTC)
    scheduler = daemon.schedule()
    after = datetime.now(UTC)
    return before, scheduler, after


def jobs_by_id(scheduler: Any) -> dict[str, Any]:
    return {job.id: job for job in scheduler.get_jobs()}


def test_one_tick_job_per_interval_plus_reconcile_and_stats(built: Any) -> None:
    daemon = built(MONDAY + 10 * 60_000)
    _, scheduler, _ = scheduled(daemon)
    jobs = jobs_by_id(scheduler)
    assert set(jobs) == {"tick-1h", "tick-4h", "reconcile", "stats"}
    for interval, seconds in (("1h", 3600), ("4h", 4 * 3600)):
        job = jobs[f"tick-{interval}"]
        assert job.func == daemon.tick and list(job.args) == [interval]
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval == timedelta(seconds=seconds)
    assert jobs["reconcile"].func == daemon.reconcile
    assert jobs["reconcile"].trigger.interval == timedelta(seconds=300)
    assert jobs["stats"].func == daemon.stats
    assert jobs["stats"].trigger.interval == timedelta(seconds=20)


def test_every_job_runs_alone_coalesces_and_has_the_misfire_grace(built: Any) -> None:
    _, scheduler, _ = scheduled(built(MONDAY))
    for job in scheduler.get_jobs():
        assert job.max_instances == 1, job.id
        assert job.coalesce is True, job.id
        assert job.misfire_grace_time == 42, job.id


@pytest.mark.parametrize(
    ("market_now", "first_tick"),
    [
        (MONDAY + 10 * 60_000, MONDAY + HOUR_MS + 5_000),  # mid-candle: the next close + 5 s
        (MONDAY + HOUR_MS - 1, MONDAY + HOUR_MS + 5_000),  # a millisecond before the close
        (MONDAY + HOUR_MS + 2_000, MONDAY + HOUR_MS + 5_000),  # closed, offset not yet passed
        # exactly at close + offset counts as just missed (the boundary test is strict)
        (MONDAY + HOUR_MS + 5_000, MONDAY + 2 * HOUR_MS + 5_000),
        (MONDAY + HOUR_MS + 6_000, MONDAY + 2 * HOUR_MS + 5_000),  # just missed: the next one
    ],
)
def test_first_tick_is_at_the_next_candle_close_plus_offset(
    built: Any, market_now: int, first_tick: int
) -> None:
    daemon = built(market_now)
    before, scheduler, after = scheduled(daemon)
    trigger = jobs_by_id(scheduler)["tick-1h"].trigger
    wait = timedelta(milliseconds=first_tick - market_now)
    assert before + wait <= trigger.start_date <= after + wait


def test_later_ticks_land_on_later_candle_closes(built: Any) -> None:
    market_now = MONDAY + 3 * HOUR_MS + 17 * 60_000
    before, scheduler, after = scheduled(built(market_now))
    trigger = jobs_by_id(scheduler)["tick-4h"].trigger
    fires = [trigger.start_date]
    for _ in range(3):
        fires.append(trigger.get_next_fire_time(fires[-1], fires[-1] + timedelta(microseconds=1)))
    # back on the market clock (speed 1): every fire time is a 4h close + 5 s
    for k, fire in enumerate(fires):
        expected = MONDAY + (k + 1) * 4 * HOUR_MS + 5_000
        wait = timedelta(milliseconds=expected - market_now)
        assert before + wait <= fire <= after + wait


def test_accelerated_clock_shrinks_periods_and_waits(built: Any) -> None:
    """The demo's speed 3600: a 1h candle every wall second, the first at the close + offset."""
    market_now = MONDAY + 30 * 60_000
    daemon = built(market_now, speed=3600.0)
    before, scheduler, after = scheduled(daemon)
    jobs = jobs_by_id(scheduler)
    assert jobs["tick-1h"].trigger.interval == timedelta(seconds=1)
    assert jobs["tick-4h"].trigger.interval == timedelta(seconds=4)
    assert jobs["reconcile"].trigger.interval == timedelta(seconds=300 / 3600)
    assert jobs["stats"].trigger.interval == timedelta(seconds=20)  # wall time, not market
    wait_s = next_boundary_delay_s(market_now, "1h", 5.0, 3600.0)
    assert wait_s == pytest.approx((30 * 60 + 5) / 3600)
    wait = timedelta(seconds=wait_s)
    assert before + wait <= jobs["tick-1h"].trigger.start_date <= after + wait


def test_stats_runs_at_its_configured_period_and_starts_at_once(built: Any) -> None:
    daemon = built(MONDAY, engine={"stats_every_s": 45})
    before, scheduler, after = scheduled(daemon)
    stats = jobs_by_id(scheduler)["stats"]
    assert stats.trigger.interval == timedelta(seconds=45)
    assert before <= stats.next_run_time <= after


def test_a_stats_period_over_a_minute_is_a_config_error(clean_env: Path) -> None:
    from bot.settings import ConfigError, load_settings

    config = clean_env / "slow-stats.toml"
    config.write_text("[engine]\nstats_every_s = 900\n")
    with pytest.raises(ConfigError, match=r"engine\.stats_every_s"):
        load_settings(config)


async def test_next_run_times_once_the_scheduler_starts(built: Any) -> None:
    """Started (paused, so nothing runs), the jobs' next run times are the triggers' first
    fires: the tick at the candle close + offset, the stats job now, reconcile one period on."""
    market_now = MONDAY + 59 * 60_000 + 50_000  # 00:59:50 market time
    daemon = built(market_now)
    before, scheduler, after = scheduled(daemon)
    scheduler.start(paused=True)
    try:
        jobs = jobs_by_id(scheduler)
        for job in jobs.values():
            assert not job.pending
        wait = timedelta(seconds=15)  # 01:00:00 close + 5 s offset
        assert before + wait <= jobs["tick-1h"].next_run_time <= after + wait
        assert jobs["tick-4h"].next_run_time - jobs["tick-1h"].next_run_time == timedelta(hours=3)
        assert before <= jobs["stats"].next_run_time <= after
        period = timedelta(seconds=300)
        assert before + period <= jobs["reconcile"].next_run_time
    finally:
        scheduler.shutdown(wait=False)


def test_a_guard_alone_still_ticks_hourly(tmp_path: Path, clean_env: Path) -> None:
    settings = Settings(
        journal_path=tmp_path / "guard.sqlite", strategies=[{"name": "position_guard"}]
    )
    daemon = Daemon(settings, key=None, live=False, clock=ManualClock(MONDAY))
    parts = daemon.build()
    try:
        jobs = jobs_by_id(daemon.schedule())
        assert set(jobs) == {"tick-1h", "reconcile", "stats"}
    finally:
        parts.journal.close()
