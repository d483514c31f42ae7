"""SIGTERM while a session create is in flight: the request finishes and is journaled, then the
daemon exits 0 (issue 5: let the in-flight request finish, bounded)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.reliability.harness import Bot, Venue

SLOW_CREATES = "[[rule]]\nkind = 'latency'\nmatch = 'POST /trading-sessions'\nlatency_ms = 1500\n"


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    venue = Venue(tmp_path / "venue", faults=SLOW_CREATES)
    venue.workdir.mkdir(parents=True)
    venue.start()
    bot = Bot(tmp_path / "bot", venue)
    try:
        assert bot.start()
        assert bot.wait_for_intent_in_flight(timeout=30)
        assert bot.terminate(timeout=15) == 0
        with sqlite3.connect(bot.journal_path) as db:
            states = [r[0] for r in db.execute("SELECT state FROM intents")]
        assert states and "sent" not in states and "unknown" not in states, states
        assert "confirmed" in states
    finally:
        bot.kill()
        venue.kill()
