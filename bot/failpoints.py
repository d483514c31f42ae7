"""Named crash points for the reliability trials (the FoundationDB / fail-rs idea, kept tiny).

`ALURA_BOT_FAILPOINTS="journal.commit=0.02,intent.sent=0.1"` makes the process SIGKILL itself at
those points with those probabilities, so a trial can die exactly between "intent written" and
"response received", or inside a journal transaction, instead of hoping a timer lands there.
Unset (always, in production), `hit()` is one dict lookup and never fires.
"""

from __future__ import annotations

import os
import random
import signal

ENV = "ALURA_BOT_FAILPOINTS"
SEED_ENV = "ALURA_BOT_FAILPOINTS_SEED"


def _parse(text: str) -> dict[str, float]:
    points: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, prob = item.partition("=")
        try:
            points[name.strip()] = float(prob) if prob else 1.0
        except ValueError:
            raise ValueError(f"{ENV}: {item!r} is not name=probability") from None
    return points


_POINTS = _parse(os.environ.get(ENV, ""))
_RNG = random.Random(os.environ.get(SEED_ENV))  # noqa: S311 - crash placement, not crypto


def hit(name: str) -> None:
    """Die here (SIGKILL: no cleanup, no flush) if the named point is armed and its dice say so."""
    prob = _POINTS.get(name)
    if prob is not None and _RNG.random() < prob:
        os.kill(os.getpid(), signal.SIGKILL)


def armed() -> dict[str, float]:
    return dict(_POINTS)
