"""How an order's lines, payment and shipments read (API, `orders show`). Shipments are
written by the fulfilment package; this is only how they are shown, so orders can show
them without importing it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from shopctl.models import OrderItem, Payment, Shipment, ShipmentLine
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


def shipments_by_order(order_ids: Iterable[str]) -> dict[str, list[dict]]:
    """Each order's shipments, oldest first, canceled ones included, in two queries."""
    found: dict[str, list[dict]] = {order_id: [] for order_id in order_ids}
    if not found:
        return found
    shipments = list(
        Shipment.select()
        .where(Shipment.order.in_(list(found)))
        .order_by(Shipment.created_at, Shipment.id)
    )
    lines: dict[str, list[ShipmentLine]] = defaultdict(list)
    if shipments:
        query = ShipmentLine.select().where(ShipmentLine.shipment.in_([s.id for s in shipments]))
        for line in query.order_by(ShipmentLine.id):
            lines[line.shipment_id].append(line)
    for shipment in shipments:
        found[shipment.order_id].append(shipment_json(shipment, lines[shipment.id]))
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
