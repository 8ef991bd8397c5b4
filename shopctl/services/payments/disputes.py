"""Disputes and early fraud warnings: the handlers of Stripe's dispute and Radar events.

Stripe reports a dispute with `charge.dispute.created`, `.updated`, `.closed`,
`.funds_withdrawn` and `.funds_reinstated`, each carrying the whole dispute object: the
status is read from that object, never from the event's type. Stripe promises no order,
and a retried delivery can land after a newer event, so a dispute row takes an event's
object only when that event is not older than the last one applied (its `created`; for
two events of the same second, the status further along wins), and the money moved is
merged (the largest withdrawn and reinstated amounts seen: a dispute's balance
transactions only accumulate). Any delivery order ends in the same row.

A dispute is linked to our payment and order through its PaymentIntent, under the
order's row lock. The payment's status never changes (a dispute is not a refund); the
order is `disputed` while one of its disputes is open or lost, with a history row when
one opens or closes. A dispute of a PaymentIntent we do not know is stored unlinked
(doctor reports it) and its event settled as IGNORED with that outcome, so Stripe does
not retry it in a loop. Early fraud warnings (`radar.early_fraud_warning.*`) are kept
the same way; once a warning stops being actionable it stays so.
"""

from __future__ import annotations

from datetime import UTC, datetime

from peewee import Model

from shopctl.db import is_postgres
from shopctl.models import Dispute, FraudWarning, Order, Payment, utcnow
from shopctl.money import format_minor_units
from shopctl.services.orders.fulfilment_state import record_event
from shopctl.services.payments.handlers import Context, _id, claim, handles

DISPUTE_EVENTS = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
FRAUD_WARNING_EVENTS = ("radar.early_fraud_warning.created", "radar.early_fraud_warning.updated")

# Stripe's statuses, in the order a dispute moves through them (an inquiry, `warning_*`,
# may become a chargeback; a lost chargeback may be appealed). Any other is closed.
OPEN = (
    "warning_needs_response",
    "warning_under_review",
    "needs_response",
    "under_review",
    "appeal_needs_response",
    "appeal_under_review",
)
NEEDS_RESPONSE = ("warning_needs_response", "needs_response", "appeal_needs_response")
CLOSED = ("warning_closed", "won", "lost", "prevented")
# Closed in the shop's favour (or never a chargeback): the order is no longer disputed.
# Open and lost disputes hold it: the money is, or went, back to the buyer.
RESOLVED_FOR_US = ("warning_closed", "won", "prevented")
_CLOSED_RANK = len(OPEN)
# Far beyond Stripe's largest payment (8 digits): a bigger number is not Stripe's, and
# storing it would fail the event for ever (a 64-bit column).
_PLAUSIBLE = 10**12


def is_open(status: str) -> bool:
    """Open unless Stripe says closed: a status we do not know yet holds the order."""
    return status not in CLOSED


def _rank(status: str) -> int:
    return OPEN.index(status) if status in OPEN else _CLOSED_RANK


def _moment(seconds) -> datetime | None:
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return None


def _text(value, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _locked(model: type[Model], row_id: str) -> Model | None:
    query = model.select().where(model.id == row_id)
    return (query.for_update() if is_postgres() else query).get_or_none()


def _claim_intent(ctx: Context, obj: dict) -> tuple[str | None, Order | None, Payment | None]:
    intent = _id(obj.get("payment_intent"))
    found = claim(ctx, intent_id=intent) if intent else None
    order, payment = found or (None, None)
    return intent, order, payment


# --- disputes ----------------------------------------------------------------------------


def _dispute_fields(obj: dict) -> dict | None:
    """The columns a dispute object gives, or None when it is not one."""
    amount, status = obj.get("amount"), obj.get("status")
    if not (isinstance(obj.get("id"), str) and obj["id"]) or not isinstance(status, str):
        return None
    if not _is_amount(amount):
        return None
    evidence = obj.get("evidence_details") if isinstance(obj.get("evidence_details"), dict) else {}
    withdrawn, reinstated = _funds(obj.get("balance_transactions"))
    return {
        "charge_id": _text(_id(obj.get("charge")), 255),
        "amount_cents": amount,
        "currency": (_text(obj.get("currency"), 10) or "").lower(),
        "reason": _text(obj.get("reason"), 50) or "general",
        "status": status[:30],
        # 0 (or none) when the bank takes no response for this dispute
        "evidence_due_by": _moment(evidence.get("due_by")),
        "funds_withdrawn_cents": withdrawn,
        "funds_reinstated_cents": reinstated,
        "stripe_created_at": _moment(obj.get("created")),
    }


def _funds(transactions) -> tuple[int, int]:
    """Money withdrawn from and reinstated to the balance: the dispute's balance
    transactions' gross amounts (negative out, positive back; Stripe's fee apart)."""
    if not isinstance(transactions, list):
        return 0, 0
    amounts = [t.get("amount") for t in transactions if isinstance(t, dict)]
    amounts = [a for a in amounts if type(a) is int and _is_amount(abs(a))]
    return sum(-a for a in amounts if a < 0), sum(a for a in amounts if a > 0)


def _is_amount(value) -> bool:
    return type(value) is int and 0 <= value < _PLAUSIBLE


def _problem(fields: dict, payment: Payment | None) -> str | None:
    """Stored but flagged: Stripe says more is disputed than was paid, or in another currency."""
    if payment is None:
        return None
    if fields["currency"] != payment.currency.lower():
        return f"disputed in {fields['currency']}, paid in {payment.currency}"
    if fields["amount_cents"] > payment.amount_cents:
        return f"disputed {fields['amount_cents']} is more than the {payment.amount_cents} paid"
    return None


@handles(*DISPUTE_EVENTS)
def dispute_changed(ctx: Context) -> None:
    fields = _dispute_fields(ctx.obj)
    if fields is None:
        ctx.outcome = "not a dispute object: no id, status or amount"
        return
    intent, order, payment = _claim_intent(ctx, ctx.obj)
    dispute_id = ctx.obj["id"][:255]
    row, before = _record_dispute(ctx, dispute_id, intent, fields, order, payment)
    if order is None:
        ctx.outcome = (
            f"dispute {dispute_id} stored unlinked: PaymentIntent {intent or '(none)'} "
            "is not one of ours"
        )[:2000]
        ctx.note(ctx.outcome)
        return
    _settle_order(ctx, order, row, before)


def _record_dispute(
    ctx: Context,
    dispute_id: str,
    intent: str | None,
    fields: dict,
    order: Order | None,
    payment: Payment | None,
) -> tuple[Dispute, str | None]:
    """The dispute row after this event, and the status it had for the order before it
    (None: new to the order, or not linked to it until now)."""
    now, event_at = utcnow(), _moment(ctx.event.get("created"))
    state = {
        **fields,
        "payment_intent_id": _text(intent, 255),
        "problem": _problem(fields, payment),
        "last_event_id": ctx.event["id"][:255],
        "last_event_at": event_at,
    }
    link = {"order": order and order.id, "payment": payment and payment.id}
    inserted = (
        Dispute.insert(id=dispute_id, **state, **link, created_at=now, updated_at=now)
        .on_conflict(conflict_target=[Dispute.id], action="NOTHING")
        .as_rowcount()
        .execute()
    )
    row = _locked(Dispute, dispute_id)
    if inserted:
        return row, None
    before = row.status if row.order_id is not None else None
    changes = _merge(row, state, event_at)
    if row.order_id is None and order is not None:  # its PaymentIntent is ours now
        changes |= link
    if changes:
        Dispute.update(**changes, updated_at=now).where(Dispute.id == dispute_id).execute()
        row = _locked(Dispute, dispute_id)
    return row, before


def _merge(row: Dispute, state: dict, event_at: datetime | None) -> dict:
    """What of this event's dispute object the row takes: all of it when the event is
    not older than the last one applied, and the money moved whatever its age."""
    taken = dict(state) if _not_older(row, event_at, state["status"]) else {}
    for name in ("funds_withdrawn_cents", "funds_reinstated_cents"):
        taken[name] = max(getattr(row, name), state[name])
    return {name: value for name, value in taken.items() if getattr(row, name) != value}


def _not_older(row: Dispute, event_at: datetime | None, status: str) -> bool:
    if event_at is not None and row.last_event_at is not None and event_at != row.last_event_at:
        return event_at > row.last_event_at
    return _rank(status) >= _rank(row.status)


def _settle_order(ctx: Context, order: Order, row: Dispute, before: str | None) -> None:
    """`order.disputed` from all its disputes, and a history row when this one opened,
    closed or reopened (an appeal) for the order."""
    if before is None:
        what = "opened" if is_open(row.status) else "closed"
    elif is_open(before) != is_open(row.status):
        what = "reopened" if is_open(row.status) else "closed"
    else:
        what = None
    disputed = (
        Dispute.select()
        .where((Dispute.order == order.id) & Dispute.status.not_in(RESOLVED_FOR_US))
        .exists()
    )
    if disputed != order.disputed:
        Order.update(disputed=disputed, updated_at=utcnow()).where(
            (Order.id == order.id) & (Order.disputed != disputed)
        ).execute()
        order.disputed = disputed
    if what is not None:
        reason = _dispute_reason(row, what)
        record_event(order, "dispute", reason, ctx.actor)
        ctx.note(f"order {order.id}: {reason}")


def _dispute_reason(row: Dispute, what: str) -> str:
    money = format_minor_units(row.amount_cents, row.currency)
    text = f"dispute {row.id} {what}: {row.status}, {row.reason}, {money}"
    if what != "closed" and row.evidence_due_by is not None:
        text += f", evidence due {row.evidence_due_by:%Y-%m-%d %H:%M} UTC"
    if what == "closed" and row.funds_reinstated_cents:
        text += f", {format_minor_units(row.funds_reinstated_cents, row.currency)} reinstated"
    return text


# --- early fraud warnings ----------------------------------------------------------------


@handles(*FRAUD_WARNING_EVENTS)
def fraud_warning_changed(ctx: Context) -> None:
    warning = ctx.obj
    warning_id = _text(warning.get("id"), 255)
    if warning_id is None or not isinstance(warning.get("actionable"), bool):
        ctx.outcome = "not an early fraud warning: no id or actionable"
        return
    intent, order, payment = _claim_intent(ctx, warning)
    now = utcnow()
    values = {
        "id": warning_id,
        "charge_id": _text(_id(warning.get("charge")), 255),
        "payment_intent_id": _text(intent, 255),
        "order": order and order.id,
        "payment": payment and payment.id,
        "fraud_type": _text(warning.get("fraud_type"), 50) or "misc",
        "actionable": warning["actionable"],
        "stripe_created_at": _moment(warning.get("created")),
        "created_at": now,
        "updated_at": now,
    }
    inserted = (
        FraudWarning.insert(**values)
        .on_conflict(conflict_target=[FraudWarning.id], action="NOTHING")
        .as_rowcount()
        .execute()
    )
    row = _locked(FraudWarning, warning_id)
    was_actionable = None if inserted or row.order_id is None else row.actionable
    if not inserted:
        row = _merge_warning(row, values, order, payment, now)
    if order is None:
        ctx.outcome = (
            f"early fraud warning {warning_id} stored unlinked: PaymentIntent "
            f"{intent or '(none)'} is not one of ours"
        )[:2000]
        ctx.note(ctx.outcome)
        return
    if row.actionable != was_actionable and (row.actionable or was_actionable):
        state = "actionable: shipping waits" if row.actionable else "no longer actionable"
        reason = f"early fraud warning {row.id} ({row.fraud_type}) {state}"
        record_event(order, "dispute", reason, ctx.actor)
        ctx.note(f"order {order.id}: {reason}")


def _merge_warning(
    row: FraudWarning, values: dict, order: Order | None, payment: Payment | None, now
) -> FraudWarning:
    """A warning that stopped being actionable (disputed, refunded) never becomes so again,
    whatever order its events arrive in; an unlinked one is linked once it can be."""
    changes = {}
    if row.actionable and not values["actionable"]:
        changes["actionable"] = False
    if row.order_id is None and order is not None:
        changes |= {"order": order.id, "payment": payment.id}
    if not changes:
        return row
    FraudWarning.update(**changes, updated_at=now).where(FraudWarning.id == row.id).execute()
    return _locked(FraudWarning, row.id)
