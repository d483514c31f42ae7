"""Fault soak (issue 9): the daemon against a hostile venue — 429s with Retry-After, 5xx, latency
spikes, reset connections, answers lost after the request was applied, tokens expiring,
`Builder fee approval failed … 429` — and the venue itself killed and restarted under it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.harness import (
    Bot,
    Venue,
    check_invariants,
    log_problems,
    run_soak,
    ticks_since,
    venue_outage,
    wait_until,
)

SOAK_S = float(os.environ.get("ALURA_BOT_SOAK_S", "60"))


def test_daemon_survives_a_hostile_venue_and_agrees_with_it(tmp_path: Path) -> None:
    r = run_soak(tmp_path, SOAK_S)

    assert r.alive_throughout and r.exit_code == 0
    assert r.log_problems == []
    assert r.check.problems == [], r.check.problems
    assert r.check.duplicate_attempts == 0
    assert r.retry_after_violations == [], r.retry_after_violations[:5]
    # every kind of fault fired, and the bot's metrics count each one as the venue applied it
    # (the relations and why some are bounds, not equalities: harness.fault_tallies)
    assert set(r.injected) >= {
        "rate_limit",
        "status",
        "latency",
        "drop",
        "lost_response",
        "builder_fee",
        "token_expiry",
    }, r.injected
    miscounted = [t for t in r.tallies if not t.ok]
    assert miscounted == [], "\n".join(map(str, miscounted))
    assert r.injected["rate_limit"] >= 2
    assert r.ticks >= SOAK_S / 2


def test_daemon_backs_off_while_the_venue_is_down_and_resumes(tmp_path: Path) -> None:
    """The venue is SIGKILLed under a running daemon and its port held by a listener that counts
    every connection the daemon opens: the attempts stay within what the retry budget and the
    job schedule allow, the same process keeps ticking (failed ticks journaled), and once the
    venue is back on its `--state` the daemon trades again and agrees with it."""
    venue = Venue(tmp_path / "venue")
    venue.workdir.mkdir(parents=True)
    venue.start()
    bot = Bot(tmp_path / "bot", venue)
    try:
        assert bot.start()
        assert wait_until(lambda: ticks_since(bot.journal_path, 0, ok=True) >= 3, 30)
        outage = venue_outage(bot, venue, failed_ticks=2)

        assert outage.same_process, f"the daemon died while the venue was down: {outage}"
        assert outage.failed_ticks >= 2, outage
        assert outage.attempts >= 1, f"the daemon never tried to reach the venue: {outage}"
        assert outage.attempts <= outage.bound, f"more attempts than the schedule allows: {outage}"
        assert outage.recovery_s < 30, f"no successful tick after the venue came back: {outage}"
        assert outage.resumed, f"no intent confirmed after the venue came back: {outage}"
        assert outage.clock_kept, "the venue's market time went backwards"
        assert bot.terminate() == 0
        venue.pause()
        bot.reconcile()
        result = check_invariants(venue, bot.journal_path)
        assert result.problems == []
        assert log_problems(bot.log_path) == []
    finally:
        bot.kill()
        venue.kill()
