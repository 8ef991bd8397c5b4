"""Crash consistency: `kill -9` of `shopctl serve` (both workers) in the middle of a load of
order creation and webhooks, then a restart.

Clients retry what was cut off with the same Idempotency-Key, Stripe redelivers every event:
afterwards `shopctl doctor` is green, every order has its items and exactly one payment, no
order was made twice or lost, and every paid order is PAID exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from peewee import JOIN, fn

from shopctl.models import Order, OrderHistory, OrderItem, Payment, StripeEvent
from shopctl.sandbox.shapes import new_id
from tests.conftest import TEST_ENV
from tests.orders_support import assert_ledger_consistent, bearer, make_product, make_user, place
from tests.resilience_support import (
    Checkout,
    assert_stock_adds_up,
    intent_object,
    session_object,
    stripe_event,
)
from tests.test_webhooks import sign

PAID_BEFORE_CRASH = 30  # pay-later orders whose payment events arrive during the load
BUYERS = 6


def _paid_events(settings, user, mug) -> tuple[list[str], list[dict]]:
    """Orders placed before the crash, and the two events Stripe sends for each payment."""
    order_ids, events = [], []
    for _ in range(PAID_BEFORE_CRASH):
        order = place(settings, user, (mug, 1))
        checkout = Checkout(
            order.id,
            order.payment.id,
            order.amount_cents,
            session_id=new_id("cs_test_"),
            intent_id=new_id("pi_"),
        )
        order_ids.append(order.id)
        events += [
            stripe_event("payment_intent.succeeded", intent_object(checkout, "succeeded")),
            stripe_event(
                "checkout.session.completed", session_object(checkout, "complete", "paid")
            ),
        ]
    return order_ids, events


def _deliver(http: httpx.Client, event: dict) -> int:
    body = json.dumps(event)
    headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
    return http.post("/api/v1/payment/webhook", content=body, headers=headers).status_code


class Load:
    """Buyers placing orders (each with its own Idempotency-Key) and Stripe delivering."""

    def __init__(self, url: str, headers: dict, product_id: str, events: list[dict]):
        self.url, self.headers, self.product_id = url, headers, product_id
        self.events = events
        self.keys: list[str] = []  # every key a buyer tried, answered or not
        self.answered: set[str] = set()
        self.stop = threading.Event()

    def buyer(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set():
                key = uuid.uuid4().hex
                self.keys.append(key)
                try:
                    response = http.post(
                        "/api/v1/order/pay-later",
                        headers={**self.headers, "Idempotency-Key": key},
                        json={"items": [{"productId": self.product_id, "quantity": 1}]},
                    )
                except httpx.HTTPError:
                    return  # the server is gone: this key's outcome is unknown
                if response.status_code == 201:
                    self.answered.add(key)

    def stripe(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for event in self.events:
                try:
                    _deliver(http, event)
                except httpx.HTTPError:
                    return

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.buyer) for _ in range(BUYERS)]
        threads.append(threading.Thread(target=self.stripe))
        for thread in threads:
            thread.start()
        return threads


def _wait_until_busy(load: Load, minimum_orders: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(load.answered) >= minimum_orders and StripeEvent.select().count() >= 10:
            return
        time.sleep(0.02)
    raise AssertionError(f"load did not get going: {len(load.answered)} orders answered")


def _doctor(backend_url: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": backend_url}
    return subprocess.run(
        [sys.executable, "-m", "shopctl", "doctor"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_every_order_is_whole() -> None:
    items = fn.COUNT(OrderItem.id.distinct())
    payments = fn.COUNT(Payment.id.distinct())
    query = (
        Order.select(Order.id, items.alias("items"), payments.alias("payments"))
        .join(OrderItem, on=(OrderItem.order == Order.id), join_type=JOIN.LEFT_OUTER)
        .switch(Order)
        .join(Payment, on=(Payment.order == Order.id), join_type=JOIN.LEFT_OUTER)
        .group_by(Order.id)
    )
    broken = [(o.id, o.items, o.payments) for o in query if o.items < 1 or o.payments != 1]
    assert broken == []
    created = OrderHistory.select().where(OrderHistory.to_status == "UNPAID")
    assert created.count() == Order.select().count()


@pytest.mark.slow
def test_kill_9_under_load_loses_nothing_and_redelivery_completes(
    start_server, settings, backend_url, tmp_path
):
    user, mug = make_user(), make_product("Mug", quantity=5000)
    stocked = {mug.id: 5000}
    paid_ids, events = _paid_events(settings, user, mug)
    headers = bearer(settings, user)

    with start_server(workers=2) as live:
        load = Load(live.url, headers, mug.id, events)
        threads = load.run()
        _wait_until_busy(load, minimum_orders=20)
        os.killpg(live.process.pid, signal.SIGKILL)  # both workers and the manager, at once
        live.process.wait(timeout=10)
        load.stop.set()
        for thread in threads:
            thread.join(30)

    # Requests really were cut off (a buyer between two requests at the kill is not).
    assert set(load.keys) - load.answered
    # Straight after the crash: nothing half-written, the stock and its ledger agree.
    doctor = _doctor(backend_url, tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    _assert_every_order_is_whole()
    assert_stock_adds_up(stocked)

    with start_server(workers=2) as live:
        for key in load.keys:  # buyers retry whatever went unanswered, with the same key
            response = live.request(
                "POST",
                "/order/pay-later",
                headers={**headers, "Idempotency-Key": key},
                json={"items": [{"productId": mug.id, "quantity": 1}]},
            )
            assert response.status_code == 201, response.text
        for event in events:  # Stripe retries every delivery it was not sure about
            assert _deliver(live.http, event) == 200

    assert Order.select().count() == PAID_BEFORE_CRASH + len(set(load.keys))
    assert Order.select().where(Order.status == "PAID").count() == PAID_BEFORE_CRASH
    assert {o.id for o in Order.select().where(Order.status == "PAID")} == set(paid_ids)
    assert StripeEvent.select().where(StripeEvent.status != "PROCESSED").count() == 0
    paid_twice = (
        OrderHistory.select(OrderHistory.order)
        .where(OrderHistory.to_status == "PAID")
        .group_by(OrderHistory.order)
        .having(fn.COUNT(OrderHistory.id) > 1)
    )
    assert list(paid_twice) == []
    _assert_every_order_is_whole()
    assert_stock_adds_up(stocked)
    assert_ledger_consistent()
    doctor = _doctor(backend_url, tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
