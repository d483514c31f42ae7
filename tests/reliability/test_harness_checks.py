"""The soak's own measurements, on made-up venue logs and scrapes: a check that cannot fail proves
nothing, so each one is shown failing on the bot behaviour it exists to catch."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.reliability.harness import (
    CREATE,
    BotCounts,
    VenueCounts,
    fault_tallies,
    retry_after_violations,
)


def entry(t: float, path: str, status: int = 200, method: str = "GET") -> dict[str, Any]:
    return {"t": t, "method": method, "path": path, "status": status}


def test_a_request_sent_after_a_429_arrived_inside_its_retry_after_is_a_violation() -> None:
    log = [entry(10.0, "/api/indicators/candles/latest", 429), entry(10.3, "/trading-sessions")]

    assert retry_after_violations(log, 1.0) == ["GET /trading-sessions 0.300 s after a 429"]


def test_a_request_answered_before_the_429_is_not_a_violation() -> None:
    """Answered first means it arrived before the 429 left: the bot could not have known."""
    log = [entry(10.3, "/trading-sessions/active"), entry(10.0, "/api/indicators/candles/x", 429)]

    assert retry_after_violations(log, 1.0) == []


def test_requests_after_the_retry_after_or_still_in_flight_are_not_violations() -> None:
    log = [
        entry(10.0, "/api/indicators/candles/latest", 429),
        entry(10.01, "/api/indicators/candles/BTC/1h"),  # sent before the 429 reached the bot
        entry(11.0, "/api/indicators/candles/latest"),
    ]

    assert retry_after_violations(log, 1.0) == []


def venue(fired: dict[str, int], answers: dict[tuple[str, str, int], int]) -> VenueCounts:
    return VenueCounts(fired, Counter(answers))


def bot(
    exchanges: dict[tuple[str, str, str], float], errors: dict[str, float], slow: float = 0
) -> BotCounts:
    return BotCounts(exchanges, errors, slow)


SIGNALS = ("GET", "/api/indicators/signals/all/{interval}")


def bad(tallies: list[Any]) -> set[str]:
    return {t.relation for t in tallies if not t.ok}


def test_tallies_agree_when_the_bot_counts_each_fault_once() -> None:
    counts = venue(
        {"drop": 2, "lost_response": 1, "builder_fee": 1, "status": 1},
        {(*CREATE, 200): 1, (*CREATE, 400): 1, (*CREATE, 503): 1},
    )
    scrape = bot(
        {(*SIGNALS, "none"): 2, (*CREATE, "none"): 1, (*CREATE, "400"): 1, (*CREATE, "503"): 1},
        {"TransportError": 2, "OutcomeUnknown": 2, "BuilderFeeApprovalFailed": 1},
    )

    assert bad(fault_tallies(counts, scrape, counts)) == set()


def test_tallies_catch_a_missed_drop_a_double_counted_error_and_an_unexpected_kind() -> None:
    counts = venue({"drop": 2}, {})
    scrape = bot({(*SIGNALS, "none"): 1}, {"TransportError": 2, "BadResponse": 1})

    assert bad(fault_tallies(counts, scrape, counts)) == {
        "reads of signals without an answer = fired",
        "errors{TransportError} = reads without an answer",
        "errors of any other kind",
    }


def test_a_lost_answer_may_go_uncounted_only_when_its_create_was_refused_anyway() -> None:
    """A create answered 503 never reached the app: a lost-answer rule that also fired for it did
    nothing. Without such a create, a fired lost answer the bot did not see is a miscount."""
    scrape = bot({(*CREATE, "503"): 1}, {"OutcomeUnknown": 1})
    refused = venue({"lost_response": 1, "status": 1}, {(*CREATE, 503): 1})
    unseen = venue({"lost_response": 1, "status": 1}, {(*CREATE, 201): 1})

    assert bad(fault_tallies(refused, scrape, refused)) == set()
    assert bad(fault_tallies(unseen, scrape, unseen)) == {
        "fired - creates answered 503/400 <= creates + closes without an answer <= fired"
    }
