"""The simulator's loopback-only control surface, as far as the daemon uses it: its market clock.

Only `engine.clock = "venue"` calls this, to run paper or live against an accelerated
`alura-bot sim` as separate processes (crash trials, soak runs); the real Alura API has no such
endpoint.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.api.errors import BadResponse
from bot.api.transport import Transport


class VenueClock(BaseModel):
    model_config = ConfigDict(extra="allow")

    clock_ms: int = Field(alias="clockMs", gt=0)
    speed: float | None = Field(default=None, gt=0)


async def venue_clock(transport: Transport) -> VenueClock:
    """The simulator's market time and speed (speed None: a stepped clock)."""
    response = await transport.request("GET", "/__sim/clock")
    try:
        return VenueClock.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise BadResponse(
            f"unexpected clock answer: {exc}".splitlines()[0],
            endpoint="/__sim/clock",
            method="GET",
            status=response.status_code,
            body=response.text[:300],
        ) from None
