"""Stripe events: verify, then store and process in one transaction; replay and sync.

One function, `ingest()`, takes an event from any source (webhook, replay, sync,
reconcile) through the same steps, so a replayed event behaves exactly like a
delivered one. A new event is inserted (`ON CONFLICT DO NOTHING`), applied and marked
in one transaction, one commit; if the handler fails, that transaction rolls back and
the event is stored as FAILED in a short second one (answered 5xx, so Stripe retries).
Stripe's event id is the primary key of the log: a duplicate or a concurrent delivery
of one event finds the row and never applies it twice (the row is held while it is
processed). Handlers (shopctl.services.payments.handlers) are idempotent on the business
effect, so `--force` re-runs are safe too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from peewee import fn

from shopctl.config import Settings
from shopctl.db import is_postgres, write_transaction
from shopctl.errors import NotFound, ShopError
from shopctl.models import StripeEvent, utcnow
from shopctl.prepared import PreparedStatement
from shopctl.services.payments import disputes, refund_events  # noqa: F401  (register handlers)
from shopctl.services.payments.handlers import HANDLERS, Context
from shopctl.services.payments.late_refunds import LateRefund, RunDb
from shopctl.services.payments.outcomes import announce as _announce
from shopctl.services.payments.signatures import SignatureInvalid, parse_event, verify

log = logging.getLogger("shopctl.webhooks")

RECEIVED, PROCESSED, IGNORED, FAILED = "RECEIVED", "PROCESSED", "IGNORED", "FAILED"


class ProcessingFailed(ShopError):
    """Stored as FAILED: answered 5xx so Stripe retries; `events replay` re-runs it."""

    status = 500
    code = "processing_failed"


@dataclass
class Outcome:
    event_id: str
    type: str
    result: str  # processed | duplicate | ignored | failed | dry-run
    detail: str = ""
    changes: tuple[str, ...] = ()
    payment_id: str | None = None


class _DryRun(Exception):
    """Raised to roll a dry run's transaction back."""


# --- receiving ---------------------------------------------------------------------------


async def receive_async(
    settings: Settings, payload: bytes, header: str | None, run_db: RunDb
) -> Outcome:
    """A webhook delivery: verified, stored and applied in one database step (`run_db`,
    off the event loop); a follow-up's Stripe call (a late payment's refund) is awaited on
    the loop between short database steps, so it never holds a database thread. Raises
    ProcessingFailed on failure."""
    event, outcome, followups = await run_db(_received, settings, payload, header)
    if followups:
        await _follow_up_async(settings, event, outcome, followups, "webhook", run_db)
    return outcome


def _received(
    settings: Settings, payload: bytes, header: str | None
) -> tuple[dict, Outcome, list[LateRefund]]:
    """Verify, store and apply a delivery; announced here unless follow-ups remain."""
    try:
        event, text = verify(settings, payload, header)
    except SignatureInvalid:
        _announce(Outcome("", "unknown", "invalid_signature"), "webhook")
        raise
    outcome, followups = _applied(settings, event, text, "webhook", force=False)
    if not followups:
        _announce_settled(event, outcome, "webhook")
    return event, outcome, followups


def ingest(
    settings: Settings,
    event: dict,
    raw: str,
    *,
    source: str,
    force: bool = False,
    dry_run: bool = False,
) -> Outcome:
    """Store a new event and process it in the same transaction: one commit.

    A duplicate (the id is stored already) is processed only if it is not settled yet,
    or with `force`; a failure rolls everything back and stores the event as FAILED.
    Follow-ups (a late payment's refund) run after the commit, their Stripe call bounded
    by its deadline (`LateRefund.run`).
    """
    if dry_run:
        return preview(settings, event)
    outcome, followups = _applied(settings, event, raw, source, force=force)
    _follow_up(settings, event, outcome, followups, source)
    return outcome


def _applied(
    settings: Settings, event: dict, raw: str, source: str, *, force: bool
) -> tuple[Outcome, list[LateRefund]]:
    try:
        return _settle(settings, event["id"][:255], force=force, new=(event, raw, source))
    except ProcessingFailed:
        _announce(Outcome(event["id"][:255], event["type"][:100], "failed"), source)
        raise


def _announce_settled(event: dict, outcome: Outcome, source: str) -> None:
    _announce(outcome, source, event.get("created") if outcome.result != "duplicate" else None)


def _stripe_created(event: dict) -> datetime | None:
    created = event.get("created")
    if not isinstance(created, int):
        return None
    try:
        return datetime.fromtimestamp(created, UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):  # out of range: keep the event anyway
        return None


def _row(event: dict, raw: str, source: str, **fields) -> dict:
    return {
        "id": event["id"][:255],
        "type": event["type"][:100],
        "payload": raw,
        "source": source,
        "stripe_created_at": _stripe_created(event),
        "received_at": utcnow(),
        **fields,
    }


def _insert(event: dict, raw: str, source: str, **fields) -> bool:
    """Store a new event; False when its id is stored already (a duplicate).

    `ON CONFLICT DO NOTHING` on both databases: on PostgreSQL a concurrent twin waits
    for this transaction's row, then finds it (or inserts it if this one rolled back).
    """
    unsettled = {"status": RECEIVED, "attempts": 0, "last_error": None, "processed_at": None}
    return _STORE.execute(**unsettled | _row(event, raw, source, **fields)) == 1


# Every event runs these two; built once (prepared.py) rather than by peewee each time.
_STORE = PreparedStatement(
    lambda p: StripeEvent.insert(
        id=p.id,
        type=p.type,
        payload=p.payload,
        source=p.source,
        stripe_created_at=p.stripe_created_at,
        received_at=p.received_at,
        status=p.status,
        attempts=p.attempts,
        last_error=p.last_error,
        processed_at=p.processed_at,
    ).on_conflict(conflict_target=[StripeEvent.id], action="NOTHING")
)
_SETTLE = PreparedStatement(
    lambda p: StripeEvent.update(
        status=p.status,
        last_error=p.last_error,
        processed_at=p.processed_at,
        attempts=StripeEvent.attempts + 1,
        payment=fn.COALESCE(p.payment_id, StripeEvent.payment),
    ).where(StripeEvent.id == p.id)
)


# --- processing --------------------------------------------------------------------------


def _lock_event(event_id: str) -> StripeEvent:
    query = StripeEvent.select().where(StripeEvent.id == event_id)
    return (query.for_update() if is_postgres() else query).get()


def _apply(settings: Settings, event: dict, dry_run: bool = False) -> tuple[str, Context | None]:
    handler = HANDLERS.get(event["type"])
    if handler is None:
        return IGNORED, None
    context = Context(settings, event, actor=event["id"], dry_run=dry_run)
    handler(context)
    return (PROCESSED if context.payment is not None else IGNORED), context


def preview(settings: Settings, event: dict) -> Outcome:
    """What processing `event` would change, with everything rolled back."""
    try:
        with write_transaction():
            _, context = _apply(settings, event, dry_run=True)
            raise _DryRun(context)
    except _DryRun as stop:
        context = stop.args[0]
    changes = tuple(context.changes) if context else ("nothing: unhandled type",)
    return Outcome(event["id"], event["type"], "dry-run", "", changes)


def _settled(status: str, error: str | None) -> dict:
    return {
        "status": status,
        "last_error": error,
        "processed_at": utcnow() if status in (PROCESSED, IGNORED) else None,
    }


def _mark(row_id: str, status: str, error: str | None, payment_id: str | None = None) -> None:
    """Settle a stored event: one more attempt; its payment, once known, is kept."""
    _SETTLE.execute(id=row_id, payment_id=payment_id, **_settled(status, error))


def process(settings: Settings, event_id: str, *, force: bool = False) -> Outcome:
    """Apply a stored event in one transaction, then run its follow-ups (e.g. a refund)."""
    try:
        outcome, followups = _settle(settings, event_id, force=force)
    except ProcessingFailed:
        _announce(Outcome(event_id, get_event(event_id).type, "failed"), "replay")
        raise
    _follow_up(settings, {}, outcome, followups, "replay")
    return outcome


def _settle(
    settings: Settings, event_id: str, *, force: bool, new: tuple[dict, str, str] | None = None
) -> tuple[Outcome, list[LateRefund]]:
    """Store `new` (if given) and apply the event in one transaction: the outcome, and the
    follow-ups to run after the commit."""
    try:
        with write_transaction():
            event = _claim_event(event_id, new, force)
            if isinstance(event, Outcome):  # a settled duplicate, or stored as ignored
                return event, []
            status, context = _apply(settings, event)
            if status == PROCESSED:
                note = context.outcome
            else:
                note = _ignored_reason(event["type"], context)
            payment = context.payment if context else None
            _mark(event_id, status, note, payment.id if payment else None)
    except Exception as exc:
        _record_failure(event_id, exc, new, force)
        raise ProcessingFailed("Webhook processing failed; stored for replay") from exc
    result = "processed" if status == PROCESSED else "ignored"
    changes = tuple(context.changes) if context else ()
    outcome = Outcome(event_id, event["type"], result, note or "", changes, payment and payment.id)
    return outcome, list(context.followups) if context else []


def _claim_event(event_id: str, new: tuple[dict, str, str] | None, force: bool) -> dict | Outcome:
    """The event to apply, with its row stored (new) or locked (already stored); or the
    Outcome when there is nothing to apply."""
    if new is not None:
        event, raw, source = new
        if event["type"] not in HANDLERS:  # nothing to run: stored settled, one statement
            note = _ignored_reason(event["type"], None)
            if _insert(event, raw, source, attempts=1, **_settled(IGNORED, note)):
                return Outcome(event_id, event["type"], "ignored", note)
        elif _insert(event, raw, source, status=RECEIVED):
            return event
    row = _lock_event(event_id)
    if row.status in (PROCESSED, IGNORED) and not force:
        return Outcome(row.id, row.type, "duplicate", f"already {row.status.lower()}")
    return json.loads(row.payload)


def _ignored_reason(event_type: str, context: Context | None) -> str:
    if context is None:
        return f"unhandled type {event_type}"
    return context.outcome or "unmatched: no payment of ours matches this event"


def _follow_up(
    settings: Settings, event: dict, outcome: Outcome, followups: list[LateRefund], source: str
) -> None:
    """Run the follow-ups after the event's commit; announce how the event ended."""
    try:
        for followup in followups:
            followup.run(settings)
    except Exception as exc:
        _followup_failed(outcome, exc, source)
    _announce_settled(event, outcome, source)


async def _follow_up_async(
    settings: Settings,
    event: dict,
    outcome: Outcome,
    followups: list[LateRefund],
    source: str,
    run_db: RunDb,
) -> None:
    try:
        for followup in followups:
            await followup.run_async(settings, run_db)
    except Exception as exc:
        await run_db(_followup_failed, outcome, exc, source)
    _announce_settled(event, outcome, source)


def _followup_failed(outcome: Outcome, exc: Exception, source: str) -> None:
    """The event is stored as FAILED (answered 5xx, replayable); the follow-up's decision
    (`late_outcome = refund_pending`) stays committed, so Stripe's redelivery or a replay
    asks Stripe again, with the same idempotency key."""
    _record_failure(outcome.event_id, exc)
    _announce(Outcome(outcome.event_id, outcome.type, "failed"), source)
    raise ProcessingFailed("Webhook follow-up failed; stored for replay") from exc


def _record_failure(
    event_id: str, exc: Exception, new: tuple[dict, str, str] | None = None, force: bool = False
) -> None:
    """Store the event as FAILED in a transaction of its own (the failed one rolled back)."""
    if isinstance(exc, ShopError):
        message = exc.message
    else:
        log.error("processing %s failed", event_id, exc_info=exc)
        message = f"{type(exc).__name__}: {exc}"
    with write_transaction():
        if new is None:
            _mark(event_id, FAILED, message[:2000])
        else:
            _store_failed(*new, message[:2000], force)


def _store_failed(event: dict, raw: str, source: str, message: str, force: bool) -> None:
    """A new event's row went with the rolled-back transaction: insert it as FAILED, or
    mark the stored one (a twin's) unless that twin settled it meanwhile."""
    failed = _settled(FAILED, message)
    update = {**failed, "attempts": StripeEvent.attempts + 1}
    settled_meanwhile = StripeEvent.status.in_((PROCESSED, IGNORED))
    StripeEvent.insert(**_row(event, raw, source, attempts=1, **failed)).on_conflict(
        conflict_target=[StripeEvent.id],
        update=update,
        where=None if force else ~settled_meanwhile,
    ).execute()


# --- operators: list, show, replay -------------------------------------------------------


def get_event(event_id: str) -> StripeEvent:
    row = StripeEvent.get_or_none(StripeEvent.id == event_id)
    if row is None:
        raise NotFound(f"No stored event {event_id}")
    return row


def replay(
    settings: Settings, event_ids: list[str], *, force: bool = False, dry_run: bool = False
) -> list[Outcome]:
    """Re-run stored events through the webhook logic; a failure is reported, not raised."""
    outcomes = []
    for event_id in event_ids:
        row = get_event(event_id)
        try:
            if dry_run:
                outcomes.append(preview(settings, json.loads(row.payload)))
            else:
                outcomes.append(process(settings, row.id, force=force))
        except ProcessingFailed:
            outcomes.append(Outcome(row.id, row.type, "failed", get_event(row.id).last_error))
    return outcomes


def failed_event_ids() -> list[str]:
    query = StripeEvent.select(StripeEvent.id).where(StripeEvent.status == FAILED)
    return [row.id for row in query.order_by(StripeEvent.received_at)]


def replay_file(
    settings: Settings, text: str, *, force: bool = False, dry_run: bool = False
) -> Outcome:
    """An exported event (e.g. from the Dashboard) through the same logic, source "replay"."""
    event = parse_event(text)
    try:
        return ingest(settings, event, text, source="replay", force=force, dry_run=dry_run)
    except ProcessingFailed:
        return Outcome(event["id"], event["type"], "failed", get_event(event["id"]).last_error)
