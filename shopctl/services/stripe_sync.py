"""Safety nets for missed webhooks: `events sync` and `payments reconcile`.

`sync_events` lists events from Stripe's API and ingests the ones never received,
through the same function as the webhook; it remembers where it stopped. `reconcile`
compares open payments with Stripe's sessions and charges and reports (or applies)
each difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import PaymentProviderError
from shopctl.models import Order, Payment, StripeEvent, SyncCursor, utcnow
from shopctl.services import stripe_gateway as gateway
from shopctl.services.lifecycle import (
    CANCELED,
    EXPIRED,
    FAILED,
    PAID,
    PROCESSING,
    REFUNDED,
    UNPAID,
    lock_order,
)
from shopctl.services.payment_events import HANDLERS, Context, apply_refunded_total
from shopctl.services.payments import apply_stripe_state
from shopctl.services.webhooks import IGNORED, PROCESSED, ProcessingFailed, ingest

CURSOR = "events-sync"
RETENTION = timedelta(days=30)
RETENTION_WARNING = timedelta(days=25)
DEFAULT_WINDOW = timedelta(hours=24)


@dataclass
class SyncSummary:
    since: datetime
    seen: int = 0
    already_known: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "since": self.since.isoformat() + "Z",
            "seen": self.seen,
            "alreadyKnown": self.already_known,
            "processed": self.processed,
            "ignored": self.ignored,
            "failed": self.failed,
            "warnings": self.warnings,
        }


def _sync_start(since: timedelta | None, now: datetime) -> datetime:
    if since is not None:
        return now - since
    cursor = SyncCursor.get_or_none(SyncCursor.name == CURSOR)
    return datetime.fromisoformat(cursor.value) if cursor else now - DEFAULT_WINDOW


def _fetch(settings: Settings, start: datetime) -> list[dict]:
    import stripe

    params = {
        "created": {"gte": int(start.replace(tzinfo=UTC).timestamp())},
        "limit": 100,
        "types": sorted(HANDLERS),
    }
    try:
        events = [
            event.to_dict() for event in gateway.list_events(settings, params).auto_paging_iter()
        ]
    except stripe.StripeError as exc:
        raise gateway.provider_error(exc) from None
    return sorted(events, key=lambda event: (event.get("created", 0), event["id"]))


def sync_events(settings: Settings, since: timedelta | None = None) -> SyncSummary:
    """Ingest every event Stripe has that we never stored, oldest first; resumable."""
    now = utcnow()
    start = _sync_start(since, now)
    summary = SyncSummary(since=start)
    if now - start > RETENTION_WARNING:
        summary.warnings.append(
            "the gap nears Stripe's 30-day event retention: "
            "run payments reconcile for anything older"
        )
    newest = start
    for event in _fetch(settings, max(start, now - RETENTION)):
        summary.seen += 1
        newest = max(newest, datetime.fromtimestamp(event["created"], UTC).replace(tzinfo=None))
        known = StripeEvent.get_or_none(StripeEvent.id == event["id"])
        if known is not None and known.status in (PROCESSED, IGNORED):
            summary.already_known += 1
            continue
        _ingest_one(settings, event, summary)
    _save_cursor(newest if not summary.failed else start)
    return summary


def _ingest_one(settings: Settings, event: dict, summary: SyncSummary) -> None:
    try:
        outcome = ingest(settings, event, json.dumps(event), source="sync")
    except ProcessingFailed:
        summary.failed += 1
        return
    if outcome.result == "processed":
        summary.processed += 1
    elif outcome.result == "ignored":
        summary.ignored += 1
    else:
        summary.already_known += 1


def _save_cursor(moment: datetime) -> None:
    with write_transaction():
        SyncCursor.insert(name=CURSOR, value=moment.isoformat(), updated_at=utcnow()).on_conflict(
            conflict_target=[SyncCursor.name],
            update={SyncCursor.value: moment.isoformat(), SyncCursor.updated_at: utcnow()},
        ).execute()


# --- reconcile ---------------------------------------------------------------------------


@dataclass
class Discrepancy:
    order_id: str
    payment_id: str
    kind: str
    detail: str
    fix: str
    applied: bool = False
    stripe_refunded: int | None = None

    def as_json(self) -> dict:
        return {
            "orderId": self.order_id,
            "paymentId": self.payment_id,
            "kind": self.kind,
            "detail": self.detail,
            "fix": self.fix,
            "applied": self.applied,
        }


OPEN_STATUSES = (UNPAID, PROCESSING, EXPIRED, CANCELED, FAILED)


def _candidates(window: timedelta) -> list[tuple[Order, Payment]]:
    since = utcnow() - window
    query = (
        Payment.select(Payment, Order)
        .join(Order)
        .where(
            Payment.session_id.is_null(False)
            & (Order.created_at >= since)
            & Order.status.in_((*OPEN_STATUSES, PAID))
        )
    )
    return [(payment.order, payment) for payment in query]


def _session_gap(order: Order, payment: Payment, session: dict) -> Discrepancy | None:
    paid = session.get("payment_status") == "paid"
    if session.get("amount_total") not in (None, payment.amount_cents):
        return Discrepancy(
            order.id,
            payment.id,
            "amount-mismatch",
            f"Stripe {session.get('amount_total')} vs ours {payment.amount_cents}",
            "investigate: the session does not match the order",
        )
    if paid and order.status in OPEN_STATUSES and payment.late_outcome is None:
        return Discrepancy(
            order.id,
            payment.id,
            "paid-at-stripe",
            f"paid at Stripe, {order.status} here",
            "shopctl payments reconcile --apply",
        )
    if session.get("status") == "expired" and order.status == UNPAID:
        return Discrepancy(
            order.id,
            payment.id,
            "expired-at-stripe",
            "session expired at Stripe, UNPAID here",
            "shopctl payments reconcile --apply",
        )
    return None


def _refund_gap(settings: Settings, order: Order, payment: Payment) -> Discrepancy | None:
    if not payment.payment_intent_id or order.status not in (PAID, REFUNDED):
        return None
    intent = gateway.retrieve_payment_intent(settings, payment.payment_intent_id).to_dict()
    charge = intent.get("latest_charge")
    refunded = charge.get("amount_refunded") if isinstance(charge, dict) else None
    if isinstance(refunded, int) and refunded > payment.refunded_cents:
        return Discrepancy(
            order.id,
            payment.id,
            "refunded-at-stripe",
            f"{refunded} refunded at Stripe, {payment.refunded_cents} here",
            "shopctl payments reconcile --apply",
            stripe_refunded=refunded,
        )
    return None


def _apply(settings: Settings, gap: Discrepancy, session: dict) -> None:
    actor = f"reconcile:{session.get('id')}"
    if gap.kind == "paid-at-stripe":
        apply_stripe_state(settings, "checkout.session.completed", session, actor)
    elif gap.kind == "expired-at-stripe":
        apply_stripe_state(settings, "checkout.session.expired", session, actor)
    elif gap.kind == "refunded-at-stripe":
        with write_transaction():
            order = lock_order(gap.order_id)
            payment = Payment.get_by_id(gap.payment_id)
            context = Context(settings, {}, actor=actor)
            apply_refunded_total(context, order, payment, gap.stripe_refunded)
    else:
        return
    gap.applied = True


def reconcile(
    settings: Settings, *, apply: bool = False, window: timedelta = RETENTION
) -> list[Discrepancy]:
    """Every difference between our recent payments and Stripe; `apply` fixes them."""
    import stripe

    found = []
    for order, payment in _candidates(window):
        try:
            session = gateway.retrieve_session(settings, payment.session_id).to_dict()
            gap = _session_gap(order, payment, session) or _refund_gap(settings, order, payment)
        except stripe.StripeError as exc:
            raise PaymentProviderError(f"Stripe: {gateway.describe(exc)}") from None
        if gap is None:
            continue
        if apply:
            _apply(settings, gap, session)
        found.append(gap)
    return found
