"""Disputes and fraud warnings for operators (`shopctl disputes`, `doctor`) and for
fulfilment (`shipping_hold`). The rows are written by disputes.py."""

from __future__ import annotations

from datetime import timedelta

from shopctl.errors import NotFound
from shopctl.models import Dispute, FraudWarning, Order, User, utcnow
from shopctl.services.common import Report, resolve_id
from shopctl.services.orders.money_views import dispute_json, fraud_warning_json
from shopctl.services.payments.disputes import CLOSED, NEEDS_RESPONSE, RESOLVED_FOR_US

EVIDENCE_WARNING = timedelta(hours=72)
SHOWN = 5
RESPOND_HINT = (
    "respond in the Stripe Dashboard (Payments → Disputes) before the due date; "
    "shopctl disputes show DISPUTE_ID"
)


def shipping_hold(order_id: str) -> str | None:
    """Why the order must not ship now, or None: a dispute of it is open or was lost (the
    money is, or went, back to the buyer), or an early fraud warning of it is actionable
    (refunding it may avoid a dispute; shipping would lose the goods too)."""
    dispute = (
        Dispute.select()
        .where((Dispute.order == order_id) & Dispute.status.not_in(RESOLVED_FOR_US))
        .order_by(Dispute.created_at.desc(), Dispute.id)
        .first()
    )
    if dispute is not None:
        state = "lost" if dispute.status == "lost" else f"open ({dispute.status})"
        return f"dispute {dispute.id} ({dispute.reason}) is {state}"
    warning = (
        FraudWarning.select()
        .where((FraudWarning.order == order_id) & FraudWarning.actionable)
        .order_by(FraudWarning.created_at.desc(), FraudWarning.id)
        .first()
    )
    if warning is not None:
        return f"early fraud warning {warning.id} ({warning.fraud_type}) is actionable"
    return None


def find_dispute_id(text: str) -> str:
    """The id of the dispute `text` names: its whole id or a unique prefix (`du_` and 6+)."""
    return resolve_id(Dispute, text, "dispute", is_uuid=False)


def list_disputes(*, open_only: bool = False, limit: int = 100) -> list[dict]:
    """Disputes, newest first; `open_only`: those not closed yet."""
    query = Dispute.select()
    if open_only:
        query = query.where(Dispute.status.not_in(CLOSED))
    rows = query.order_by(Dispute.created_at.desc(), Dispute.id).limit(limit)
    return [dispute_json(row) for row in rows]


def dispute_details(dispute_id: str) -> dict:
    """One dispute, with its order's status and buyer, and the order's fraud warnings."""
    row = Dispute.get_or_none(Dispute.id == dispute_id)
    if row is None:
        raise NotFound(f"No dispute {dispute_id}")
    details = dispute_json(row)
    order = Order.get_or_none(Order.id == row.order_id) if row.order_id else None
    details["order"] = None
    details["fraudWarnings"] = []
    if order is not None:
        details["order"] = {
            "id": order.id,
            "status": order.status,
            "disputed": order.disputed,
            "amountCents": order.amount_cents,
            "currency": order.currency,
            "userEmail": User.get_by_id(order.user_id).email,
        }
        warnings = FraudWarning.select().where(FraudWarning.order == order.id)
        details["fraudWarnings"] = [fraud_warning_json(w) for w in warnings]
    return details


# --- doctor ------------------------------------------------------------------------------


def _listing(parts: list[str]) -> str:
    more = f" and {len(parts) - SHOWN} more" if len(parts) > SHOWN else ""
    return "; ".join(parts[:SHOWN]) + more


def _named(row: Dispute) -> str:
    order = f"order {row.order_id}" if row.order_id else "unlinked"
    return f"{row.id} ({order}, {row.status})"


def check_disputes(report: Report) -> None:
    """Open disputes are a warning; one whose evidence is due within 72 hours (or overdue)
    without a response fails: past its deadline the dispute is lost."""
    open_rows = list(
        Dispute.select()
        .where(Dispute.status.not_in(CLOSED))
        .order_by(Dispute.evidence_due_by.asc(nulls="LAST"), Dispute.id)
    )
    deadline = utcnow() + EVIDENCE_WARNING
    due = [
        row
        for row in open_rows
        if row.status in NEEDS_RESPONSE
        and row.evidence_due_by is not None
        and row.evidence_due_by <= deadline
    ]
    if due:
        parts = [f"{_named(row)} due {row.evidence_due_by:%Y-%m-%d %H:%M} UTC" for row in due]
        report.add("disputes", False, "evidence due within 72 h: " + _listing(parts), RESPOND_HINT)
    elif open_rows:
        report.warn(
            "disputes",
            f"{len(open_rows)} open: " + _listing([_named(row) for row in open_rows]),
            RESPOND_HINT,
        )
    else:
        report.add("disputes", True, "no open disputes")
    _check_flagged(report)


def _check_flagged(report: Report) -> None:
    """Disputes we could not tie to an order, or whose amount is not what was paid."""
    still_open = Dispute.status.not_in(CLOSED)
    unlinked = Dispute.select().where(Dispute.order.is_null() & still_open)
    flagged = Dispute.select().where(Dispute.problem.is_null(False) & still_open)
    parts = [
        f"{row.id}: PaymentIntent {row.payment_intent_id or '-'} is not ours" for row in unlinked
    ]
    parts += [f"{row.id} (order {row.order_id}): {row.problem}" for row in flagged]
    if parts:
        report.warn(
            "dispute links",
            _listing(parts),
            "see it in the Stripe Dashboard; shopctl disputes show DISPUTE_ID",
        )
    else:
        report.add("dispute links", True, "every open dispute is an order's, for what was paid")


def check_fraud_warnings(report: Report) -> None:
    actionable = list(FraudWarning.select().where(FraudWarning.actionable))
    if not actionable:
        report.add("fraud warnings", True, "no actionable early fraud warnings")
        return
    parts = [
        f"{row.id} ({f'order {row.order_id}' if row.order_id else 'unlinked'}, {row.fraud_type})"
        for row in actionable
    ]
    report.warn(
        "fraud warnings",
        f"{len(actionable)} actionable (their orders do not ship): " + _listing(parts),
        "refund the order (shopctl orders refund ID) to avoid a dispute, or wait for one",
    )
