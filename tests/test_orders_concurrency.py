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

from shopctl.db import is_postgres
from shopctl.models import (
    Order,
    OrderHistory,
    OrderItem,
    Payment,
    Product,
    StockMovement,
    new_id,
    utcnow,
)
from shopctl.services.orders.expiry import expire_overdue
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


def _sessions() -> set[int]:
    """The other sessions on this test's PostgreSQL database."""
    from shopctl.db import database

    query = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return {row[0] for row in database.execute_sql(query).fetchall()}


def _deadlocks(wait_for_sessions_but: set[int] | None = None) -> int:
    """PostgreSQL's count of deadlocks in this test's database. A session reports its
    counts when it ends: with `wait_for_sessions_but`, the count once every other session
    has ended."""
    from shopctl.db import database

    for _ in range(100):
        if wait_for_sessions_but is None or _sessions() <= wait_for_sessions_but:
            break
        time.sleep(0.1)
    database.execute_sql("SELECT pg_stat_clear_snapshot()")
    query = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    return database.execute_sql(query).fetchone()[0]


def test_buyers_of_overlapping_products_in_opposite_orders_never_deadlock(start_server, settings):
    """Many buyers at once, each ordering two to four of four products, listed in ascending
    or descending order: no deadlock (PostgreSQL would abort one of two buyers that lock
    each other's rows), every answer 201 or 409, and sold units exactly the stock taken."""
    import random

    products = [make_product(f"Part {n}", quantity=150) for n in range(4)]
    buyers = [make_user(f"buyer{n}@example.com") for n in range(16)]
    postgres = is_postgres()
    if postgres:
        sessions, deadlocks = _sessions(), _deadlocks()
    rng = random.Random(9)
    bodies = []
    for n in range(16 * 25):
        picked = sorted(rng.sample(products, rng.randint(2, 4)), key=lambda p: p.name)
        if n % 2:
            picked.reverse()
        bodies.append({"items": lines(*[(product, rng.randint(1, 2)) for product in picked])})
    sold: dict[str, int] = {product.id: 0 for product in products}
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=20)
    with (
        start_server(workers=2) as srv,
        httpx.Client(base_url=srv.url, timeout=60, limits=limits) as http,
    ):

        def buyer(n: int) -> None:
            headers = bearer(settings, buyers[n])
            for body in bodies[n::16]:
                response = _post(http, "/api/v1/order/pay-later", json=body, headers=headers)
                statuses.append(response.status_code)
                if response.status_code == 201:
                    for line in body["items"]:
                        sold[line["productId"]] += line["quantity"]

        _all_at_once([lambda n=n: buyer(n) for n in range(16)])
    assert set(statuses) <= {201, 409}, sorted(set(statuses))
    assert statuses.count(201) > 20 and statuses.count(409) > 20  # both sides of the limit
    assert {p.id: 150 - stock_of(p) for p in products} == sold
    assert Order.select().count() == statuses.count(201)
    assert_ledger_consistent()
    if postgres:
        assert _deadlocks(wait_for_sessions_but=sessions) == deadlocks


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


def _waiting_on_locks(blocker: int | None = None) -> int:
    """Backends of this test's database waiting for a lock (held by `blocker`, if given)."""
    from shopctl.db import database

    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock'"
    )
    params: tuple = ()
    database.execute_sql("SELECT pg_stat_clear_snapshot()")  # a transaction caches the view
    if blocker is not None:
        query += " AND %s = ANY(pg_blocking_pids(pid))"
        params = (blocker,)
    return database.execute_sql(query, params).fetchone()[0]


def _wait_for(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_two_expiry_runs_at_once_expire_each_order_once(backend_url, tmp_path, db):
    """On PostgreSQL both runs wait at a table lock until each is ready, then split the
    overdue orders between them (SKIP LOCKED): both must do some of the work. SQLite's
    write lock serialises them: one may do it all, each order still once."""
    from shopctl.db import database

    overdue = 600  # in batches of 10, so the two runs overlap for many batches
    mug = make_product("Mug", quantity=2 * overdue)
    _bulk_overdue_orders(make_user(), mug, overdue)
    env = {**os.environ, "DATABASE_URL": backend_url}
    command = [sys.executable, "-m", "shopctl", "orders", "expire", "--json", "--batch", "10"]

    def start():
        return subprocess.Popen(
            command,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    if is_postgres():
        with database.atomic():
            database.execute_sql('LOCK TABLE "order" IN EXCLUSIVE MODE')
            runs = [start() for _ in range(2)]
            _wait_for(lambda: _waiting_on_locks() >= 2, "both runs to wait at the gate")
    else:
        runs = [start() for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    summaries = [json.loads(out) for out, _ in outputs]
    assert sum(s["expired"] for s in summaries) == overdue
    assert sum(s["restoredUnits"] for s in summaries) == overdue
    if is_postgres():
        assert all(s["expired"] > 0 for s in summaries), summaries
    assert Order.select().where(Order.status == "EXPIRED").count() == overdue
    assert OrderHistory.select().where(OrderHistory.to_status == "EXPIRED").count() == overdue
    assert stock_of(mug) == 2 * overdue
    assert_ledger_consistent()


def _waiting_to_begin(thread: threading.Thread) -> bool:
    """SQLite: the thread is inside peewee's BEGIN (IMMEDIATE), waiting for the write lock."""
    frame = sys._current_frames().get(thread.ident)
    return (
        frame is not None
        and frame.f_code.co_name == "begin"
        and frame.f_code.co_filename.endswith("peewee.py")
    )


def test_stock_given_back_while_a_buyer_waits_for_the_lock_is_sold(settings, backend_url):
    """Regression: PostgreSQL's UPDATE reads products as of its start, so a product whose
    stock a cancel was giving back while the buyer waited for its lock looked sold out and
    the buyer got a 409 for stock that was there by the time the lock was granted.
    The cancel commits only once the buyer is seen waiting: on PostgreSQL a backend that
    pg_blocking_pids() says the cancel blocks, on SQLite a thread waiting in BEGIN."""
    from shopctl import db

    mug = make_product("Mug", quantity=10)
    buyer = make_user()
    place(settings, buyer, (mug, 10))  # sold out
    lock_held, placed, holder = threading.Event(), [], []

    def buy():
        lock_held.wait()
        with db.connection():
            placed.append(place(settings, buyer, (mug, 2)))

    buyer_thread = threading.Thread(target=buy)

    def buyer_waits() -> bool:
        if is_postgres():
            return _waiting_on_locks(blocker=holder[0]) >= 1
        return _waiting_to_begin(buyer_thread)

    def cancel_slowly():
        with db.connection(), db.write_transaction():
            Product.update(quantity=Product.quantity + 3).where(Product.id == mug.id).execute()
            if is_postgres():
                holder.append(db.database.execute_sql("SELECT pg_backend_pid()").fetchone()[0])
            lock_held.set()
            _wait_for(buyer_waits, "the buyer to wait for the lock")

    threads = [threading.Thread(target=cancel_slowly), buyer_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(placed) == 1 and stock_of(mug) == 1
