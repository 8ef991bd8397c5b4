"""Races that must never oversell or return stock twice: real servers, threads, processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from shopctl.models import Order, OrderHistory, OrderItem, Payment, StockMovement, new_id, utcnow
from shopctl.services.expiry import expire_overdue
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

pytestmark = pytest.mark.slow


def _all_at_once(calls: list) -> list:
    """Run every call in its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _post(http: httpx.Client, path: str, **kwargs) -> httpx.Response:
    """POST, retrying 503s: the server answers 503 when PostgreSQL refuses one more
    connection (the test server is shared and has a connection limit), and a real client
    retries. Every retried call here is idempotent, so a retry never doubles anything."""
    for _ in range(10):
        response = http.post(path, **kwargs)
        if response.status_code != 503:
            return response
        time.sleep(0.3)
    return response


def test_fifty_buyers_for_ten_mugs_get_exactly_ten_orders(start_server, settings):
    mug = make_product("Mug", quantity=10)
    buyers = [make_user(f"buyer{n}@example.com") for n in range(50)]
    body = {"items": lines((mug, 1))}
    limits = httpx.Limits(max_connections=60)
    with (
        start_server(workers=2) as srv,
        httpx.Client(base_url=srv.url, timeout=60, limits=limits) as http,
    ):
        calls = [
            lambda user=user: (
                _post(
                    http,
                    "/api/v1/order/pay-later",
                    json=body,
                    headers={**bearer(settings, user), "Idempotency-Key": f"buy-{user.id}"},
                ).status_code
            )
            for user in buyers
        ]
        statuses = _all_at_once(calls)
    assert sorted(statuses) == [201] * 10 + [409] * 40
    assert stock_of(mug) == 0
    assert Order.select().count() == 10
    assert_ledger_consistent()


def test_concurrent_requests_with_one_key_make_one_order(start_server, settings):
    mug = make_product("Mug", quantity=100)
    buyer = make_user()
    headers = {**bearer(settings, buyer), "Idempotency-Key": "double-click"}
    with start_server(workers=2) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        calls = [
            lambda: _post(
                http, "/api/v1/order/pay-later", json={"items": lines((mug, 2))}, headers=headers
            )
            for _ in range(12)
        ]
        responses = _all_at_once(calls)
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["data"]["orderId"] for r in responses}) == 1
    assert stock_of(mug) == 98 and Order.select().count() == 1


def test_cancel_racing_expiry_returns_the_stock_once(start_server, settings):
    mug = make_product("Mug", quantity=100)
    buyer = make_user()
    orders = [place(settings, buyer, (mug, 2)) for _ in range(20)]
    make_overdue(*orders)
    headers = bearer(settings, buyer)
    with start_server(workers=2) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        cancels = [
            lambda order=order: (
                _post(http, f"/api/v1/order/{order.id}/cancel", headers=headers).status_code
            )
            for order in orders
        ]
        results = _all_at_once([lambda: expire_overdue(settings, batch=3), *cancels])
    summary, statuses = results[0], results[1:]
    assert set(statuses) <= {200, 409}
    assert summary.expired + statuses.count(200) == 20 and summary.failed == 0
    final = {order.status for order in Order.select()}
    assert final <= {"CANCELED", "EXPIRED"}
    assert stock_of(mug) == 100
    for order in orders:
        returned = StockMovement.select().where(
            (StockMovement.order == order.id) & (StockMovement.delta > 0)
        )
        assert [m.delta for m in returned] == [2]
        assert OrderHistory.select().where(OrderHistory.order == order.id).count() == 2
    assert_ledger_consistent()


def _bulk_overdue_orders(user, product, count: int, quantity: int = 1) -> None:
    """`count` reserved, overdue orders written in bulk (the way place_order leaves them)."""
    past = utcnow() - timedelta(minutes=10)
    ids = [new_id() for _ in range(count)]
    Order.insert_many(
        [
            {
                "id": oid,
                "user": user.id,
                "status": "UNPAID",
                "amount_cents": 100 * quantity,
                "currency": "usd",
                "expires_at": past,
                "created_at": past,
                "updated_at": past,
            }
            for oid in ids
        ]
    ).execute()
    OrderItem.insert_many(
        [
            {
                "id": new_id(),
                "order": oid,
                "product": product.id,
                "product_name": product.name,
                "quantity": quantity,
                "price_cents": 100,
            }
            for oid in ids
        ]
    ).execute()
    Payment.insert_many(
        [
            {
                "order": oid,
                "amount_cents": 100 * quantity,
                "currency": "usd",
                "created_at": past,
                "updated_at": past,
            }
            for oid in ids
        ]
    ).execute()
    StockMovement.insert_many(
        [
            {
                "product": product.id,
                "delta": -quantity,
                "reason": "order",
                "order": oid,
                "created_at": past,
            }
            for oid in ids
        ]
    ).execute()
    product.quantity -= count * quantity
    product.save()


def test_two_expiry_runs_at_once_expire_each_order_once(backend_url, tmp_path, db):
    overdue = 600  # in batches of 10, so the two runs overlap for many batches
    mug = make_product("Mug", quantity=2 * overdue)
    _bulk_overdue_orders(make_user(), mug, overdue)
    env = {**os.environ, "DATABASE_URL": backend_url}
    command = [sys.executable, "-m", "shopctl", "orders", "expire", "--json", "--batch", "10"]
    runs = [
        subprocess.Popen(
            command,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    summaries = [json.loads(out) for out, _ in outputs]
    assert sum(s["expired"] for s in summaries) == overdue
    assert sum(s["restoredUnits"] for s in summaries) == overdue
    assert Order.select().where(Order.status == "EXPIRED").count() == overdue
    assert OrderHistory.select().where(OrderHistory.to_status == "EXPIRED").count() == overdue
    assert stock_of(mug) == 2 * overdue
    assert_ledger_consistent()
