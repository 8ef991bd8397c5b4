"""Fulfilment (issue 18, item 2): shipments of paid orders, end to end through `shopctl
serve`, the sandbox and real HTTP, on both databases.

A unit never ships twice (medusa#2585: one item fulfilled many times) and a canceled
shipment never drives a line below zero (medusa#5158: -428,723 fulfilled).
"""

from __future__ import annotations

import json
from datetime import timedelta

from shopctl.models import OrderHistory, OrderItem, Payment, Shipment, utcnow
from tests.fulfilment_support import admin, item, owner_view, paid_order, post_at_once
from tests.payments_support import buyer, product
from tests.test_indexes import fresh_database  # noqa: F401  (fixture)


def _ship(stack, settings, order_id: str, body: dict, key: str | None = None):
    headers = admin(settings) | ({"Idempotency-Key": key} if key else {})
    return stack.server.request("POST", f"/order/{order_id}/shipments", json=body, headers=headers)


def _doctor(cli) -> dict[str, dict]:
    result = cli("doctor", "--json")
    return {check["name"]: check for check in json.loads(result.output)["checks"]} | {
        "exit": {"code": result.exit_code}
    }


def test_partial_then_full_shipment(stripe_stack, settings, cli):
    order = paid_order(stripe_stack, settings, ("Mug", 2, 1000), ("Plate", 1, 500))
    mug, plate = order.items["Mug"], order.items["Plate"]
    assert owner_view(stripe_stack, order)["fulfillmentStatus"] == "UNFULFILLED"

    first = _ship(
        stripe_stack,
        settings,
        order.order_id,
        {
            "lines": [{"itemId": mug, "quantity": 1}],
            "carrier": "UPS",
            "trackingNumber": "1Z999",
            "trackingUrl": "https://ups.example/1Z999",
        },
    )
    assert first.status_code == 201, first.text
    assert first.json()["data"]["lines"] == [{"itemId": mug, "quantity": 1}]
    seen = owner_view(stripe_stack, order)
    assert (seen["status"], seen["fulfillmentStatus"]) == ("PAID", "PARTIALLY_FULFILLED")
    [shipment] = seen["shipments"]
    assert (shipment["carrier"], shipment["trackingNumber"]) == ("UPS", "1Z999")
    assert shipment["trackingUrl"] == "https://ups.example/1Z999"
    assert {i["productName"]: i["shippedQuantity"] for i in seen["items"]} == {
        "Mug": 1,
        "Plate": 0,
    }
    assert _doctor(cli)["exit"]["code"] == 0

    listed = json.loads(
        cli("orders", "list", "--fulfillment", "partially_fulfilled", "--json").output
    )
    assert [row["id"] for row in listed] == [order.order_id]

    rest = cli("orders", "ship", order.order_id[:8], "--carrier", "DHL", "--json")  # the rest
    assert rest.exit_code == 0, rest.output
    assert sorted(
        (line["itemId"], line["quantity"]) for line in json.loads(rest.output)["lines"]
    ) == sorted([(mug, 1), (plate, 1)])
    seen = owner_view(stripe_stack, order)
    assert (seen["status"], seen["fulfillmentStatus"]) == ("PAID", "FULFILLED")
    assert [s["carrier"] for s in seen["shipments"]] == ["UPS", "DHL"]
    shown = cli("orders", "show", order.order_id)
    assert shown.exit_code == 0 and "FULFILLED" in shown.output and "DHL" in shown.output
    history = json.loads(cli("orders", "show", order.order_id, "--json").output)["history"]
    assert [row.get("event") for row in history][-2:] == ["shipped", "shipped"]
    nothing_left = cli("orders", "ship", order.order_id)
    assert nothing_left.exit_code == 1 and "Nothing is left to ship" in nothing_left.output
    events = OrderHistory.select().where(
        (OrderHistory.order == order.order_id) & (OrderHistory.event == "shipped")
    )
    assert [(row.from_status, row.to_status) for row in events] == [("PAID", "PAID")] * 2
    listed = json.loads(cli("orders", "list", "--fulfillment", "FULFILLED", "--json").output)
    assert [row["fulfillmentStatus"] for row in listed] == ["FULFILLED"]
    admin_list = stripe_stack.server.request(
        "GET", "/order", params={"fulfillmentStatus": "FULFILLED"}, headers=admin(settings)
    )
    assert [row["id"] for row in admin_list.json()["data"]] == [order.order_id]
    assert _doctor(cli)["exit"]["code"] == 0


def test_the_same_shipment_sent_twice_at_once_ships_once(stripe_stack, settings, cli):
    order = paid_order(stripe_stack, settings, ("Mug", 2, 1000))
    mug = order.items["Mug"]
    url = stripe_stack.server.api(f"/order/{order.order_id}/shipments")
    request = {"json": {"lines": [{"itemId": mug, "quantity": 2}]}, "headers": admin(settings)}
    for _ in range(3):  # rounds: each time a winner, then the losers
        answers = post_at_once(url, request, request)
        codes = sorted(answer.status_code for answer in answers)
        assert codes in ([201, 409], [409, 409]), [a.text for a in answers]
        everything = {"json": {}, "headers": admin(settings)}
        assert {a.status_code for a in post_at_once(url, everything, everything)} == {409}
    assert item(order.order_id, mug).shipped_quantity == 2
    assert Shipment.select().where(Shipment.order == order.order_id).count() == 1
    assert _doctor(cli)["exit"]["code"] == 0


def test_a_retried_post_with_the_same_idempotency_key_ships_once(stripe_stack, settings, cli):
    order = paid_order(stripe_stack, settings, ("Mug", 3, 1000))
    mug = order.items["Mug"]
    body = {"lines": [{"itemId": mug, "quantity": 1}], "carrier": "UPS"}
    url = stripe_stack.server.api(f"/order/{order.order_id}/shipments")
    request = {"json": body, "headers": admin(settings) | {"Idempotency-Key": "ship-1"}}
    answers = post_at_once(url, request, request)
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert len({a.json()["data"]["id"] for a in answers}) == 1
    assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true"]
    again = _ship(stripe_stack, settings, order.order_id, body, key="ship-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert item(order.order_id, mug).shipped_quantity == 1
    other = _ship(stripe_stack, settings, order.order_id, body | {"carrier": "DHL"}, "ship-1")
    assert other.status_code == 422, other.text
    fresh = _ship(stripe_stack, settings, order.order_id, body, key="ship-2")
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    assert item(order.order_id, mug).shipped_quantity == 2
    assert _doctor(cli)["exit"]["code"] == 0


def test_shipping_an_unpaid_or_refunded_order_is_refused(stripe_stack, settings, cli):
    shopper, cup = buyer(stripe_stack, settings, "later@example.com"), product("Cup")
    unpaid = shopper.order_later(cup)
    refused = _ship(stripe_stack, settings, unpaid["orderId"], {})
    assert refused.status_code == 409 and "Only paid orders can ship" in refused.text
    assert cli("orders", "ship", unpaid["orderId"]).exit_code == 1
    as_buyer = stripe_stack.server.request(
        "POST", f"/order/{unpaid['orderId']}/shipments", json={}, headers=shopper.headers
    )
    assert as_buyer.status_code == 403

    order = paid_order(stripe_stack, settings, ("Mug", 1, 1000))
    assert cli("orders", "refund", order.order_id, "--yes").exit_code == 0
    refunded = _ship(stripe_stack, settings, order.order_id, {})
    assert refunded.status_code == 409 and "REFUNDED" in refunded.text
    too_many = _ship(
        stripe_stack,
        settings,
        order.order_id,
        {"lines": [{"itemId": order.items["Mug"], "quantity": 10_001}]},
    )
    assert too_many.status_code == 400
    unknown = cli("orders", "ship", order.order_id, "--line", "nope:1")
    assert unknown.exit_code == 1  # REFUNDED: refused before the lines are read
    assert OrderItem.select().where(OrderItem.shipped_quantity > 0).count() == 0
    assert _doctor(cli)["exit"]["code"] == 0


def test_a_canceled_shipment_is_owed_again_and_never_goes_below_zero(stripe_stack, settings, cli):
    order = paid_order(stripe_stack, settings, ("Mug", 2, 1000))
    mug = order.items["Mug"]
    bad = cli("orders", "ship", order.order_id, "--line", f"{mug[:8]}:x")
    assert bad.exit_code == 2
    shipped = cli("orders", "ship", order.order_id, "--line", f"{mug[:8]}:2", "--json")
    assert shipped.exit_code == 0, shipped.output
    shipment_id = json.loads(shipped.output)["id"]
    canceled = cli("orders", "shipments", "cancel", shipment_id[:8], "--json")
    assert canceled.exit_code == 0, canceled.output
    assert json.loads(canceled.output)["canceledAt"]
    twice = cli("orders", "shipments", "cancel", shipment_id)
    assert twice.exit_code == 1 and "already canceled" in twice.output
    assert item(order.order_id, mug).shipped_quantity == 0
    assert owner_view(stripe_stack, order)["fulfillmentStatus"] == "UNFULFILLED"
    assert cli("orders", "ship", order.order_id).exit_code == 0  # owed again
    assert item(order.order_id, mug).shipped_quantity == 2
    assert _doctor(cli)["exit"]["code"] == 0


def test_doctor_is_red_for_a_line_shipped_beyond_ordered_and_a_late_shipment(
    stripe_stack, settings, cli
):
    order = paid_order(stripe_stack, settings, ("Mug", 2, 1000))
    checks = _doctor(cli)
    assert checks["shipping"]["ok"] and checks["shipped lines"]["ok"]

    Payment.update(paid_at=utcnow() - timedelta(days=4)).where(
        Payment.order == order.order_id
    ).execute()
    checks = _doctor(cli)
    assert not checks["shipping"]["ok"] and order.order_id in checks["shipping"]["detail"]
    assert checks["exit"]["code"] == 1
    assert cli("orders", "ship", order.order_id).exit_code == 0
    assert _doctor(cli)["exit"]["code"] == 0

    OrderItem.update(shipped_quantity=3).where(OrderItem.id == order.items["Mug"]).execute()
    checks = _doctor(cli)
    assert not checks["shipped lines"]["ok"], checks["shipped lines"]
    assert "3 shipped of 2 ordered" in checks["shipped lines"]["detail"]
    assert checks["exit"]["code"] == 1


def test_migration_0009_starts_orders_unfulfilled_and_goes_back(fresh_database):  # noqa: F811
    import uuid

    from tests.test_indexes import runner_for

    migration = "0009_fulfilment"
    runner = runner_for(fresh_database)
    runner.up("0008_shipping")
    mark = "%s" if "Postgres" in type(fresh_database).__name__ else "?"
    ids = {name: str(uuid.uuid4()) for name in ("user", "order", "product", "item")}
    now = utcnow()
    for sql, params in (
        (
            'INSERT INTO "user" (id, email, password_hash, role, is_deleted, created_at, '
            "updated_at) VALUES (?, 'old@example.com', 'x', 'USER', ?, ?, ?)",
            (ids["user"], False, now, now),
        ),
        (
            'INSERT INTO "order" (id, user_id, status, amount_cents, currency, pay_later, '
            "expires_at, stock_released, created_at, updated_at) "
            "VALUES (?, ?, 'PAID', 1000, 'usd', ?, ?, ?, ?, ?)",
            (ids["order"], ids["user"], False, now, False, now, now),
        ),
        (
            'INSERT INTO "product" (id, name, price_cents, currency, quantity, is_archived, '
            "created_at, updated_at) VALUES (?, 'Mug', 1000, 'usd', 1, ?, ?, ?)",
            (ids["product"], False, now, now),
        ),
        (
            'INSERT INTO "order_item" (id, order_id, product_id, product_name, quantity, '
            "price_cents) VALUES (?, ?, ?, 'Mug', 1, 1000)",
            (ids["item"], ids["order"], ids["product"]),
        ),
    ):
        fresh_database.execute_sql(sql.replace("?", mark), params)
    assert runner.up(migration) == [migration]
    assert fresh_database.execute_sql('SELECT "fulfillment_status" FROM "order"').fetchall() == [
        ("UNFULFILLED",)
    ]
    quantities = (
        'SELECT "shipped_quantity", "refunded_quantity", "restocked_quantity" FROM "order_item"'
    )
    assert fresh_database.execute_sql(quantities).fetchall() == [(0, 0, 0)]
    assert {"shipment", "shipment_line", "refund_line"} <= set(fresh_database.get_tables())
    assert runner.down() == [migration]
    assert not {"shipment", "shipment_line", "refund_line"} & set(fresh_database.get_tables())
    assert "fulfillment_status" not in {c.name for c in fresh_database.get_columns("order")}
    assert runner.up(migration) == [migration]


def test_shipping_a_disputed_order_is_refused_until_the_dispute_is_won(stripe_stack, settings, cli):
    from shopctl.models import Dispute, Order
    from tests.payments_support import payment_of, wait_for

    order = paid_order(stripe_stack, settings, ("Mug", 1, 1000))
    intent = payment_of(order.order_id).payment_intent_id
    opened = stripe_stack.control("POST", f"/payment_intents/{intent}/dispute", json={})
    wait_for(lambda: Order.get_by_id(order.order_id).disputed, what="the order disputed")
    refused = _ship(stripe_stack, settings, order.order_id, {})
    assert refused.status_code == 409 and opened["id"] in refused.text, refused.text
    held = cli("orders", "ship", order.order_id)
    assert held.exit_code == 1 and "may not ship" in " ".join(held.output.split())
    assert item(order.order_id, order.items["Mug"]).shipped_quantity == 0

    stripe_stack.control("POST", f"/disputes/{opened['id']}/close", json={"outcome": "won"})
    wait_for(lambda: Dispute.get_by_id(opened["id"]).status == "won", what="the dispute won")
    assert _ship(stripe_stack, settings, order.order_id, {}).status_code == 201
    assert item(order.order_id, order.items["Mug"]).shipped_quantity == 1
    assert _doctor(cli)["exit"]["code"] == 0
