"""Reconciliation: make the journal agree with the venue, at start-up, periodically, and whenever
an outcome is unknown. The venue is the truth about what exists; the journal about what we meant.

- An unresolved open intent whose asset has an active session the journal does not know: adopt
  that session (confirm the intent with it). Without one: the request never took effect; fail it.
- An unresolved close intent: confirmed if the session is gone, failed if it is still active.
- A journal session the venue no longer lists: closed, with the PnL its logs report.
- A venue session the journal never heard of: adopted as an orphan, so it is managed and counted.
- An open session without a trade id: given the one `/current-trade` lists for it.
- User positions (`venue="positions"`): a close is confirmed once the position is no longer
  placed, failed while it still is; an open is confirmed with the one unclaimed position of our
  wallet that matches its request, failed when there is none.

Nothing here opens anything: an unresolved intent is never retried (safety rule 2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from bot import failpoints
from bot.api.alura import AluraClient
from bot.api.errors import ApiError
from bot.api.positions import Position, PositionsClient
from bot.engine.clock import Clock
from bot.journal import IntentRow, Journal, SessionRow

log = logging.getLogger("bot.reconcile")
OPEN_KINDS = ("open_quick", "open_advanced")


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)
    failed_intents: list[str] = field(default_factory=list)
    confirmed_intents: list[str] = field(default_factory=list)
    closed_sessions: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    trade_ids: list[str] = field(default_factory=list)


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
    client: AluraClient,
    journal: Journal,
    clock: Clock,
    mode: str = "live",
    *,
    settle_ms: int = 0,
) -> ReconcileReport:
    """`settle_ms`: how long a request sent by a process that died (or timed out) may still be
    applied by the venue. Positive evidence (the session exists / is gone) resolves an intent at
    once; its absence fails the intent only once the intent is older than that, so a request
    still travelling cannot land after we have called it failed."""
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

    def settled(intent: IntentRow) -> bool:
        """Old enough that a request it sent can no longer be applied (pending: never sent)."""
        return intent.state == "pending" or settle_ms <= 0 or now - intent.updated_at >= settle_ms

    for intent in journal.unresolved_intents():
        if intent.venue != "sessions":
            continue
        if intent.kind in OPEN_KINDS:
            found = by_asset.get(intent.asset or "")
            if found is not None and found.id not in known:
                raw = found.model_dump(mode="json", by_alias=True)
                strategy = _strategy_of(journal, intent.decision_id)
                row = _open_row(found, intent.asset or "", strategy, now, mode, intent.id)
                # one transaction: a kill between the two writes left a confirmed intent
                # without its session, which the next reconcile took for an orphan
                with journal.atomic():
                    journal.confirm(intent.id, raw, found.id, now)
                    failpoints.hit("adopt.confirmed")
                    journal.upsert_session(row)
                known.add(found.id)
                report.adopted.append(found.id)
                log.warning(
                    "adopted session %s on %s for intent %s", found.id, intent.asset, intent.id
                )
            elif settled(intent):
                journal.fail(intent.id, "not found on the venue at reconciliation", now)
                report.failed_intents.append(intent.id)
        elif intent.kind == "close_session":
            sid = (intent.request or {}).get("sessionId")
            if sid in active:
                if settled(intent):
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
            journal.upsert_session(_open_row(s, asset, "(adopted)", now, mode))
            report.orphans.append(s.id)
            log.warning("adopted orphan session %s on %s", s.id, asset)
    await _fill_trade_ids(client, journal, report, mode)
    return report


def _open_row(
    s: Any, asset: str, strategy: str, now: int, mode: str, intent_id: str | None = None
) -> SessionRow:
    """A venue's active session as an open journal row: adopted for an intent, or an orphan."""
    return SessionRow(
        id=s.id,
        asset=asset,
        kind=s.kind or "quick",
        strategy=strategy,
        status="open",
        budget=s.budget or Decimal(0),
        opened_at=now,
        closed_at=None,
        realized_pnl=None,
        fees=None,
        intent_id=intent_id,
        mode=mode,
        raw=s.model_dump(mode="json", by_alias=True),
        trade_id=s.trade_id,
    )


async def _fill_trade_ids(
    client: AluraClient, journal: Journal, report: ReconcileReport, mode: str
) -> None:
    """Open sessions without a trade id (adopted from a listing that did not carry one) get it
    from `/current-trade`, so a later close uses the trade close rather than close-by-asset.
    Asked only when some session lacks one: a periodic reconcile costs one request, not two."""
    missing = [r for r in journal.open_sessions() if not r.trade_id and r.mode == mode]
    if not missing:
        return
    try:
        current = await client.current_trade()
    except ApiError as exc:
        log.warning("current-trade unavailable (%s); trade ids left unknown", exc.kind)
        return
    by_session = {str(t.session_id): str(t.id) for t in current.trades if t.session_id}
    for row in missing:
        trade_id = by_session.get(row.id)
        if trade_id:
            journal.upsert_session(replace(row, trade_id=trade_id))
            report.trade_ids.append(row.id)


def _opened_by(request: dict[str, Any], p: Position) -> bool:
    """Whether `p` is what an open with this request body would have created."""
    market = str(request.get("market_address", ""))
    return (
        market in (p.market_address, p.market.fixture_id if p.market else None)
        and request.get("selected_team") == p.selected_team
        and request.get("amount") == p.amount
        and request.get("multiplier_bps") == p.multiplier_bps
    )


async def reconcile_positions(
    client: PositionsClient, journal: Journal, clock: Clock, *, settle_ms: int = 0
) -> ReconcileReport:
    """Settle unresolved positions-API intents from a fresh listing of our own wallet (the
    service has no lookup by id). Same evidence rules as sessions: presence resolves at once,
    absence only once the intent is older than `settle_ms`."""
    report = ReconcileReport()
    unresolved = [i for i in journal.unresolved_intents() if i.venue == "positions"]
    if not unresolved:
        return report
    listed = {p.id: p async for p in client.iter_positions()}
    claimed = journal.attributed_ids("positions_open")
    now = clock.now_ms()

    def settled(intent: IntentRow) -> bool:
        return intent.state == "pending" or settle_ms <= 0 or now - intent.updated_at >= settle_ms

    def record(p: Position, intent: IntentRow, closed_by: str | None) -> None:
        with journal.atomic():
            journal.confirm(intent.id, p.model_dump(mode="json"), str(p.id), now)
            journal.record_position(p, now, closed_by)
        report.confirmed_intents.append(intent.id)

    for intent in unresolved:
        request = intent.request or {}
        if intent.kind == "positions_close":
            found = listed.get(int(request.get("position_id") or 0))
            if found is not None and not found.is_open:
                record(found, intent, intent.id)
                log.warning("position close %s confirmed by reconciliation", intent.id)
            elif settled(intent):
                why = "still placed" if found is not None else "not among our wallet's positions"
                journal.fail(intent.id, f"position {why} at reconciliation", now)
                report.failed_intents.append(intent.id)
        elif intent.kind == "positions_open":
            matches = [
                p for p in listed.values() if str(p.id) not in claimed and _opened_by(request, p)
            ]
            if matches:
                newest = max(matches, key=lambda p: p.id)
                claimed.add(str(newest.id))
                record(newest, intent, None)
                report.adopted.append(f"position:{newest.id}")
                log.warning("adopted position %s for intent %s", newest.id, intent.id)
            elif settled(intent):
                journal.fail(intent.id, "no matching position at reconciliation", now)
                report.failed_intents.append(intent.id)
    return report


def _strategy_of(journal: Journal, decision_id: int | None) -> str:
    if decision_id is None:
        return "(adopted)"
    row = journal.decision(decision_id)
    return row.strategy if row is not None else "(adopted)"
