"""Stripe events: verify, store first, then process in a transaction; replay and sync.

One function, `ingest()`, takes an event from any source (webhook, replay, sync,
reconcile) through the same steps, so a replayed event behaves exactly like a
delivered one. Stripe's event id is the primary key of the log: a duplicate or a
concurrent delivery of one event finds the row and never applies it twice (the row
is locked while it is processed). Handlers (shopctl.services.payment_events) are
idempotent on the business effect, so `--force` re-runs are safe too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from peewee import IntegrityError

from shopctl.config import Settings
from shopctl.db import is_postgres, write_transaction
from shopctl.errors import InvalidInput, NotFound, ShopError
from shopctl.models import StripeEvent, utcnow
from shopctl.schemas import unstorable_text
from shopctl.services.payment_events import HANDLERS, Context

log = logging.getLogger("shopctl.webhooks")

RECEIVED, PROCESSED, IGNORED, FAILED = "RECEIVED", "PROCESSED", "IGNORED", "FAILED"
SIGNATURE_TOLERANCE = 300


class SignatureInvalid(ShopError):
    status = 400
    code = "invalid_signature"


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


class _DryRun(Exception):
    """Raised to roll a dry run's transaction back."""


# --- receiving ---------------------------------------------------------------------------


def verify(settings: Settings, payload: bytes, header: str | None) -> tuple[dict, str]:
    """The event in a signed webhook body, or SignatureInvalid / InvalidInput (nothing stored)."""
    from stripe import SignatureVerificationError, WebhookSignature

    if not header:
        raise SignatureInvalid("Missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureInvalid("Webhook body is not UTF-8") from None
    for secret in settings.stripe_webhook_secrets:
        try:
            WebhookSignature.verify_header(text, header, secret, SIGNATURE_TOLERANCE)
            break
        except SignatureVerificationError:
            continue
    else:
        raise SignatureInvalid("Invalid Stripe signature")
    return parse_event(text), text


def parse_event(text: str) -> dict:
    """A Stripe event object from JSON text, checked for the fields we rely on."""
    try:
        event = json.loads(text)
    except ValueError:
        raise InvalidInput([{"path": "body", "message": "Event is not valid JSON"}]) from None
    problems = []
    if not isinstance(event, dict) or event.get("object") != "event":
        problems.append({"path": "object", "message": 'must be "event"'})
        event = event if isinstance(event, dict) else {}
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_"):
        problems.append({"path": "id", "message": "must be a Stripe event id (evt_…)"})
    if not isinstance(event.get("type"), str) or not event.get("type"):
        problems.append({"path": "type", "message": "must be an event type"})
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        problems.append({"path": "data.object", "message": "must be an object"})
    problems += unstorable_text(event)
    if problems:
        raise InvalidInput(problems, "Not a Stripe event")
    return event


def receive(settings: Settings, payload: bytes, header: str | None) -> Outcome:
    """A webhook delivery: verify, store, process. Raises ProcessingFailed on failure."""
    event, text = verify(settings, payload, header)
    return ingest(settings, event, text, source="webhook")


def ingest(settings: Settings, event: dict, raw: str, *, source: str,
           force: bool = False, dry_run: bool = False) -> Outcome:
    if dry_run:
        return preview(settings, event)
    row, created = store(event, raw, source)
    if not created and row.status in (PROCESSED, IGNORED) and not force:
        return Outcome(row.id, row.type, "duplicate", f"already {row.status.lower()}")
    return process(settings, row.id, force=force)


def store(event: dict, raw: str, source: str) -> tuple[StripeEvent, bool]:
    """Insert the event before anything else; (row, created). A racing twin finds the row."""
    created_at = event.get("created")
    stripe_created = (
        datetime.fromtimestamp(created_at, UTC).replace(tzinfo=None)
        if isinstance(created_at, int) else None
    )
    try:
        with write_transaction():
            row = StripeEvent.create(
                id=event["id"][:255], type=event["type"][:100], payload=raw, status=RECEIVED,
                source=source, stripe_created_at=stripe_created, received_at=utcnow(),
            )
        return row, True
    except IntegrityError:
        return StripeEvent.get_by_id(event["id"]), False


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


def _mark(row_id: str, status: str, error: str | None, payment_id: str | None = None) -> None:
    fields = {"status": status, "last_error": error, "attempts": StripeEvent.attempts + 1,
              "processed_at": utcnow() if status in (PROCESSED, IGNORED) else None}
    if payment_id:
        fields["payment"] = payment_id
    StripeEvent.update(**fields).where(StripeEvent.id == row_id).execute()


def process(settings: Settings, event_id: str, *, force: bool = False) -> Outcome:
    """Apply a stored event in one transaction, then run its follow-ups (e.g. a refund)."""
    try:
        with write_transaction():
            row = _lock_event(event_id)
            if row.status in (PROCESSED, IGNORED) and not force:
                return Outcome(row.id, row.type, "duplicate", f"already {row.status.lower()}")
            status, context = _apply(settings, json.loads(row.payload))
            note = None if status == PROCESSED else _ignored_reason(row, context)
            _mark(row.id, status, note, context.payment.id if context and context.payment else None)
    except Exception as exc:
        _record_failure(event_id, exc)
        raise ProcessingFailed("Webhook processing failed; stored for replay") from exc
    _run_followups(settings, event_id, context)
    result = "processed" if status == PROCESSED else "ignored"
    return Outcome(row.id, row.type, result, note or "", tuple(context.changes) if context else ())


def _ignored_reason(row: StripeEvent, context: Context | None) -> str:
    if context is None:
        return f"unhandled type {row.type}"
    return "unmatched: no payment of ours matches this event"


def _run_followups(settings: Settings, event_id: str, context: Context | None) -> None:
    for followup in context.followups if context else ():
        try:
            followup(settings)
        except Exception as exc:
            _record_failure(event_id, exc)
            raise ProcessingFailed("Webhook follow-up failed; stored for replay") from exc


def _record_failure(event_id: str, exc: Exception) -> None:
    if isinstance(exc, ShopError):
        message = exc.message
    else:
        log.error("processing %s failed", event_id, exc_info=exc)
        message = f"{type(exc).__name__}: {exc}"
    with write_transaction():
        _mark(event_id, FAILED, message[:2000])


# --- operators: list, show, replay -------------------------------------------------------


def get_event(event_id: str) -> StripeEvent:
    row = StripeEvent.get_or_none(StripeEvent.id == event_id)
    if row is None:
        raise NotFound(f"No stored event {event_id}")
    return row


def replay(settings: Settings, event_ids: list[str], *, force: bool = False,
           dry_run: bool = False) -> list[Outcome]:
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


def replay_file(settings: Settings, text: str, *, force: bool = False,
                dry_run: bool = False) -> Outcome:
    """An exported event (e.g. from the Dashboard) through the same logic, source "replay"."""
    event = parse_event(text)
    try:
        return ingest(settings, event, text, source="replay", force=force, dry_run=dry_run)
    except ProcessingFailed:
        return Outcome(event["id"], event["type"], "failed", get_event(event["id"]).last_error)
