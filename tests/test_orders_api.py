"""`/order` over HTTP (in-process app): placing, idempotency, refusals, privacy, listing."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from shopctl.models import Order, OrderHistory, Payment, StockMovement
from tests.orders_support import (
    assert_ledger_consistent,
    bearer,
    lines,
    make_overdue,
    make_product,
    make_user,
    place,
    stock_of,
)

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def settings(db, backend_url):
    """The suite's settings pointed at this test's database, so the in-process app uses it."""
    from shopctl.config import load_settings

    return dataclasses.replace(load_settings(env_file=None), database_url=backend_url)


@pytest.fixture
def buyer(settings):
    user = make_user("buyer@example.com")
    user.headers = bearer(settings, user)
    return user


@pytest.fixture
def mug(db):
    return make_product("Mug", price_cents=1250, quantity=10)


def post(app_client, path, user, json=None, headers=None):
    _, response = app_client.post(
        f"/api/v1{path}", json=json, headers={**user.headers, **(headers or {})}
    )
    return response


def get(app_client, path, user):
    _, response = app_client.get(f"/api/v1{path}", headers=user.headers)
    return response


# --- placing ------------------------------------------------------------------------------


def test_pay_later_order_reserves_stock_and_can_be_read_back(app_client, buyer, mug):
    response = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 3))})
    assert response.status_code == 201, response.text
    assert response.json["message"] == "Order created (pay later)"
    data = response.json["data"]
    assert data["payLater"] is True and data["expiresAt"].endswith("Z")
    assert stock_of(mug) == 7
    order = get(app_client, f"/order/{data['orderId']}", buyer).json["data"]
    assert order["status"] == "UNPAID" and order["amountCents"] == 3750
    assert order["currency"] == "usd" and order["userId"] == buyer.id
    assert order["items"] == [
        {
            "id": order["items"][0]["id"],
            "orderId": data["orderId"],
            "productId": mug.id,
            "productName": "Mug",
            "quantity": 3,
            "priceCents": 1250,
            "shippedQuantity": 0,
            "refundedQuantity": 0,
            "restockedQuantity": 0,
        }
    ]
    assert order["payment"] == {
        "id": data["paymentId"],
        "status": "PENDING",
        "paymentUrl": None,
        "sessionId": None,
    }
    assert_ledger_consistent()


def test_pay_now_order_is_placed_whatever_the_payment_provider_says(app_client, buyer, mug):
    response = post(app_client, "/order", buyer, {"items": lines((mug, 1))})
    assert response.status_code == 201
    data = response.json["data"]
    assert response.json["message"] == "Order created successfully"
    assert set(data) >= {"orderId", "paymentId", "paymentUrl", "expiresAt"}
    order = Order.get_by_id(data["orderId"])
    assert order.pay_later is False and order.status == "UNPAID" and stock_of(mug) == 9


def test_repeated_products_become_one_line_and_the_total_is_in_cents(
    app_client, buyer, mug, settings
):
    pen = make_product("Pen", price_cents=199, quantity=50)
    items = lines((mug, 1), (pen, 2), (mug, 2))
    data = post(app_client, "/order/pay-later", buyer, {"items": items}).json["data"]
    order = Order.get_by_id(data["orderId"])
    assert order.amount_cents == 3 * 1250 + 2 * 199
    assert sorted((i.product_name, i.quantity) for i in order.items) == [("Mug", 3), ("Pen", 2)]
    movements = StockMovement.select().where(StockMovement.order == order.id)
    assert sorted((m.product_id, m.delta, m.reason) for m in movements) == sorted(
        [(mug.id, -3, "order"), (pen.id, -2, "order")]
    )
    history = OrderHistory.get(OrderHistory.order == order.id)
    assert (history.from_status, history.to_status, history.actor) == (None, "UNPAID", "api")


def test_the_v1_data_wrapper_is_accepted(app_client, buyer, mug):
    import json

    wrapped = {"data": json.dumps({"items": lines((mug, 1))})}
    assert post(app_client, "/order/pay-later", buyer, wrapped).status_code == 201


def test_unknown_products_are_404_and_named(app_client, buyer, mug):
    response = post(
        app_client,
        "/order",
        buyer,
        {"items": [*lines((mug, 1)), {"productId": UNKNOWN_ID, "quantity": 1}]},
    )
    assert response.status_code == 404
    assert UNKNOWN_ID in response.json["message"]
    assert stock_of(mug) == 10 and Order.select().count() == 0


def test_a_total_no_single_payment_can_take_is_400(app_client, buyer):
    yacht = make_product("Yacht", price_cents=99_999_999, quantity=3)
    response = post(app_client, "/order/pay-later", buyer, {"items": lines((yacht, 2))})
    assert response.status_code == 400
    assert "999999.99 USD" in response.json["message"]
    assert stock_of(yacht) == 3 and Order.select().count() == 0


def test_archived_products_are_409_and_named(app_client, buyer, mug):
    old = make_product("Old lamp", quantity=5, archived=True)
    response = post(app_client, "/order", buyer, {"items": lines((mug, 1), (old, 1))})
    assert response.status_code == 409
    assert "Old lamp" in response.json["message"]
    assert stock_of(mug) == 10 and stock_of(old) == 5


def test_short_stock_is_409_naming_each_product_and_what_is_left(app_client, buyer, mug):
    pen = make_product("Pen", quantity=1)
    response = post(app_client, "/order", buyer, {"items": lines((mug, 11), (pen, 2))})
    assert response.status_code == 409
    body = response.json
    assert "Mug (10 left)" in body["message"] and "Pen (1 left)" in body["message"]
    assert body["error"] == [
        {"productId": mug.id, "name": "Mug", "requested": 11, "available": 10},
        {"productId": pen.id, "name": "Pen", "requested": 2, "available": 1},
    ]
    assert (stock_of(mug), stock_of(pen)) == (10, 1)
    assert Order.select().count() == 0
    assert_ledger_consistent()


@pytest.mark.parametrize(
    "items, path",
    [
        ([], "items"),
        ([{"productId": "not-a-uuid", "quantity": 1}], "items.0.productId"),
        ([{"productId": UNKNOWN_ID, "quantity": 0}], "items.0.quantity"),
        ([{"productId": UNKNOWN_ID, "quantity": 10_001}], "items.0.quantity"),
        ([{"productId": UNKNOWN_ID, "quantity": "2"}], "items.0.quantity"),
        ([{"productId": UNKNOWN_ID, "quantity": 1.5}], "items.0.quantity"),
        ([{"productId": UNKNOWN_ID, "quantity": 1, "price": 1}], "items.0.price"),
        ([{"productId": UNKNOWN_ID, "quantity": 1}] * 101, "items"),
        ("all of them", "items"),
    ],
)
def test_invalid_orders_are_400_with_the_validation_envelope(app_client, buyer, items, path):
    response = post(app_client, "/order", buyer, {"items": items})
    assert response.status_code == 400
    assert response.json["message"] == "Validation Error"
    assert path in [error["path"] for error in response.json["error"]]
    assert Order.select().count() == 0


def test_orders_need_a_login(app_client, mug):
    _, response = app_client.post("/api/v1/order", json={"items": lines((mug, 1))})
    assert response.status_code == 401
    assert stock_of(mug) == 10


# --- one executor hop: authentication and placement together ------------------------------


@pytest.fixture
def hops(app_client, monkeypatch):
    """The functions the app runs in its thread pool from now on, one per round trip."""
    loop, app = app_client.loop, app_client.sanic_app
    run_in_executor = loop.run_in_executor
    calls = []

    def counting(executor, fn, *args):
        if executor is app.ctx.executor:
            calls.append(fn)
        return run_in_executor(executor, fn, *args)

    monkeypatch.setattr(loop, "run_in_executor", counting)
    return calls


def test_pay_later_authenticates_and_places_in_one_hop(app_client, buyer, mug, hops):
    response = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 1))})
    assert response.status_code == 201
    assert len(hops) == 1


def test_pay_now_plans_its_checkout_in_the_placement_transaction(app_client, buyer, mug, hops):
    """Placing and planning share one hop; the Stripe call comes after it, outside any
    transaction, and its outcome (here a failure: nothing listens) is a second hop."""
    response = post(app_client, "/order", buyer, {"items": lines((mug, 1))})
    assert response.status_code == 201 and response.json["data"]["paymentUrl"] is None
    assert len(hops) == 2
    payment = Payment.get_by_id(response.json["data"]["paymentId"])
    assert payment.session_expires_at is not None and payment.last_error


BAD_TOKEN = {"Authorization": "Bearer not-a-token"}


@pytest.mark.parametrize("path", ["/order", "/order/pay-later"])
@pytest.mark.parametrize(
    "body, headers",
    [
        ({"items": []}, {}),
        ({"items": []}, {"Idempotency-Key": ""}),
        ({"items": "x"}, {"Content-Type": "text/plain"}),
        (None, {"Idempotency-Key": "ok"}),
    ],
)
def test_a_bad_token_is_401_whatever_the_body(app_client, mug, path, body, headers):
    """The guard defers checking the token to the placement's hop; a body it refuses
    must still not answer a caller without a valid token with anything but 401."""
    payload = {"items": lines((mug, 1))} if body is None else body
    for auth in ({}, BAD_TOKEN):
        _, response = app_client.post(f"/api/v1{path}", json=payload, headers={**auth, **headers})
        assert response.status_code == 401, response.text
    assert stock_of(mug) == 10 and Order.select().count() == 0


def test_a_deleted_users_token_places_nothing(app_client, buyer, mug):
    from shopctl.models import User

    User.update(is_deleted=True).where(User.id == buyer.id).execute()
    for path in ("/order", "/order/pay-later"):
        assert post(app_client, path, buyer, {"items": lines((mug, 1))}).status_code == 401
        assert post(app_client, path, buyer, {"items": []}).status_code == 401
    assert stock_of(mug) == 10 and Order.select().count() == 0


def test_a_valid_token_hears_about_its_body(app_client, buyer, hops):
    response = post(app_client, "/order/pay-later", buyer, {"items": []})
    assert response.status_code == 400 and response.json["message"] == "Validation Error"
    assert len(hops) == 1  # authenticated first, then refused


# --- Idempotency-Key ---------------------------------------------------------------------


def test_a_replayed_key_returns_the_original_order_without_reserving_again(app_client, buyer, mug):
    key = {"Idempotency-Key": "checkout-42"}
    first = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 2))}, key)
    again = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 1), (mug, 1))}, key)
    assert first.status_code == again.status_code == 201
    assert again.json["data"]["orderId"] == first.json["data"]["orderId"]
    assert again.json["data"]["paymentId"] == first.json["data"]["paymentId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert stock_of(mug) == 8 and Order.select().count() == 1


def test_a_key_reused_with_another_body_is_422(app_client, buyer, mug):
    key = {"Idempotency-Key": "checkout-42"}
    post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 2))}, key)
    other = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 3))}, key)
    now = post(app_client, "/order", buyer, {"items": lines((mug, 2))}, key)
    assert other.status_code == now.status_code == 422
    assert stock_of(mug) == 8 and Order.select().count() == 1


def test_a_replay_after_the_stock_ran_out_is_still_the_original_order(
    app_client, buyer, mug, settings
):
    key = {"Idempotency-Key": "checkout-7"}
    first = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 4))}, key)
    place(settings, make_user("other@example.com"), (mug, 6))  # sold out
    again = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 4))}, key)
    assert first.status_code == again.status_code == 201
    assert again.json["data"]["orderId"] == first.json["data"]["orderId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert stock_of(mug) == 0 and Order.select().count() == 2


def test_a_replayed_pay_now_order_plans_its_payment_again(app_client, buyer, mug):
    key = {"Idempotency-Key": "pay-now-1"}
    first = post(app_client, "/order", buyer, {"items": lines((mug, 1))}, key)
    again = post(app_client, "/order", buyer, {"items": lines((mug, 1))}, key)
    assert first.status_code == again.status_code == 201
    assert again.json["data"]["orderId"] == first.json["data"]["orderId"]
    assert again.json["data"]["paymentId"] == first.json["data"]["paymentId"]
    assert again.headers["idempotent-replayed"] == "true" and stock_of(mug) == 9
    Order.update(status="PAID").where(Order.id == first.json["data"]["orderId"]).execute()
    assert post(app_client, "/order", buyer, {"items": lines((mug, 1))}, key).status_code == 409


def test_keys_belong_to_one_user(app_client, buyer, mug, settings):
    other = make_user("other@example.com")
    other.headers = bearer(settings, other)
    key = {"Idempotency-Key": "same-key"}
    first = post(app_client, "/order/pay-later", buyer, {"items": lines((mug, 1))}, key)
    second = post(app_client, "/order/pay-later", other, {"items": lines((mug, 1))}, key)
    assert first.json["data"]["orderId"] != second.json["data"]["orderId"]
    assert stock_of(mug) == 8


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ünïcode"])
def test_malformed_keys_are_400(app_client, buyer, mug, key):
    response = post(
        app_client,
        "/order",
        buyer,
        {"items": lines((mug, 1))},
        {"Idempotency-Key": key.encode("utf-8")},
    )
    assert response.status_code == 400
    assert response.json["error"][0]["path"] == "Idempotency-Key"
    assert stock_of(mug) == 10


# --- paying and canceling -----------------------------------------------------------------


def test_pay_an_unpaid_order_answers_for_its_payment(app_client, buyer, mug, settings):
    order = place(settings, buyer, (mug, 1))
    response = post(app_client, f"/order/{order.id}/pay", buyer)
    assert response.status_code == 200
    assert response.json["data"]["paymentId"] == order.payment.id
    assert "paymentUrl" in response.json["data"]


def test_pay_an_expired_order_is_410(app_client, buyer, mug, settings):
    overdue, expired = place(settings, buyer, (mug, 1)), place(settings, buyer, (mug, 1))
    make_overdue(overdue, expired)
    Order.update(status="EXPIRED").where(Order.id == expired.id).execute()
    assert post(app_client, f"/order/{overdue.id}/pay", buyer).status_code == 410
    assert post(app_client, f"/order/{expired.id}/pay", buyer).status_code == 410


@pytest.mark.parametrize("status", ["PAID", "PROCESSING", "CANCELED", "REFUNDED"])
def test_pay_an_order_past_unpaid_is_409(app_client, buyer, mug, settings, status):
    order = place(settings, buyer, (mug, 1))
    Order.update(status=status).where(Order.id == order.id).execute()
    assert post(app_client, f"/order/{order.id}/pay", buyer).status_code == 409


def test_cancel_returns_the_stock_once(app_client, buyer, mug, settings):
    order = place(settings, buyer, (mug, 4))
    response = post(app_client, f"/order/{order.id}/cancel", buyer)
    assert response.status_code == 200
    assert response.json["data"]["status"] == "CANCELED"
    assert response.json["data"]["payment"]["status"] == "CANCELED"
    assert post(app_client, f"/order/{order.id}/cancel", buyer).status_code == 409
    assert stock_of(mug) == 10
    history = OrderHistory.select().where(OrderHistory.order == order.id).order_by(OrderHistory.id)
    assert [(h.to_status, h.reason, h.actor) for h in history][-1] == (
        "CANCELED",
        "canceled by the buyer",
        "api",
    )
    assert_ledger_consistent()


@pytest.mark.parametrize("status", ["PAID", "PROCESSING", "EXPIRED", "REFUNDED"])
def test_cancel_an_order_past_unpaid_is_409_and_keeps_the_stock(
    app_client, buyer, mug, settings, status
):
    order = place(settings, buyer, (mug, 2))
    Order.update(status=status).where(Order.id == order.id).execute()
    response = post(app_client, f"/order/{order.id}/cancel", buyer)
    assert response.status_code == 409
    assert status in response.json["message"]
    assert stock_of(mug) == 8 and Order.get_by_id(order.id).status == status


# --- privacy and reading ------------------------------------------------------------------


def test_someone_elses_order_is_404_on_every_route(app_client, buyer, mug, settings):
    order = place(settings, buyer, (mug, 1))
    stranger = make_user("stranger@example.com")
    stranger.headers = bearer(settings, stranger)
    assert get(app_client, f"/order/{order.id}", stranger).status_code == 404
    assert post(app_client, f"/order/{order.id}/pay", stranger).status_code == 404
    assert post(app_client, f"/order/{order.id}/cancel", stranger).status_code == 404
    assert get(app_client, "/order", stranger).json["data"] == []
    assert Order.get_by_id(order.id).status == "UNPAID" and stock_of(mug) == 9


def test_an_admin_sees_and_cancels_any_order(app_client, buyer, mug, settings):
    order = place(settings, buyer, (mug, 1))
    admin = make_user("admin@example.com", role="ADMIN")
    admin.headers = bearer(settings, admin)
    assert get(app_client, f"/order/{order.id}", admin).json["data"]["id"] == order.id
    assert [o["id"] for o in get(app_client, "/order", admin).json["data"]] == [order.id]
    canceled = post(app_client, f"/order/{order.id}/cancel", admin)
    assert canceled.status_code == 200
    last = OrderHistory.select().order_by(OrderHistory.id.desc()).get()
    assert last.reason == "canceled by an admin"


@pytest.mark.parametrize("route", ["GET /order/{}", "POST /order/{}/pay", "POST /order/{}/cancel"])
def test_malformed_order_ids_are_400_and_unknown_ones_404(app_client, buyer, route):
    method, path = route.split()
    _, bad = app_client.request(method, "/api/v1" + path.format("nope"), headers=buyer.headers)
    assert bad.status_code == 400
    assert bad.json["error"] == [{"path": "orderId", "message": bad.json["error"][0]["message"]}]
    _, unknown = app_client.request(
        method, "/api/v1" + path.format(uuid.uuid4()), headers=buyer.headers
    )
    assert unknown.status_code == 404


def test_listing_pages_filters_and_counts(app_client, buyer, mug, settings):
    orders = [place(settings, buyer, (mug, 1)) for _ in range(5)]
    Order.update(status="PAID").where(Order.id == orders[0].id).execute()
    page = get(app_client, "/order?page=2&limit=2", buyer).json
    assert page["message"] == "Orders retrieved successfully"
    meta = dict(page["meta"])
    assert meta.pop("nextCursor")  # page 3 follows
    assert meta == {"page": 2, "limit": 2, "total": 5, "totalPage": 3}
    assert len(page["data"]) == 2 and all(o["items"] and o["payment"] for o in page["data"])
    paid = get(app_client, "/order?status=paid", buyer).json
    assert [o["id"] for o in paid["data"]] == [orders[0].id]
    assert get(app_client, "/order?limit=101", buyer).status_code == 400
    assert get(app_client, "/order?status=LOST", buyer).status_code == 400


def _queries_to_list(user, limit: int) -> int:
    from shopctl.db import database
    from shopctl.schemas import OrderListQuery
    from shopctl.services.orders.listing import list_orders

    executed = []
    original = database.obj.execute_sql

    def counting(sql, *args, **kwargs):
        executed.append(sql)
        return original(sql, *args, **kwargs)

    database.obj.execute_sql = counting
    try:
        rows, _ = list_orders(user, OrderListQuery(limit=limit))
    finally:
        del database.obj.execute_sql
    assert len(rows) == limit
    return len(executed)


def test_listing_uses_the_same_number_of_queries_for_any_page_size(buyer, mug, settings):
    for _ in range(6):
        place(settings, buyer, (mug, 1))
    assert _queries_to_list(buyer, 1) == _queries_to_list(buyer, 6) <= 5  # count + 4 (refunds)


def test_payment_rows_copy_amount_and_currency(settings, buyer, mug):
    order = place(settings, buyer, (mug, 2))
    payment = Payment.get(Payment.order == order.id)
    assert (payment.amount_cents, payment.currency, payment.status) == (2500, "usd", "PENDING")
