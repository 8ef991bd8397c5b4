"""How much one buyer may hold and how fast they may order (issue 16): `MAX_OPEN_ORDERS`
unpaid orders at once and `ORDER_RATE_LIMIT` new orders per window. Admins are not
limited. Checked by placement inside its transaction, before any stock is taken."""

from __future__ import annotations

import math

from shopctl.config import Settings
from shopctl.db import is_postgres
from shopctl.errors import Conflict
from shopctl.models import Order, User
from shopctl.services.accounts import throttle
from shopctl.services.common import iso
from shopctl.services.orders.lifecycle import UNPAID


def check_order_limits(settings: Settings, user: User, now) -> None:
    """A buyer (not an admin) places at most `order_rate` orders and holds at most
    `max_open_orders` unpaid ones. Runs first in the placement's transaction, so a
    refusal reserves nothing; the rate counter's row (or, without a rate, the buyer's
    row) is locked until commit, so one buyer's orders are counted one at a time even on
    PostgreSQL, and two orders at the limit cannot both pass."""
    if user.role == "ADMIN":
        return
    if settings.order_rate:
        what = "orders from your account"
        throttle.hit([throttle.rate_limit("order", user.id, settings.order_rate, what)], now)
    elif settings.max_open_orders and is_postgres():
        User.select(User.id).where(User.id == user.id).for_update("FOR NO KEY UPDATE").execute()
    if not settings.max_open_orders:
        return
    held = (
        Order.select(Order.expires_at)
        .where(Order.user == user.id, Order.status == UNPAID, Order.expires_at > now)
        .order_by(Order.expires_at)
        .limit(settings.max_open_orders)
    )
    ends = [order.expires_at for order in held]
    if len(ends) >= settings.max_open_orders:
        frees_in = max(1, math.ceil((ends[0] - now).total_seconds()))
        raise Conflict(
            f"You already hold {settings.max_open_orders} unpaid orders, the most one account "
            f"may hold: pay or cancel one, or wait until the first reservation ends at "
            f"{iso(ends[0])} (in {frees_in} seconds)",
            detail={
                "limit": settings.max_open_orders,
                "freesAt": iso(ends[0]),
                "retryAfter": frees_in,
            },
        )
