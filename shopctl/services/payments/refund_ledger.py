"""Refund rows: what each refund of a payment is, as Stripe last told us.

Everything here runs inside the caller's transaction, under the order's row lock. A
payment's refunded total is the sum of its PENDING and SUCCEEDED refunds: a refund that
fails or is canceled gives its amount back to what may be refunded.

Where a refund comes from:

* an operator refund is reserved as a PENDING row without a Stripe id before Stripe is
  asked (`reserve`), so a concurrent second refund sees the amount taken; Stripe's answer
  and its events find the row by the `refundId` in the refund's metadata;
* a refund Stripe reports (`refund.*`, `charge.refund.updated`, the `refunds` list of a
  charge; Dashboard refunds included) is found or added by its Stripe id (`record`);
* a charge that says more was refunded than the refunds we know (a Dashboard refund whose
  refund event has not come yet) leaves one row without a Stripe id and SUCCEEDED, the
  unnamed remainder, which the refund's own event later takes over (`record_charge`).
"""

from __future__ import annotations

import json
from functools import cache

from peewee import fn

from shopctl.db import database, execute_prepared
from shopctl.models import Order, Payment, Refund, StripeEvent, utcnow
from shopctl.prepared import PreparedSelect
from shopctl.services.payments import refund_lines

PENDING, SUCCEEDED, FAILED, CANCELED = "PENDING", "SUCCEEDED", "FAILED", "CANCELED"
COUNTED = (PENDING, SUCCEEDED)
FROM_STRIPE = {
    "pending": PENDING,
    "requires_action": PENDING,
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "canceled": CANCELED,
}
# A refund only moves forward: events may arrive in any order, and a late `refund.created`
# (pending) must not undo a `refund.failed`. Succeeded refunds can still fail at the bank.
RANK = {PENDING: 0, SUCCEEDED: 1, FAILED: 2, CANCELED: 2}
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")


# Every webhook that tells us a PaymentIntent runs it: built once (prepared.py).
_COUNTED_TOTAL = PreparedSelect(
    lambda p: Refund.select(fn.COALESCE(fn.SUM(Refund.amount_cents), 0)).where(
        (Refund.payment == p.payment_id) & Refund.status.in_(COUNTED)
    )
)


def counted_total(payment_id: str) -> int:
    return int(_COUNTED_TOTAL.scalar(payment_id=payment_id) or 0)


def reserve(order: Order, payment: Payment, amount: int, reason: str | None, actor: str) -> Refund:
    now = utcnow()
    return Refund.create(
        payment=payment.id,
        order=order.id,
        amount_cents=amount,
        status=PENDING,
        reason=(reason or "operator refund")[:200],
        actor=actor[:255],
        created_at=now,
        updated_at=now,
    )


def _unnamed(payment_id: str) -> Refund | None:
    return (
        Refund.select()
        .where(
            (Refund.payment == payment_id)
            & Refund.stripe_refund_id.is_null()
            & (Refund.status == SUCCEEDED)
        )
        .first()
    )


def record(order: Order, payment: Payment, refund: dict, actor: str) -> Refund | None:
    """Add or move forward the row of a refund object from Stripe; None if it is no refund."""
    stripe_id, status = refund.get("id"), FROM_STRIPE.get(refund.get("status"))
    amount = refund.get("amount")
    if not isinstance(stripe_id, str) or status is None or not isinstance(amount, int):
        return None
    if amount <= 0:
        return None
    failure = refund.get("failure_reason")
    failure = str(failure)[:100] if failure else None
    row = Refund.get_or_none(Refund.stripe_refund_id == stripe_id[:255])
    if row is None:
        row = _reservation(payment, refund)
        if row is not None:  # ours: Stripe's word replaces our guess, whatever it was
            _update(row, stripe_refund_id=stripe_id[:255], status=status, failure_reason=failure)
            refund_lines.settle(row)
            return row
        return _add(order, payment, refund, stripe_id, status, failure, actor)
    if status != row.status and RANK[status] >= RANK[row.status]:
        _update(row, status=status, failure_reason=failure or row.failure_reason)
        refund_lines.settle(row)
    return row


def _reservation(payment: Payment, refund: dict) -> Refund | None:
    metadata = refund.get("metadata") if isinstance(refund.get("metadata"), dict) else {}
    ours = metadata.get("refundId")
    if not isinstance(ours, str):
        return None
    return Refund.get_or_none(
        (Refund.id == ours[:36])
        & (Refund.payment == payment.id)
        & Refund.stripe_refund_id.is_null()
        & (Refund.actor != "stripe")
    )


def _add(order, payment, refund, stripe_id, status, failure, actor) -> Refund:
    metadata = refund.get("metadata") if isinstance(refund.get("metadata"), dict) else {}
    note = metadata.get("note") or metadata.get("reason") or refund.get("reason")
    now = utcnow()
    row = Refund.create(
        stripe_refund_id=stripe_id[:255],
        payment=payment.id,
        order=order.id,
        amount_cents=refund["amount"],
        status=status,
        reason=str(note or "refunded at Stripe")[:200],
        failure_reason=failure,
        actor=actor[:255],
        created_at=now,
        updated_at=now,
    )
    unnamed = _unnamed(payment.id)
    if unnamed is not None:  # the charge told us of this refund before it did
        left = unnamed.amount_cents - refund["amount"]
        if left > 0:
            _update(unnamed, amount_cents=left)
        else:
            unnamed.delete_instance()
    return row


def _update(row: Refund, **fields) -> None:
    fields["updated_at"] = utcnow()
    Refund.update(**fields).where(Refund.id == row.id).execute()
    for name, value in fields.items():
        setattr(row, name, value)


def record_charge(order: Order, payment: Payment, charge: dict, actor: str) -> None:
    """A charge's refunds: each refund in its `refunds` list (older API versions), and its
    `amount_refunded` beyond the refunds we know as the unnamed remainder.

    Only ever more: an older `charge.refunded` (a replay, a late retry) cannot shrink
    what we know. Once a refund of this payment has failed or been canceled, an older
    charge may still count it, so the remainder is left to the refund events.
    """
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, dict) else None
    for refund in listed if isinstance(listed, list) else ():
        if isinstance(refund, dict):
            record(order, payment, refund, actor)
    refunded = charge.get("amount_refunded")
    if not isinstance(refunded, int) or isinstance(refunded, bool) or refunded <= 0:
        return
    given_back = Refund.select().where(
        (Refund.payment == payment.id) & Refund.status.in_((FAILED, CANCELED))
    )
    if given_back.exists():
        return
    unnamed = _unnamed(payment.id)
    named = counted_total(payment.id) - (unnamed.amount_cents if unnamed else 0)
    gap = min(refunded, payment.amount_cents) - named
    if gap <= 0 or (unnamed is not None and unnamed.amount_cents >= gap):
        return
    if unnamed is not None:
        _update(unnamed, amount_cents=gap)
        return
    now = utcnow()
    Refund.create(
        payment=payment.id,
        order=order.id,
        amount_cents=gap,
        status=SUCCEEDED,
        reason="refunded at Stripe (the refund itself not reported yet)",
        actor="stripe",
        created_at=now,
        updated_at=now,
    )


_ORPHAN_TYPES = ("charge.refunded", *REFUND_EVENTS)


@cache
def _orphans_sql(p: str) -> str:
    """The payment's counted refund total beside each stored, unmatched refund event that
    may be of its PaymentIntent (none: one row, event columns NULL): one round trip."""
    marks = ", ".join([p] * len(_ORPHAN_TYPES))
    return (
        'SELECT "counted"."total", "e"."id", "e"."payload" FROM (SELECT COALESCE(SUM('
        f'"amount_cents"), 0) AS "total" FROM "refund" WHERE "payment_id" = {p} AND "status" '
        f'IN ({p}, {p})) AS "counted" LEFT JOIN "stripe_event" AS "e" ON "e"."type" IN '
        f'({marks}) AND "e"."status" = {p} AND "e"."payload" LIKE {p} ORDER BY "e"."received_at"'
    )


def adopt_early_refunds(order: Order, payment: Payment) -> int:
    """Dashboard refunds carry none of our metadata: refund events that came before we
    knew the PaymentIntent were stored unmatched. Now that we know it, record them.
    Returns the payment's counted refund total, those included."""
    params = [payment.id, *COUNTED, *_ORPHAN_TYPES, "IGNORED", f"%{payment.payment_intent_id}%"]
    rows = execute_prepared(_orphans_sql(database.param), params).fetchall()
    orphans = [(event_id, payload) for _, event_id, payload in rows if event_id is not None]
    if not orphans:
        return int(rows[0][0])
    for event_id, payload in orphans:
        obj = json.loads(payload)["data"]["object"]
        if obj.get("payment_intent") != payment.payment_intent_id:
            continue
        if obj.get("object") == "charge":
            record_charge(order, payment, obj, event_id)
        else:
            record(order, payment, obj, event_id)
        StripeEvent.update(
            status="PROCESSED", payment=payment.id, last_error=None, processed_at=utcnow()
        ).where(StripeEvent.id == event_id).execute()
    return counted_total(payment.id)
