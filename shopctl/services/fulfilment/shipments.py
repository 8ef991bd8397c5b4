"""Shipments: record what of a paid order was sent, or take back a shipment that did not go.

Every shipment runs in one transaction under the order's row lock: each line's shipped
quantity moves only through a guarded UPDATE (`shipped + n <= quantity - refunded`, and
`shipped - n >= 0` when a shipment is canceled), so a double click, two operators or a
retrying integration can never ship a unit twice nor drive a line below zero. The
shipment, its lines, the order's fulfilment status and a history row commit together.

An `Idempotency-Key` is kept per order: the same key with the same request answers the
first shipment again (nothing ships twice), with another request 422.
"""

from __future__ import annotations

import hashlib
import json

from shopctl.db import write_transaction
from shopctl.errors import Conflict, NotFound, Unprocessable
from shopctl.models import Order, OrderItem, Shipment, ShipmentLine, utcnow
from shopctl.services.common import resolve_id
from shopctl.services.orders import fulfilment_state
from shopctl.services.orders.lifecycle import PAID, lock_order
from shopctl.services.orders.line_views import shipment_json
from shopctl.services.payments.dispute_views import shipping_hold

ORDER_NOT_FOUND = "Order not found"


def _shipping_blocked(order: Order) -> str | None:
    """Why this paid order may not ship now, or None: an open or lost dispute, or an
    actionable early fraud warning (services/payments/dispute_views.py)."""
    return shipping_hold(order.id)


def ship_order(
    order_id: str,
    lines: dict[str, int] | None = None,
    *,
    carrier: str | None = None,
    tracking_number: str | None = None,
    tracking_url: str | None = None,
    actor: str = "cli",
    idempotency_key: str | None = None,
) -> tuple[dict, bool]:
    """Ship `lines` (item id or its 6+ first characters → units; None: every unit still
    owed) of a paid order: (the shipment as JSON, created). Conflict if any line has not
    that many units left to ship; then nothing ships."""
    details = {"carrier": carrier, "trackingNumber": tracking_number, "trackingUrl": tracking_url}
    request_hash = _request_hash(lines, details)
    with write_transaction():
        order = lock_order(order_id)
        if order is None:
            raise NotFound(ORDER_NOT_FOUND)
        if idempotency_key and (earlier := _replay(order, idempotency_key, request_hash)):
            return earlier, False
        _check_may_ship(order)
        items = {item.id: item for item in OrderItem.select().where(OrderItem.order == order.id)}
        if lines is None:
            wanted = _unshipped(items)
        else:
            wanted = fulfilment_state.resolve_lines(items, lines)
        if not wanted:
            raise Conflict("Nothing is left to ship on this order")
        shipment = Shipment.create(
            order=order.id,
            carrier=carrier,
            tracking_number=tracking_number,
            tracking_url=tracking_url,
            actor=actor[:255],
            idempotency_key=idempotency_key,
            request_hash=request_hash if idempotency_key else None,
            created_at=utcnow(),
        )
        for item_id, units in sorted(wanted.items()):
            _ship_line(items[item_id], units)
            ShipmentLine.create(shipment=shipment.id, item=item_id, quantity=units)
        status = fulfilment_state.refresh(order)
        units = sum(wanted.values())
        fulfilment_state.record_event(
            order, "shipped", f"shipment {shipment.id}: {units} unit(s); now {status}", actor
        )
        return _json(shipment), True


def _request_hash(lines: dict[str, int] | None, details: dict) -> str:
    normalised = {"lines": sorted(lines.items()) if lines is not None else None, **details}
    return hashlib.sha256(json.dumps(normalised).encode()).hexdigest()


def _replay(order: Order, key: str, request_hash: str) -> dict | None:
    earlier = Shipment.get_or_none((Shipment.order == order.id) & (Shipment.idempotency_key == key))
    if earlier is None:
        return None
    if earlier.request_hash != request_hash:
        raise Unprocessable("Idempotency-Key was already used with a different request")
    return _json(earlier)


def _check_may_ship(order: Order) -> None:
    if order.status != PAID:
        raise Conflict(f"Only paid orders can ship; this one is {order.status}")
    blocked = _shipping_blocked(order)
    if blocked:
        raise Conflict(f"This order may not ship now: {blocked}")


def _unshipped(items: dict[str, OrderItem]) -> dict[str, int]:
    left = {item_id: _left_to_ship(item) for item_id, item in items.items()}
    return {item_id: units for item_id, units in left.items() if units > 0}


def _left_to_ship(item: OrderItem) -> int:
    return item.quantity - item.refunded_quantity - item.shipped_quantity


def _ship_line(item: OrderItem, units: int) -> None:
    """The guard: of any number of concurrent shipments, only those that fit go through."""
    shipped = (
        OrderItem.update(shipped_quantity=OrderItem.shipped_quantity + units)
        .where(
            (OrderItem.id == item.id)
            & (
                OrderItem.shipped_quantity + units
                <= OrderItem.quantity - OrderItem.refunded_quantity
            )
        )
        .execute()
    )
    if not shipped:
        raise Conflict(
            f"{item.product_name}: only {max(_left_to_ship(item), 0)} unit(s) left to ship, "
            f"not {units}"
        )


def find_shipment_id(text: str) -> str:
    return resolve_id(Shipment, text, "shipment")


def cancel_shipment(shipment_id: str, *, actor: str = "cli") -> dict:
    """Take back a shipment that did not go: its units are owed again. Once only."""
    with write_transaction():
        shipment = Shipment.get_or_none(Shipment.id == shipment_id)
        if shipment is None:
            raise NotFound("Shipment not found")
        order = lock_order(shipment.order_id)
        canceled = (
            Shipment.update(canceled_at=utcnow(), canceled_by=actor[:255])
            .where((Shipment.id == shipment.id) & Shipment.canceled_at.is_null())
            .execute()
        )
        if not canceled:
            raise Conflict("This shipment is already canceled")
        units = 0
        for line in ShipmentLine.select().where(ShipmentLine.shipment == shipment.id):
            _unship_line(line)
            units += line.quantity
        status = fulfilment_state.refresh(order)
        fulfilment_state.record_event(
            order,
            "shipment_canceled",
            f"shipment {shipment.id} canceled: {units} unit(s) owed again; now {status}",
            actor,
        )
        return _json(Shipment.get_by_id(shipment.id))


def _unship_line(line: ShipmentLine) -> None:
    taken_back = (
        OrderItem.update(shipped_quantity=OrderItem.shipped_quantity - line.quantity)
        .where((OrderItem.id == line.item_id) & (OrderItem.shipped_quantity >= line.quantity))
        .execute()
    )
    if not taken_back:  # only a write outside shopctl can leave a line short
        raise Conflict(f"Item {line.item_id} has fewer units shipped than this shipment holds")


def _json(shipment: Shipment) -> dict:
    lines = ShipmentLine.select().where(ShipmentLine.shipment == shipment.id)
    return shipment_json(shipment, lines.order_by(ShipmentLine.id))
