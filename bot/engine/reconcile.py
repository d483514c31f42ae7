"""Reconciliation: make the journal agree with the venue, at start-up, periodically, and whenever
an outcome is unknown. The venue is the truth about what exists; the journal about what we meant.

- An unresolved open intent whose asset has an active session the journal does not know: adopt
  that session (confirm the intent with it). Without one: the request never took effect; fail it.
- An unresolved close intent: confirmed if the session is gone, failed if it is still active.
- A journal session the venue no longer lists: closed, with the PnL its logs report.
- A venue session the journal never heard of: adopted as an orphan, so it is managed and counted.

Nothing here opens anything: an unresolved intent is never retried (safety rule 2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.api.alura import AluraClient
from bot.api.errors import ApiError
from bot.engine.clock import Clock
from bot.journal import Journal, SessionRow

log = logging.getLogger("bot.reconcile")
OPEN_KINDS = ("open_quick", "open_advanced")


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)
    failed_intents: list[str] = field(default_factory=list)
    confirmed_intents: list[str] = field(default_factory=list)
    closed_sessions: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


async def realised_from_logs(client: AluraClient, session_id: str) -> tuple[Decimal, Decimal]:
    """Net PnL and fees of a session from its logs (the venue reports them per closed position)."""
    try:
        page = await client.session_logs(session_id)
    except ApiError as exc:
        log.warning("no logs for closed session %s (%s): PnL recorded as 0", session_id, exc.kind)
        return Decimal(0), Decimal(0)
    pnl = fees = Decimal(0)
    for entry in page.logs:
        extra = entry.model_extra or {}
        if extra.get("type") == "position_closed":
            pnl += Decimal(str(extra.get("pnl", 0)))
            fees += Decimal(str(extra.get("fees", 0)))
    return pnl, fees


async def reconcile(
    client: AluraClient, journal: Journal, clock: Clock, mode: str = "live"
) -> ReconcileReport:
    report = ReconcileReport()
    active = {s.id: s for s in (await client.active_sessions()).sessions}
    by_asset: dict[str, Any] = {}
    for s in active.values():
        try:
            by_asset[client.assets.by_index(s.asset_index).symbol] = s
        except ValueError:
            by_asset[f"#{s.asset_index}"] = s
    known = {r.id for r in journal.open_sessions()}
    now = clock.now_ms()

    for intent in journal.unresolved_intents():
        if intent.venue != "sessions":
            continue
        if intent.kind in OPEN_KINDS:
            found = by_asset.get(intent.asset or "")
            if found is not None and found.id not in known:
                raw = found.model_dump(mode="json", by_alias=True)
                journal.confirm(intent.id, raw, found.id, now)
                journal.upsert_session(
                    SessionRow(
                        id=found.id,
                        asset=intent.asset or "",
                        kind=found.kind or "quick",
                        strategy=_strategy_of(journal, intent.decision_id),
                        status="open",
                        budget=found.budget or Decimal(0),
                        opened_at=now,
                        closed_at=None,
                        realized_pnl=None,
                        fees=None,
                        intent_id=intent.id,
                        mode=mode,
                        raw=raw,
                        trade_id=found.trade_id,
                    )
                )
                known.add(found.id)
                report.adopted.append(found.id)
                log.warning(
                    "adopted session %s on %s for intent %s", found.id, intent.asset, intent.id
                )
            else:
                journal.fail(intent.id, "not found on the venue at reconciliation", now)
                report.failed_intents.append(intent.id)
        elif intent.kind == "close_session":
            sid = (intent.request or {}).get("sessionId")
            if sid in active:
                journal.fail(intent.id, "session still active at reconciliation", now)
                report.failed_intents.append(intent.id)
            else:
                journal.confirm(intent.id, {"reconciled": True}, sid, now)
                report.confirmed_intents.append(intent.id)

    for row in journal.open_sessions():
        if row.id not in active and row.mode == mode:
            pnl, fees = await realised_from_logs(client, row.id)
            journal.close_session(row.id, now, pnl, fees)
            report.closed_sessions.append(row.id)

    for asset, s in by_asset.items():
        if s.id not in known:
            raw = s.model_dump(mode="json", by_alias=True)
            journal.upsert_session(
                SessionRow(
                    id=s.id,
                    asset=asset,
                    kind=s.kind or "quick",
                    strategy="(adopted)",
                    status="open",
                    budget=s.budget or Decimal(0),
                    opened_at=now,
                    closed_at=None,
                    realized_pnl=None,
                    fees=None,
                    intent_id=None,
                    mode=mode,
                    raw=raw,
                    trade_id=s.trade_id,
                )
            )
            report.orphans.append(s.id)
            log.warning("adopted orphan session %s on %s", s.id, asset)
    return report


def _strategy_of(journal: Journal, decision_id: int | None) -> str:
    if decision_id is None:
        return "(adopted)"
    row = journal.decision(decision_id)
    return row.strategy if row is not None else "(adopted)"
