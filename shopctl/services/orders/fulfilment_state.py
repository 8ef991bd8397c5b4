"""An order's fulfilment status, the second axis beside its payment `status`.

Derived from its lines, never set by hand: shipments (services/fulfilment) and line
refunds (services/payments/refund_lines.py) change the lines' quantities, then call
`refresh` in the same transaction, under the order's row lock.

Refunded units are taken from a line's unshipped units first (those are simply not
sent any more); only refunded units beyond them are returns of shipped units. So a line
can ship at most `quantity - refunded_quantity`, and:

* UNFULFILLED: nothing shipped;
* RETURNED: everything shipped came back (was refunded as a return);
* PARTIALLY_FULFILLED: something shipped, and some line still has units to send;
* FULFILLED: everything still owed has shipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from shopctl.errors import InvalidInput
from shopctl.models import Order, OrderHistory, OrderItem, utcnow
from shopctl.schemas import FULFILLMENT_STATUSES

UNFULFILLED, PARTIALLY_FULFILLED, FULFILLED, RETURNED = FULFILLMENT_STATUSES


def derive(lines: Iterable[tuple[int, int, int]]) -> str:
    """The status of lines given as (quantity, shipped, refunded)."""
    lines = list(lines)
    shipped = sum(line[1] for line in lines)
    if shipped == 0:
        return UNFULFILLED
    returned = sum(max(0, sent + refunded - quantity) for quantity, sent, refunded in lines)
    if returned >= shipped:
        return RETURNED
    if any(sent < quantity - refunded for quantity, sent, refunded in lines):
        return PARTIALLY_FULFILLED
    return FULFILLED


def refresh(order: Order) -> str:
    """Store the status the order's lines now say; returns it."""
    rows = OrderItem.select(
        OrderItem.quantity, OrderItem.shipped_quantity, OrderItem.refunded_quantity
    ).where(OrderItem.order == order.id)
    status = derive(rows.tuples())
    if status != order.fulfillment_status:
        Order.update(fulfillment_status=status).where(Order.id == order.id).execute()
        order.fulfillment_status = status
    return status


def record_event(order: Order, event: str, reason: str, actor: str) -> None:
    """A history row for a change that is no status move: from and to stay the payment
    status, so readers of the history's status moves see none; `event` names it."""
    OrderHistory.create(
        order=order.id,
        from_status=order.status,
        to_status=order.status,
        reason=reason[:200],
        actor=actor[:255],
        event=event,
        created_at=utcnow(),
    )


def resolve_lines(items: dict[str, OrderItem], lines: dict[str, int]) -> dict[str, int]:
    """`lines` naming the order's `items` by id or its 6+ first characters, by whole id
    (repeated items added up); InvalidInput for a line naming none or several."""
    wanted: dict[str, int] = {}
    for text, units in lines.items():
        item_id = _resolve_item(items, text)
        wanted[item_id] = wanted.get(item_id, 0) + units
    return wanted


def _resolve_item(items: dict[str, OrderItem], text: str) -> str:
    text = text.strip().lower()
    found = [item_id for item_id in items if item_id.startswith(text)] if len(text) >= 6 else []
    if len(found) != 1:
        known = ", ".join(f"{i[:8]} ({items[i].product_name})" for i in sorted(items))
        raise InvalidInput(
            [{"path": "lines", "message": f"{text!r} is not one of the order's items: {known}"}]
        )
    return found[0]
