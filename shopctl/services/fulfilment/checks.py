"""Fulfilment checks for `shopctl doctor`: is anything paid waiting too long to ship, and
does every line add up?

* late shipments: PAID orders with units still to send, paid more than
  SHIP_WITHIN_DAYS ago;
* shipped lines: no line shipped (or refunded, or restocked) beyond what was ordered,
  and each line's shipped units equal its live (not canceled) shipments' lines, as only
  writes outside shopctl could leave them.
"""

from __future__ import annotations

from datetime import timedelta

from peewee import JOIN, Case, fn

from shopctl.config import Settings
from shopctl.models import Order, OrderItem, Payment, Shipment, ShipmentLine, utcnow
from shopctl.services.common import Report
from shopctl.services.orders.fulfilment_state import PARTIALLY_FULFILLED, UNFULFILLED
from shopctl.services.orders.lifecycle import PAID

SHOWN = 5


def check_fulfilment(settings: Settings, report: Report) -> None:
    check_late_shipments(settings, report)
    check_shipped_lines(report)


def late_shipments(settings: Settings) -> list[str]:
    """Ids of paid orders still owed units, paid before SHIP_WITHIN_DAYS ago."""
    since = utcnow() - timedelta(days=settings.ship_within_days)
    query = (
        Order.select(Order.id)
        .join(Payment, on=(Payment.order == Order.id))
        .where(
            (Order.status == PAID)
            & Order.fulfillment_status.in_((UNFULFILLED, PARTIALLY_FULFILLED))
            & (fn.COALESCE(Payment.paid_at, Order.created_at) < since)
        )
        .order_by(Order.created_at)
    )
    return [order_id for (order_id,) in query.tuples()]


def check_late_shipments(settings: Settings, report: Report) -> None:
    late = late_shipments(settings)
    days = f"{settings.ship_within_days:g} day(s)"
    if late:
        more = f" and {len(late) - SHOWN} more" if len(late) > SHOWN else ""
        report.add(
            "shipping",
            False,
            f"{len(late)} paid order(s) not fully shipped after {days}: "
            + ", ".join(late[:SHOWN])
            + more,
            "ship them: shopctl orders ship ORDER_ID (or refund what cannot ship)",
        )
        return
    report.add("shipping", True, f"every paid order shipped within {days}")


def line_problems() -> list[str]:
    """'<item id> (<product>): <problem>' for lines that do not add up."""
    # Lines of canceled shipments join no shipment: they count 0.
    live = fn.COALESCE(
        fn.SUM(Case(None, [(Shipment.id.is_null(False), ShipmentLine.quantity)], 0)), 0
    )
    query = (
        OrderItem.select(
            OrderItem.id,
            OrderItem.product_name,
            OrderItem.quantity,
            OrderItem.shipped_quantity,
            OrderItem.refunded_quantity,
            OrderItem.restocked_quantity,
            live.alias("live"),
        )
        .join(ShipmentLine, JOIN.LEFT_OUTER, on=(ShipmentLine.item == OrderItem.id))
        .join(
            Shipment,
            JOIN.LEFT_OUTER,
            on=((Shipment.id == ShipmentLine.shipment) & Shipment.canceled_at.is_null()),
        )
        .where(
            (OrderItem.shipped_quantity > 0)
            | (OrderItem.refunded_quantity != 0)
            | (OrderItem.restocked_quantity != 0)
            | ShipmentLine.id.is_null(False)
        )
        .group_by(OrderItem.id)
    )
    problems = []
    for item_id, name, quantity, shipped, refunded, restocked, in_shipments in query.tuples():
        if shipped > quantity:
            problems.append(f"{item_id} ({name}): {shipped} shipped of {quantity} ordered")
        elif not 0 <= refunded <= quantity or not 0 <= restocked <= refunded:
            problems.append(
                f"{item_id} ({name}): {refunded} refunded, {restocked} restocked "
                f"of {quantity} ordered"
            )
        elif shipped != in_shipments:
            problems.append(f"{item_id} ({name}): {shipped} shipped, {in_shipments} in shipments")
    return problems


def check_shipped_lines(report: Report) -> None:
    problems = line_problems()
    if problems:
        more = f" and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        report.add(
            "shipped lines",
            False,
            "; ".join(problems[:SHOWN]) + more,
            "a line was changed outside shopctl; inspect with: shopctl orders show ORDER_ID",
        )
        return
    report.add("shipped lines", True, "no line shipped or refunded beyond what was ordered")
