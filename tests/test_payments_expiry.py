"""Cron expiry, cancel and the session's own expiry with real Checkout Sessions at the
sandbox: the session is expired at Stripe, Stripe being unreachable does not stop the
job, the stock comes back exactly once whoever gets there first (webhook, cancel, cron),
and a session is made to live as long as the reservation, at least 31 minutes."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shopctl.db import is_postgres, write_transaction
from shopctl.models import Order, OrderHistory, Payment, StockMovement, StripeEvent
from shopctl.schemas import OrderCreate, validate
from shopctl.services.payments.checkout import place_order_to_pay
from shopctl.services.payments.sessions import expire_overdue
from tests.orders_support import assert_ledger_consistent, lines, make_overdue, make_user
from tests.payments_support import buyer, history, product, status_of, stock, wait_for
from tests.test_webhooks import deliver

UNREACHABLE = "http://127.0.0.1:9"


def _session(stack, session_id: str) -> dict:
    return stack.stripe().v1.checkout.sessions.retrieve(session_id).to_dict()


def _returned(order_id: str) -> list[int]:
    back = StockMovement.select().where(
        (StockMovement.order == order_id) & (StockMovement.delta > 0)
    )
    return [movement.delta for movement in back]


def test_cron_expires_the_real_session_at_stripe_and_returns_the_stock_once(
    stripe_stack, settings, cli
):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=5)
    placed = shopper.order_now(mug, 2)
    assert _session(stripe_stack, placed["sessionId"])["status"] == "open"
    make_overdue(Order.get_by_id(placed["orderId"]))
    result = cli("orders", "expire", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["expired"] == 1, result.output
    assert _session(stripe_stack, placed["sessionId"])["status"] == "expired"
    # The sandbox then sends checkout.session.expired: processed, and it changes nothing.
    wait_for(
        lambda: StripeEvent.get_or_none(
            (StripeEvent.type == "checkout.session.expired") & (StripeEvent.status == "PROCESSED")
        ),
        what="the session's expired webhook",
    )
    assert status_of(placed["orderId"]) == "EXPIRED" and stock(mug) == 5
    assert _returned(placed["orderId"]) == [2]
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "EXPIRED")]
    assert_ledger_consistent()


def _hold_order_lock(order_id: str, seconds: float) -> threading.Thread:
    """Lock the order's row for a moment from another connection, as a webhook handler
    that claims it does; returns once the lock is held."""
    held = threading.Event()

    def hold():
        with write_transaction():
            locked = Order.select(Order.id).where(Order.id == order_id)
            list((locked.for_update() if is_postgres() else locked).tuples())
            Order.update(updated_at=Order.updated_at).where(Order.id == order_id).execute()
            held.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    return holder


def test_cron_waits_for_an_order_a_webhook_holds_instead_of_skipping_it(stripe_stack, settings):
    """The session's own expiry webhook can hold the order's row while the job settles
    it; the job closed that session itself, so it must settle the order in this run."""
    shopper, mug = buyer(stripe_stack, settings), product(quantity=5)
    placed = shopper.order_now(mug, 2)
    make_overdue(Order.get_by_id(placed["orderId"]))
    shop = replace(settings, stripe_api_base=stripe_stack.sandbox_url)
    holder = _hold_order_lock(placed["orderId"], 1.0)
    summary = expire_overdue(shop)
    holder.join()
    assert (summary.expired, summary.failed, summary.skipped) == (1, 0, 0), summary
    assert status_of(placed["orderId"]) == "EXPIRED" and stock(mug) == 5
    assert _returned(placed["orderId"]) == [2]


def test_cron_expires_while_stripe_is_unreachable_and_a_late_payment_is_kept(
    stripe_stack, settings, cli, monkeypatch
):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=5)
    placed = shopper.order_now(mug, 2)
    make_overdue(Order.get_by_id(placed["orderId"]))
    monkeypatch.setenv("STRIPE_API_BASE", UNREACHABLE)
    result = cli("orders", "expire", "--json")
    assert result.exit_code == 3, result.output  # expired here, unconfirmed at Stripe
    summary = json.loads(result.stdout)
    assert (summary["expired"], summary["unconfirmed"]) == (1, 1)
    assert status_of(placed["orderId"]) == "EXPIRED" and stock(mug) == 5
    # Stripe never heard: the buyer can still pay, which is handled as a late payment.
    assert _session(stripe_stack, placed["sessionId"])["status"] == "open"
    stripe_stack.pay(placed["sessionId"])
    wait_for(lambda: status_of(placed["orderId"]) == "PAID", what="the late payment")
    assert stock(mug) == 3
    assert history(placed["orderId"])[-1] == ("EXPIRED", "PAID")
    assert_ledger_consistent()


def test_stock_comes_back_once_when_webhook_cancel_and_cron_race(stripe_stack, settings):
    """Each order's `checkout.session.expired` is delivered at the same moment as the
    owner's cancel and the expiry job: whoever wins, the stock comes back exactly once."""
    stripe_stack.configure(webhooks_enabled=False)  # we deliver, at the moment we choose
    shopper, mug = buyer(stripe_stack, settings), product(quantity=30)
    placed = [shopper.order_now(mug, 2) for _ in range(6)]
    for order in placed:
        stripe_stack.control("POST", f"/sessions/{order['sessionId']}/expire")
    expired_events = {
        event.data.object.id: event.to_dict()
        for event in stripe_stack.stripe()
        .v1.events.list({"type": "checkout.session.expired", "limit": 100})
        .data
    }
    make_overdue(*[Order.get_by_id(order["orderId"]) for order in placed])
    shop = replace(settings, stripe_api_base=stripe_stack.sandbox_url)
    server = stripe_stack.server

    def webhook(order):
        return lambda: deliver(server, expired_events[order["sessionId"]]).status_code

    def cancel(order):
        path = f"/order/{order['orderId']}/cancel"
        return lambda: shopper.post(path).status_code

    calls = [make(order) for order in placed for make in (webhook, cancel)]
    calls.append(lambda: expire_overdue(shop))
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        *answers, summary = list(pool.map(run, calls))
    assert set(answers[0::2]) == {200}  # every webhook acknowledged
    assert set(answers[1::2]) <= {200, 409}
    assert summary.failed == 0
    for order in placed:
        assert status_of(order["orderId"]) in ("CANCELED", "EXPIRED")
        assert _returned(order["orderId"]) == [2], order
        assert OrderHistory.select().where(OrderHistory.order == order["orderId"]).count() == 2
    assert stock(mug) == 30
    assert_ledger_consistent()


def test_the_session_lives_at_least_31_minutes_at_stripe(stripe_stack, settings):
    placed = buyer(stripe_stack, settings).order_now(product())
    session = _session(stripe_stack, placed["sessionId"])
    lifetime = session["expires_at"] - session["created"]
    # The reservation ends in 30 minutes; Stripe wants 30 at least: 31, for clock skew.
    assert 31 * 60 <= lifetime <= 31 * 60 + 5, lifetime
    stored = Payment.get_by_id(placed["paymentId"]).session_expires_at
    assert int(stored.replace(tzinfo=UTC).timestamp()) == session["expires_at"]


@pytest.mark.parametrize("minutes, expected", [(120, "reservation"), (60 * 30, "24h cap")])
def test_the_session_expires_with_a_longer_reservation(settings, minutes, expected):
    mug = product()
    longer = replace(settings, order_reservation_minutes=minutes)
    items = validate(OrderCreate, {"items": lines((mug, 1))}).items
    order, _, plan = place_order_to_pay(longer, make_user(), items)
    planned = datetime.fromtimestamp(plan.params["expires_at"], UTC).replace(tzinfo=None)
    if expected == "reservation":
        assert abs((planned - order.expires_at).total_seconds()) < 1
    else:  # Stripe's limit is 24 hours: a few minutes under it
        created = order.created_at
        assert 23 * 3600 <= (planned - created).total_seconds() < 24 * 3600
