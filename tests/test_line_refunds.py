"""Returns and line refunds (issue 18, item 3), end to end through `shopctl serve`, the
sandbox and real HTTP, on both databases.

A line refund is reserved with its refund row before Stripe is asked; its units go back
to stock only once Stripe accepted it, exactly once whoever tells us (the answer, a
webhook, a replayed event, `payments reconcile --apply`), and never for a refund Stripe
refused.
"""

from __future__ import annotations

import json

from shopctl.commands.common import EXIT_STRIPE_UNREACHABLE
from shopctl.models import Payment, Product, Refund, StockMovement, StripeEvent
from tests.fulfilment_support import admin, item, owner_view, paid_order, post_at_once
from tests.payments_support import payment_of, status_of, wait_processed
from tests.test_payments_ops import _refunded_at_stripe
from tests.test_shipping import _add_rates, _shipping_stack, shipping_stack  # noqa: F401


def _stock(name: str) -> int:
    return Product.get(Product.name == name).quantity


def _refund(stack, settings, order_id: str, body: dict, key: str | None = None):
    headers = admin(settings) | ({"Idempotency-Key": key} if key else {})
    return stack.server.request("POST", f"/order/{order_id}/refunds", json=body, headers=headers)


def _doctor_ok(cli) -> bool:
    result = cli("doctor", "--json")
    return result.exit_code == 0 or print(result.output)


def _restocks(order_id: str) -> list[tuple[int, str]]:
    rows = StockMovement.select().where(
        (StockMovement.order == order_id) & (StockMovement.reason == "refund-restock")
    )
    return [(row.delta, row.refund_id) for row in rows]


def test_a_line_refund_with_restock_returns_exactly_those_units_once(stripe_stack, settings, cli):
    order = paid_order(stripe_stack, settings, ("Mug", 3, 1000), ("Plate", 1, 500))
    mug = order.items["Mug"]
    assert (_stock("Mug"), _stock("Plate")) == (5, 5)
    assert cli("orders", "ship", order.order_id).exit_code == 0
    body = {"lines": [{"itemId": mug, "quantity": 1}], "restock": True, "reason": "returned"}
    url = stripe_stack.server.api(f"/order/{order.order_id}/refunds")
    request = {"json": body, "headers": admin(settings) | {"Idempotency-Key": "return-1"}}
    answers = post_at_once(url, request, request)  # a double click
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    [refund] = {json.dumps(a.json()["data"]["id"]) for a in answers}
    data = answers[0].json()["data"]
    assert (data["amountCents"], data["status"]) == (1000, "SUCCEEDED")
    assert data["lines"] == [{"itemId": mug, "quantity": 1, "restock": True, "restocked": True}]
    assert (_stock("Mug"), _stock("Plate")) == (6, 5)

    again = _refund(stripe_stack, settings, order.order_id, body, key="return-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    wait_processed("refund.created", "charge.refunded")
    for event in StripeEvent.select().where(StripeEvent.type.startswith("refund.")):
        assert cli("events", "replay", event.id, "--force").exit_code == 0
    assert _stock("Mug") == 6 and _restocks(order.order_id) == [(1, json.loads(refund))]
    assert (payment_of(order.order_id).refunded_cents, status_of(order.order_id)) == (1000, "PAID")
    seen = owner_view(stripe_stack, order)
    assert seen["fulfillmentStatus"] == "FULFILLED"  # one of three mugs came back
    [line] = [i for i in seen["items"] if i["id"] == mug]
    assert (line["refundedQuantity"], line["restockedQuantity"]) == (1, 1)
    assert _doctor_ok(cli)

    rest = cli(
        "orders", "refund", order.order_id, "--line", f"{mug[:8]}:2", "--line",
        f"{order.items['Plate']}:1", "--restock", "--yes", "--json",
    )  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert json.loads(rest.output)["amountCents"] == 2500
    assert (_stock("Mug"), _stock("Plate")) == (8, 6)
    assert status_of(order.order_id) == "REFUNDED"
    assert owner_view(stripe_stack, order)["fulfillmentStatus"] == "RETURNED"
    assert _refunded_at_stripe(stripe_stack, order.order_id) == 3500
    assert _doctor_ok(cli)


def test_refunds_never_exceed_what_was_paid_or_ordered(stripe_stack, settings, cli):
    order = paid_order(stripe_stack, settings, ("Mug", 2, 1000))
    mug = order.items["Mug"]
    over = _refund(
        stripe_stack, settings, order.order_id, {"lines": [{"itemId": mug, "quantity": 3}]}
    )
    assert over.status_code == 409 and "only 2 unit(s) left to refund" in over.text
    dear = _refund(
        stripe_stack,
        settings,
        order.order_id,
        {"lines": [{"itemId": mug, "quantity": 1}], "amountCents": 1001},
    )
    assert dear.status_code == 409, dear.text
    bare = _refund(stripe_stack, settings, order.order_id, {"restock": True})
    assert bare.status_code == 400
    assert Refund.select().count() == 0

    partial = cli("orders", "refund", order.order_id, "--amount", "1500", "--yes")
    assert partial.exit_code == 0, partial.output
    both = _refund(
        stripe_stack, settings, order.order_id, {"lines": [{"itemId": mug, "quantity": 1}]}
    )
    assert both.status_code == 409 and "only 500 are left" in both.text
    cheaper = _refund(
        stripe_stack,
        settings,
        order.order_id,
        {"lines": [{"itemId": mug, "quantity": 1}], "amountCents": 500, "restock": True},
    )
    assert cheaper.status_code == 201, cheaper.text
    assert _stock("Mug") == 6
    assert status_of(order.order_id) == "REFUNDED"
    after = _refund(
        stripe_stack, settings, order.order_id, {"lines": [{"itemId": mug, "quantity": 1}]}
    )
    assert after.status_code == 409
    assert _refunded_at_stripe(stripe_stack, order.order_id) == 2000
    assert Payment.get(Payment.order == order.order_id).refunded_cents == 2000
    assert item(order.order_id, mug).refunded_quantity == 1
    assert _doctor_ok(cli)


def test_a_line_refund_stripe_never_answered_restocks_once_reconcile_settles_it(
    stripe_stack, settings, cli
):
    order = paid_order(stripe_stack, settings, ("Mug", 2, 1000))
    mug = order.items["Mug"]
    stripe_stack.configure(webhooks_enabled=False, fail_next=3)
    lost = cli("orders", "refund", order.order_id, "--line", f"{mug}:1", "--restock", "--yes")
    assert lost.exit_code == EXIT_STRIPE_UNREACHABLE, lost.output
    assert _stock("Mug") == 5 and _restocks(order.order_id) == []  # not before Stripe agrees
    assert item(order.order_id, mug).refunded_quantity == 1  # reserved: nobody refunds it twice
    assert _doctor_ok(cli)

    applied = json.loads(cli("payments", "reconcile", "--apply", "--json").output)
    assert [gap["applied"] for gap in applied] == [True]
    assert cli("payments", "reconcile", "--apply", "--json").exit_code == 0
    assert _stock("Mug") == 6 and len(_restocks(order.order_id)) == 1
    assert _refunded_at_stripe(stripe_stack, order.order_id) == 1000
    assert _doctor_ok(cli)


def test_a_line_refund_stripe_refused_gives_its_units_back_and_restocks_nothing(
    stripe_stack, settings, cli
):
    order = paid_order(stripe_stack, settings, ("Mug", 2, 1000))
    mug = order.items["Mug"]
    stripe_stack.configure(webhooks_enabled=False)
    intent = payment_of(order.order_id).payment_intent_id
    stripe_stack.stripe().v1.refunds.create({"payment_intent": intent, "amount": 1500})
    refused = cli("orders", "refund", order.order_id, "--line", f"{mug}:1", "--restock", "--yes")
    assert refused.exit_code == 1, refused.output
    [row] = Refund.select().where(Refund.order == order.order_id)
    assert row.status == "FAILED"
    assert item(order.order_id, mug).refunded_quantity == 0
    assert _stock("Mug") == 5 and _restocks(order.order_id) == []
    assert _doctor_ok(cli)


def test_the_shipping_amount_is_refunded_once_with_the_lines(shipping_stack, settings, cli):  # noqa: F811
    from shopctl.models import Order, OrderItem, User
    from tests.orders_support import bearer
    from tests.payments_support import buyer, product, wait_status

    _add_rates(cli)
    shopper, mug = buyer(shipping_stack, settings, "shipped@example.com"), product("Mug", 5, 1000)
    placed = shopper.order_now(mug, 2)
    shipping_stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    order_id, shipping = placed["orderId"], Order.get_by_id(placed["orderId"]).shipping_cents
    assert shipping == 500 and Order.get_by_id(order_id).amount_cents == 2500
    item_id = OrderItem.get(OrderItem.order == order_id).id
    ops = bearer(
        settings, User.create(email="ship-ops@example.com", password_hash="x", role="ADMIN")
    )
    body = {"lines": [{"itemId": item_id, "quantity": 1}], "shipping": True, "restock": True}
    url = f"/order/{order_id}/refunds"
    first = shipping_stack.server.request("POST", url, json=body, headers=ops)
    assert first.status_code == 201, first.text
    assert (first.json()["data"]["amountCents"], first.json()["data"]["shippingCents"]) == (
        1500,
        500,
    )
    again = shipping_stack.server.request("POST", url, json=body, headers=ops)
    assert again.status_code == 409 and "shipping was already refunded" in again.text
    rest = cli("orders", "refund", order_id, "--line", f"{item_id}:1", "--yes", "--json")
    assert rest.exit_code == 0, rest.output
    assert json.loads(rest.output)["amountCents"] == 1000
    assert status_of(order_id) == "REFUNDED"
    assert _refunded_at_stripe(shipping_stack, order_id) == 2500
    assert _doctor_ok(cli)
