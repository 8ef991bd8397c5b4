"""The OpenAPI operations of shipments and line refunds (admin), merged into
openapi_operations.OPERATIONS."""

from __future__ import annotations

from shopctl import fulfilment_schemas as f
from shopctl import schemas as s
from shopctl.api import openapi_models as out
from shopctl.api.openapi_operation import Operation

FULFILMENT_REQUESTS = (f.ShipmentCreate, f.LineRefundCreate)
ITEM = "5b1f0c2e-7d3a-4e9b-8c1d-2e3f4a5b6c7d"

FULFILMENT_OPERATIONS: dict[str, Operation] = {
    "fulfilment.create_shipment": Operation(
        "Order",
        "Ship an order (admin)",
        "Shipment created",
        out.Shipment,
        status=201,
        auth="admin",
        path=s.OrderRef,
        body=f.ShipmentCreate,
        body_required=False,
        example={
            "lines": [{"itemId": ITEM, "quantity": 1}],
            "carrier": "UPS",
            "trackingNumber": "1Z999AA10123456784",
            "trackingUrl": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
        },
        idempotent=True,
        errors=(404, 409, 422),
        response_headers=("Idempotent-Replayed",),
        description="Records units of a PAID order as shipped: the lines given, or without "
        "`lines` every unit not yet shipped nor refunded. A unit never ships twice: 409 when a "
        "line has fewer units left than asked (then nothing ships), when the order is not "
        "PAID, or when there is nothing left to ship. The same `Idempotency-Key` answers the "
        "first shipment again (`Idempotent-Replayed: true`); with another body, 422. The "
        "order's `fulfillmentStatus` follows.",
    ),
    "fulfilment.create_refund": Operation(
        "Order",
        "Refund an order or some of its lines (admin)",
        "Refund created",
        out.RefundCreated,
        status=201,
        auth="admin",
        path=s.OrderRef,
        body=f.LineRefundCreate,
        body_required=False,
        example={
            "lines": [{"itemId": ITEM, "quantity": 1}],
            "restock": True,
            "reason": "returned: wrong size",
        },
        idempotent=True,
        errors=(404, 409, 422, 502, 503),
        response_headers=("Idempotent-Replayed",),
        description="Refunds a PAID order at Stripe. With `lines`, the amount is what those "
        "units cost (`amountCents` may ask less), never more than is still refundable, and no "
        "line is refunded beyond what was ordered (409). `restock` puts the lines' units back "
        "in stock once Stripe accepted the refund, exactly once. `shipping` adds the order's "
        "shipping amount, refundable once. Without `lines` or `shipping`, an "
        "amount-only refund (all that is left by default). 503 when Stripe could not be "
        "reached: the refund stays PENDING until its webhook or `payments reconcile --apply` "
        "settles it, and a retry with the same `Idempotency-Key` asks Stripe again.",
    ),
}
