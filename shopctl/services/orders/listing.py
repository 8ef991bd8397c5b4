"""Lists of orders, newest first: a buyer's or, for an admin, everyone's (`GET /order`).

Pages are read after a cursor or by page number (shopctl/pagination.py), in one order,
`created_at DESC, id DESC`, from the index that leads with whatever the list is narrowed
to (migrations/0011): the buyer, the status, or nothing.
"""

from __future__ import annotations

from shopctl import pagination
from shopctl.models import Order, User
from shopctl.pagination import Keyset
from shopctl.schemas import OrderListQuery
from shopctl.services.orders.placement import orders_json

NEWEST_FIRST = Keyset("orders", "createdAt:desc", (Order.created_at, Order.id), descending=True)


def list_orders(user: User, params: OrderListQuery) -> tuple[list[dict], dict]:
    """The user's orders (an admin's: everyone's), newest first: (orders, meta)."""
    given_page = params.page if "page" in params.model_fields_set else None
    window = pagination.window(
        NEWEST_FIRST, limit=params.limit, cursor=params.cursor, page=given_page
    )
    query = Order.select()
    if user.role != "ADMIN":
        query = query.where(Order.user == user.id)
    if params.status:
        query = query.where(Order.status == params.status)
    if params.fulfillmentStatus:
        query = query.where(Order.fulfillment_status == params.fulfillmentStatus)
    rows, next_cursor = window.page_of(list(window.select(query)))
    return orders_json(rows), window.meta(next_cursor, query.count)
