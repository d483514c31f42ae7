"""Crash trials (issue 9): the daemon SIGKILLed at random moments and at named crash points,
restarted, many times, against a simulator that persists its state (and is itself killed and
restarted now and then). After every trial the journal and the venue must agree."""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.harness import KILL_MODES, run_trials

TRIALS = int(os.environ.get("ALURA_BOT_CRASH_TRIALS", "30"))


def test_no_duplicate_no_lost_intent_no_orphan_after_sigkill_trials(tmp_path: Path) -> None:
    stats = run_trials(tmp_path, TRIALS, seed=3, venue_restart_every=10)

    assert stats.trials == TRIALS
    assert stats.problems == [], "\n".join(stats.problems)
    assert stats.duplicates == 0
    assert stats.unresolved_after == 0
    assert stats.orphans == 0, "a venue session no journal intent accounts for"
    # every kind of kill happened, and enough money moved for the checks to mean something
    for mode in KILL_MODES:
        assert stats.kills[mode] >= TRIALS // len(KILL_MODES) - 2, stats.kills
    assert stats.venue_restarts == TRIALS // 10
    assert stats.venue_sessions >= TRIALS
    assert stats.adopted >= 1, "no lost answer was ever adopted: the hard case was not tried"


def test_a_kill_while_adopting_a_lost_answer_leaves_no_orphan(tmp_path: Path) -> None:
    """Every open's answer is lost, and the daemon dies inside its first adoption (between
    confirming the intent and writing the session): the next reconciliation must still find
    the session's intent, not adopt it as an orphan nobody asked for."""
    import time

    from tests.reliability.harness import Bot, Venue

    venue = Venue(
        tmp_path / "venue",
        faults="[[rule]]\nkind = 'lost_response'\nmatch = 'POST /trading-sessions'\n",
    )
    venue.workdir.mkdir(parents=True)
    venue.start()
    bot = Bot(tmp_path / "bot", venue)
    try:
        bot.start(failpoints="adopt.confirmed=1")
        deadline = time.monotonic() + 60
        while bot.alive() and time.monotonic() < deadline:
            time.sleep(0.05)  # until the daemon kills itself at the failpoint
        assert not bot.alive(), "the daemon never adopted a lost answer"
        venue.pause()
        report = bot.reconcile()
    finally:
        bot.kill()
        venue.kill()
    assert report["orphans"] == []
    assert len(report["adopted"]) == 1
