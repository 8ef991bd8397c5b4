"""Orders: place (reserving stock), check before paying, cancel, read (listing.py lists).

Every rule about orders lives here once; the API and the CLI both call these
functions. Status changes go through `shopctl.services.orders.lifecycle`, which payments
and the expiry job share.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import NoReturn

from peewee import IntegrityError

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import (
    Conflict,
    Gone,
    InvalidInput,
    NotChargeable,
    NotFound,
    ShopError,
    Unprocessable,
)
from shopctl.models import (
    Order,
    OrderHistory,
    OrderItem,
    Payment,
    Product,
    StockMovement,
    User,
    new_id,
    utcnow,
)
from shopctl.money import chargeable_problem
from shopctl.money import currency as currency_rules
from shopctl.schemas import MAX_LINE_QUANTITY, OrderLine
from shopctl.services.common import iso
from shopctl.services.orders import shipping as shipping_rates
from shopctl.services.orders.lifecycle import (
    CANCELED,
    EXPIRED,
    UNPAID,
    announce_stock_out,
    insert_rows,
    lock_order,
    movement_rows,
    release_stock,
    take_stock,
    transition,
)
from shopctl.services.orders.limits import check_order_limits
from shopctl.services.orders.line_views import item_json, payment_json, shipments_by_order
from shopctl.services.orders.money_views import refunds_by_order
from shopctl.services.orders.shipping import shipping_json

ORDER_NOT_FOUND = "Order not found"


# --- placing an order -----------------------------------------------------------------


def place_order(
    settings: Settings,
    user: User,
    items: Sequence[OrderLine],
    *,
    pay_later: bool,
    idempotency_key: str | None = None,
    actor: str = "api",
    within: Callable[[Order], object] | None = None,
) -> tuple[Order, bool]:
    """Reserve the items' stock and create the order with its payment: (order, created).

    The order comes back with its payment row at `order.payment`. With an
    `idempotency_key` already used by this user for the same request, the original
    order is returned (created False) and nothing is reserved again; for a different
    request, Unprocessable. `within`, if given, is called with the new order inside the
    placement transaction (pay now plans its Checkout Session there).
    """
    quantities = aggregate_lines(items)
    request_hash = _request_hash(quantities, pay_later)
    try:
        with write_transaction():
            order = _create_order(
                settings, user, quantities, pay_later, actor, idempotency_key, request_hash
            )
            if within is not None:
                within(order)
    except (IntegrityError, ShopError):
        # The key is looked up only when placing failed, so a new order costs no extra
        # query: a replay fails at the unique (user, key) index (or, if the stock has gone
        # since, at the reservation), and so does the loser of two requests racing with
        # one key. Either way the answer is the original order.
        earlier = idempotency_key and _replay(user, idempotency_key, request_hash)
        if not earlier:
            raise
        return earlier, False
    return order, True


def aggregate_lines(items: Iterable[OrderLine]) -> dict[str, int]:
    """Product id → total quantity; repeated lines for one product become one, which must
    keep to the per-line limit too (100 lines of 10,000 are not one line of 1,000,000)."""
    quantities: dict[str, int] = defaultdict(int)
    for line in items:
        quantities[line.product_id] += line.quantity
    over = [(pid, n) for pid, n in quantities.items() if n > MAX_LINE_QUANTITY]
    if over:
        raise InvalidInput(
            [
                {
                    "path": "items",
                    "message": f"product {pid}: {n:,} units over its lines; "
                    f"at most {MAX_LINE_QUANTITY:,} of one product per order",
                }
                for pid, n in over
            ]
        )
    return dict(quantities)


def _request_hash(quantities: dict[str, int], pay_later: bool) -> str:
    normalised = {"items": sorted(quantities.items()), "payLater": pay_later}
    return hashlib.sha256(json.dumps(normalised).encode()).hexdigest()


def _replay(user: User, key: str, request_hash: str) -> Order | None:
    order = Order.get_or_none((Order.user == user.id) & (Order.idempotency_key == key))
    if order is None:
        return None
    if order.request_hash != request_hash:
        raise Unprocessable("Idempotency-Key was already used with a different request")
    order.payment = Payment.get(Payment.order == order.id)
    return order


def _create_order(settings, user, quantities, pay_later, actor, key, request_hash) -> Order:
    """The order, its items, payment, ledger rows and first history row: one UPDATE of the
    products and (on PostgreSQL) one INSERT statement, whatever the number of lines."""
    currency = settings.stripe_currency
    now = utcnow()
    check_order_limits(settings, user, now)
    # Read before the stock is taken, so the product rows are not held locked for it.
    shipping = _dearest_shipping(settings)
    taken = take_stock(quantities, currency=currency)
    if len(taken) < len(quantities):
        _refuse(settings, quantities, taken, shipping)
    amount = sum(taken[pid][1] * quantity for pid, quantity in quantities.items())
    _check_total(settings, amount, {taken[pid][1] for pid in quantities}, shipping)
    order = Order(
        id=new_id(),
        user=user.id,
        status=UNPAID,
        amount_cents=amount,
        currency=currency,
        pay_later=pay_later,
        expires_at=now + timedelta(minutes=settings.order_reservation_minutes),
        stock_released=False,
        idempotency_key=key,
        request_hash=request_hash,
        created_at=now,
        updated_at=now,
    )
    order.payment = Payment(
        id=new_id(),
        order=order.id,
        status="PENDING",
        amount_cents=amount,
        currency=currency,
        created_at=now,
        updated_at=now,
    )
    items = [
        {
            "id": new_id(),
            "order": order.id,
            "product": pid,
            "quantity": quantity,
            "product_name": taken[pid][0],  # the name and unit price as they are now
            "price_cents": taken[pid][1],
        }
        for pid, quantity in sorted(quantities.items())
    ]
    history = {
        "order": order.id,
        "from_status": None,
        "to_status": UNPAID,
        "reason": "created",
        "actor": actor,
        "created_at": now,
    }
    insert_rows(
        (Order, [order.__data__]),
        (OrderItem, items),
        (Payment, [order.payment.__data__]),
        (StockMovement, movement_rows(order.id, quantities, "order", sign=-1)),
        (OrderHistory, [history]),
    )
    return order


def _refuse(settings, quantities: dict[str, int], taken: dict, shipping: int) -> NoReturn:
    """Why some lines could not be taken, checked in the order a buyer is told about it:
    unknown products, archived or foreign ones, a total too big, then short stock."""
    products = {p.id: p for p in Product.select().where(Product.id.in_(list(quantities)))}
    _check_products(settings, quantities, products)
    prices = {products[pid].price_cents for pid in quantities}
    amount = sum(products[pid].price_cents * q for pid, q in quantities.items())
    _check_total(settings, amount, prices, shipping)
    short = {pid: products[pid].quantity for pid in quantities if pid not in taken}
    _raise_shortfall(quantities, products, short)


def _dearest_shipping(settings) -> int:
    """The most shipping can add at Checkout: the buyer picks the rate there."""
    if not settings.shipping_countries:
        return 0
    return shipping_rates.dearest_rate_cents(settings.stripe_currency)


def _check_total(settings, amount: int, unit_prices: Iterable[int], shipping: int) -> None:
    """Refuse (400, naming the limit) a total Stripe cannot charge: under its minimum, over
    one payment's maximum (with `shipping`, the dearest rate), or off the currency's step
    (a price from before the rules)."""
    currency = settings.stripe_currency
    problem = chargeable_problem(amount, currency)
    if problem:
        raise NotChargeable(f"The order total {problem}")
    if shipping and (problem := chargeable_problem(amount + shipping, currency)):
        raise NotChargeable(f"The order total with its dearest shipping rate {problem}")
    rules = currency_rules(currency)
    off_step = sorted(price for price in unit_prices if price % rules.step)
    if off_step:  # Stripe checks each line item's unit amount too
        raise NotChargeable(
            f"A unit price in this order is {rules.format(off_step[0])}; Stripe charges "
            f"{currency.upper()} in steps of {rules.format(rules.step)}"
        )


def _check_products(settings, quantities, products: dict[str, Product]) -> None:
    unknown = [pid for pid in quantities if pid not in products]
    if unknown:
        raise NotFound(
            "Products not found: " + ", ".join(unknown),
            detail=[{"productId": pid} for pid in unknown],
        )
    archived = [p for p in products.values() if p.is_archived]
    if archived:
        raise Conflict(
            "Products no longer for sale: " + ", ".join(p.name for p in archived),
            detail=[{"productId": p.id, "name": p.name} for p in archived],
        )
    foreign = [p for p in products.values() if p.currency != settings.stripe_currency]
    if foreign:
        raise Conflict(
            f"Products not priced in {settings.stripe_currency}: "
            + ", ".join(p.name for p in foreign)
        )


def _raise_shortfall(quantities, products, short: dict[str, int]) -> NoReturn:
    announce_stock_out(sorted(short))
    detail = [
        {
            "productId": pid,
            "name": products[pid].name,
            "requested": quantities[pid],
            "available": left,
        }
        for pid, left in sorted(short.items(), key=lambda pair: products[pair[0]].name)
    ]
    names = ", ".join(f"{line['name']} ({line['available']} left)" for line in detail)
    raise Conflict(f"Not enough stock: {names}", detail=detail)


# --- paying and canceling -------------------------------------------------------------


def order_to_pay(user: User, order_id: str) -> Order:
    """The buyer's own order, checked payable (UNPAID, reservation running), with `.payment`.

    Gone when the reservation ran out, Conflict when the order is past paying.
    """
    order = Order.get_or_none(Order.id == order_id)
    if order is None or order.user_id != user.id:
        raise NotFound(ORDER_NOT_FOUND)
    if order.status == EXPIRED or (order.status == UNPAID and order.expires_at <= utcnow()):
        raise Gone("The order's reservation has expired; place a new order")
    if order.status != UNPAID:
        raise Conflict(f"Order cannot be paid: it is {order.status}")
    order.payment = Payment.get(Payment.order == order.id)
    return order


def cancel_order(order_id: str, *, user: User | None, actor: str) -> dict:
    """Cancel an UNPAID order and give its stock back; `user` None means the operator.

    Only the owner or an admin may cancel (others get NotFound); anything past UNPAID is
    a Conflict — including an order the expiry job or a payment got to first.
    """
    with write_transaction():
        order = lock_order(order_id)
        if order is None or (user is not None and not _may_see(user, order)):
            raise NotFound(ORDER_NOT_FOUND)
        if order.status != UNPAID:
            raise Conflict(f"Only unpaid orders can be canceled; this one is {order.status}")
        transition(
            order,
            CANCELED,
            reason=_cancel_reason(user, order),
            actor=actor,
            payment_status=CANCELED,
        )
        release_stock(order, "canceled")
    return orders_json([order])[0]


def _cancel_reason(user: User | None, order: Order) -> str:
    if user is None:
        return "canceled by the operator"
    return "canceled by the buyer" if user.id == order.user_id else "canceled by an admin"


# --- reading --------------------------------------------------------------------------


def _may_see(user: User, order: Order) -> bool:
    return user.role == "ADMIN" or order.user_id == user.id


def get_order(user: User, order_id: str) -> dict:
    """One order as JSON; someone else's order is NotFound (unless `user` is an admin)."""
    order = Order.get_or_none(Order.id == order_id)
    if order is None or not _may_see(user, order):
        raise NotFound(ORDER_NOT_FOUND)
    return orders_json([order])[0]


def orders_json(orders: Sequence[Order]) -> list[dict]:
    """Orders with items, payment, refunds and shipments, in five queries whatever their
    number (four when none was paid: only paid orders ship)."""
    ids = [order.id for order in orders]
    items: dict[str, list[OrderItem]] = defaultdict(list)
    payments: dict[str, Payment] = {}
    if ids:
        for item in (
            OrderItem.select().where(OrderItem.order.in_(ids)).order_by(OrderItem.product_name)
        ):
            items[item.order_id].append(item)
        payments = {p.order_id: p for p in Payment.select().where(Payment.order.in_(ids))}
    refunds, shipments = refunds_by_order(ids), shipments_by_order(orders)
    return [
        order_json(order, items[order.id], payments.get(order.id))
        | {"refunds": refunds[order.id], "shipments": shipments[order.id]}
        for order in orders
    ]


def order_json(order: Order, items: Iterable[OrderItem], payment: Payment | None) -> dict:
    return {
        "id": order.id,
        "userId": order.user_id,
        "status": order.status,
        "fulfillmentStatus": order.fulfillment_status,
        "amountCents": order.amount_cents,
        "currency": order.currency,
        "expiresAt": iso(order.expires_at),
        "createdAt": iso(order.created_at),
        "updatedAt": iso(order.updated_at),
        "payLater": order.pay_later,
        "disputed": order.disputed,
        "items": [item_json(item) for item in items],
        "payment": payment_json(payment) if payment else None,
        "shipping": shipping_json(order),
    }
