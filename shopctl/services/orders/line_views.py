"""How an order's lines, payment and shipments read (API, `orders show`). Shipments are
written by the fulfilment package; this is only how they are shown, so orders can show
them without importing it."""

from __future__ import annotations

from collections.abc import Iterable

from shopctl.models import Order, OrderItem, Payment, Shipment, ShipmentLine
from shopctl.services.common import iso


def shipment_json(shipment: Shipment, lines: Iterable[ShipmentLine]) -> dict:
    return {
        "id": shipment.id,
        "orderId": shipment.order_id,
        "carrier": shipment.carrier,
        "trackingNumber": shipment.tracking_number,
        "trackingUrl": shipment.tracking_url,
        "lines": [{"itemId": line.item_id, "quantity": line.quantity} for line in lines],
        "actor": shipment.actor,
        "createdAt": iso(shipment.created_at),
        "canceledAt": iso(shipment.canceled_at),
    }


# Only an order paid at the time can ship, and a shipped order stays PAID or REFUNDED
# (a dispute does not move the status): the others' shipments are not looked for.
MAY_HAVE_SHIPPED = ("PAID", "REFUNDED")


def shipments_by_order(orders: Iterable[Order]) -> dict[str, list[dict]]:
    """Each order's shipments, oldest first, canceled ones included, in one query (none
    when no order may have shipped)."""
    orders = list(orders)
    found: dict[str, list[dict]] = {order.id: [] for order in orders}
    shipped = [order.id for order in orders if order.status in MAY_HAVE_SHIPPED]
    if not shipped:
        return found
    rows = (
        ShipmentLine.select(ShipmentLine, Shipment)
        .join(Shipment)
        .where(Shipment.order.in_(shipped))
        .order_by(Shipment.created_at, Shipment.id, ShipmentLine.id)
    )
    shipments: dict[str, tuple[Shipment, list[ShipmentLine]]] = {}
    for line in rows:
        shipments.setdefault(line.shipment.id, (line.shipment, []))[1].append(line)
    for shipment, lines in shipments.values():
        found[shipment.order_id].append(shipment_json(shipment, lines))
    return found


def item_json(item: OrderItem) -> dict:
    return {
        "id": item.id,
        "orderId": item.order_id,
        "productId": item.product_id,
        "productName": item.product_name,
        "quantity": item.quantity,
        "priceCents": item.price_cents,
        "shippedQuantity": item.shipped_quantity,
        "refundedQuantity": item.refunded_quantity,
        "restockedQuantity": item.restocked_quantity,
    }


def payment_json(payment: Payment) -> dict:
    return {
        "id": payment.id,
        "status": payment.status,
        "paymentUrl": payment.payment_url,
        "sessionId": payment.session_id,
    }
