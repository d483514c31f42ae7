"""Fault soak (issue 9): the daemon against a hostile venue — 429s with Retry-After, 5xx, latency
spikes, reset connections, answers lost after the request was applied, tokens expiring,
`Builder fee approval failed … 429` — and the venue itself killed and restarted under it."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from tests.reliability.harness import Bot, Venue, check_invariants, log_problems, run_soak

SOAK_S = float(os.environ.get("ALURA_BOT_SOAK_S", "60"))


def test_daemon_survives_a_hostile_venue_and_agrees_with_it(tmp_path: Path) -> None:
    r = run_soak(tmp_path, SOAK_S)

    assert r.alive_throughout and r.exit_code == 0
    assert r.log_problems == []
    assert r.check.problems == [], r.check.problems
    assert r.check.duplicate_attempts == 0
    assert r.retry_after_violations == [], r.retry_after_violations[:5]
    # every kind of fault fired, and the bot's metrics count exactly what the venue answered
    assert set(r.injected) >= {
        "rate_limit",
        "status",
        "latency",
        "drop",
        "lost_response",
        "builder_fee",
        "token_expiry",
    }, r.injected
    for code in ("429", "502", "503", "401"):
        low, high = r.statuses_settled.get(code, 0), r.statuses_at_venue.get(code, 0)
        assert low <= r.statuses_at_bot.get(code, 0) <= high, (code, r)
    assert r.statuses_at_venue.get("429", 0) >= 2
    assert r.ticks >= SOAK_S / 2


def _ok_ticks(journal: Path, since_id: int = 0) -> int:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return int(
            db.execute(
                "SELECT COUNT(*) FROM ticks WHERE ok = 1 AND id > ?", (since_id,)
            ).fetchone()[0]
        )


def _last_tick_id(journal: Path) -> int:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM ticks").fetchone()[0])


def test_daemon_backs_off_while_the_venue_is_down_and_resumes(tmp_path: Path) -> None:
    venue = Venue(tmp_path / "venue")
    venue.workdir.mkdir(parents=True)
    venue.start()
    bot = Bot(tmp_path / "bot", venue)
    try:
        assert bot.start()
        deadline = time.monotonic() + 30
        while _ok_ticks(bot.journal_path) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for the other process to trade
        assert _ok_ticks(bot.journal_path) >= 3
        before = venue.state()
        venue.kill()
        down_from = _last_tick_id(bot.journal_path)
        time.sleep(4)  # the outage itself: the daemon must ride it out
        assert bot.alive(), "the daemon died while the venue was down"
        venue.start()
        after = venue.state()
        assert after["clockMs"] >= before["clockMs"], "the venue's market time went backwards"
        deadline = time.monotonic() + 30
        while _ok_ticks(bot.journal_path, down_from) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ok_ticks(bot.journal_path, down_from) >= 3, "no successful tick after the outage"
        assert bot.alive()
        assert bot.terminate() == 0
        venue.pause()
        bot.reconcile()
        result = check_invariants(venue, bot.journal_path)
        assert result.problems == []
        assert log_problems(bot.log_path) == []
    finally:
        bot.kill()
        venue.kill()
