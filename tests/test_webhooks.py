"""The webhook endpoint: signatures, the event log, duplicates, concurrency, reordering."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shopctl.models import Order, Payment, StockMovement, StripeEvent
from shopctl.sandbox.shapes import new_id
from tests.conftest import WEBHOOK_SECRET
from tests.orders_support import assert_ledger_consistent, make_product, make_user, place
from tests.payments_support import buyer, history, product, status_of, stock, wait_status
from tests.resilience_support import Checkout, intent_object, session_object, stripe_event


def sign(body: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def deliver(server, event: dict | str, *, path: str = "/api/v1/payment/webhook", **sign_args):
    body = event if isinstance(event, str) else json.dumps(event)
    headers = {"Stripe-Signature": sign(body, **sign_args), "Content-Type": "application/json"}
    return server.http.post(path, content=body.encode(), headers=headers)


def paid_events(stack, settings, quantity: int = 1, stock_level: int = 5):
    """An order paid at the sandbox with webhooks off: its events, oldest first."""
    stack.configure(webhooks_enabled=False)
    shopper, mug = buyer(stack, settings), product(quantity=stock_level)
    placed = shopper.order_now(mug, quantity)
    stack.pay(placed["sessionId"])
    events = stack.stripe().v1.events.list({"limit": 100})
    ordered = sorted((event.to_dict() for event in events.data), key=lambda e: e["created"])
    return placed, mug, {event["type"]: event for event in ordered}


# --- signatures --------------------------------------------------------------------------


def _event(event_id: str = "evt_test_unknown", event_type: str = "customer.created") -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "api_version": "2026-10-28.endive",
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": "cus_1", "object": "customer", "metadata": {}}},
    }


@pytest.mark.parametrize(
    "mutation", ["missing", "wrong-secret", "stale", "reserialised", "garbage"]
)
def test_bad_signatures_are_refused_and_nothing_is_stored(server, mutation):
    body = json.dumps(_event(), indent=2)
    headers = {"Stripe-Signature": sign(body)}
    if mutation == "missing":
        headers = {}
    elif mutation == "wrong-secret":
        headers = {"Stripe-Signature": sign(body, "whsec_someone_else")}
    elif mutation == "stale":
        headers = {"Stripe-Signature": sign(body, timestamp=int(time.time()) - 301)}
    elif mutation == "reserialised":
        body = json.dumps(json.loads(body))
    else:
        headers = {"Stripe-Signature": "t=abc,v1=zzz"}
    response = server.http.post("/api/v1/payment/webhook", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert StripeEvent.select().count() == 0


def test_signed_event_for_another_system_is_stored_as_ignored(server):
    response = deliver(server, _event())
    assert response.status_code == 200
    assert response.json()["message"] == "Webhook processed"
    assert response.json()["data"]["received"] is True
    row = StripeEvent.get_by_id("evt_test_unknown")
    assert row.status == "IGNORED" and "unhandled" in row.last_error


def test_dashboard_path_and_rotated_secrets_both_work(start_server):
    rotating = {"STRIPE_WEBHOOK_SECRET": f"whsec_new_one,{WEBHOOK_SECRET}"}
    with start_server(env=rotating) as live:
        assert deliver(live, _event("evt_a"), path="/webhook").status_code == 200
        assert deliver(live, _event("evt_b"), secret="whsec_new_one").status_code == 200
    assert StripeEvent.select().count() == 2


def test_a_signed_body_that_is_not_an_event_is_refused(server):
    response = deliver(server, '{"object": "charge"}')
    assert response.status_code == 400
    assert StripeEvent.select().count() == 0


# --- duplicates, concurrency, reordering ---------------------------------------------


def test_the_same_event_delivered_concurrently_applies_once(stripe_stack, settings):
    placed, mug, events = paid_events(stripe_stack, settings, quantity=2)
    body = json.dumps(events["checkout.session.completed"])
    results = []

    def hit():
        results.append(deliver(stripe_stack.server, body).status_code)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8
    assert status_of(placed["orderId"]) == "PAID"
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "PAID")]
    assert stock(mug) == 3


@pytest.mark.parametrize("first", ["payment_intent.succeeded", "checkout.session.completed"])
def test_both_paid_events_in_either_order_make_one_transition(stripe_stack, settings, first):
    placed, _, events = paid_events(stripe_stack, settings)
    second = ({"payment_intent.succeeded", "checkout.session.completed"} - {first}).pop()
    assert deliver(stripe_stack.server, events[first]).status_code == 200
    assert deliver(stripe_stack.server, events[second]).status_code == 200
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "PAID")]
    assert StripeEvent.select().where(StripeEvent.status == "PROCESSED").count() == 2


def test_expired_after_completed_stays_paid(stripe_stack, settings):
    placed, mug, events = paid_events(stripe_stack, settings)
    deliver(stripe_stack.server, events["checkout.session.completed"])
    expired = {
        **events["checkout.session.completed"],
        "id": "evt_expired_late",
        "type": "checkout.session.expired",
    }
    expired["data"] = {"object": {**expired["data"]["object"], "status": "expired"}}
    assert deliver(stripe_stack.server, expired).status_code == 200
    assert status_of(placed["orderId"]) == "PAID"
    assert stock(mug) == 4
    assert_ledger_consistent()


def test_an_event_for_an_unknown_payment_is_kept_and_flagged(server):
    event = _event("evt_orphan", "checkout.session.completed")
    event["data"]["object"] = {
        "id": "cs_test_nobody",
        "object": "checkout.session",
        "payment_status": "paid",
        "metadata": {},
    }
    assert deliver(server, event).status_code == 200
    row = StripeEvent.get_by_id("evt_orphan")
    assert row.status == "IGNORED" and row.last_error.startswith("unmatched")


def test_processing_failure_answers_5xx_stores_failed_and_replay_fixes_it(
    stripe_stack, settings, cli
):
    """A late payment whose refund cannot reach Stripe: FAILED, then `replay --failed`."""
    placed, mug, events = paid_events(stripe_stack, settings, stock_level=1)
    _expire_in_db(placed["orderId"])
    _sell_out(settings, mug)
    stripe_stack.configure(fail_rate=1.0)
    response = deliver(stripe_stack.server, events["checkout.session.completed"])
    assert response.status_code == 500
    assert "Traceback" not in response.text
    row = StripeEvent.get_by_id(events["checkout.session.completed"]["id"])
    assert row.status == "FAILED" and row.last_error
    stripe_stack.configure(fail_rate=0.0)
    result = cli("events", "replay", "--failed", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["result"] == "processed"
    assert status_of(placed["orderId"]) == "REFUNDED"
    intent = stripe_stack.stripe().v1.payment_intents.retrieve(
        events["payment_intent.succeeded"]["data"]["object"]["id"], {"expand": ["latest_charge"]}
    )
    assert intent.latest_charge.amount_refunded == 1250


def _expire_in_db(order_id: str) -> None:
    from shopctl.db import write_transaction
    from shopctl.services.orders.lifecycle import lock_order, release_stock, transition

    with write_transaction():
        order = lock_order(order_id)
        transition(
            order,
            "EXPIRED",
            reason="test: reservation ran out",
            actor="test",
            payment_status="EXPIRED",
        )
        release_stock(order, "expired")


def _sell_out(settings, mug) -> None:
    from tests.orders_support import make_user, place

    place(settings, make_user("early@example.com"), (mug, stock(mug)))


def test_late_payment_with_stock_left_is_paid_again(stripe_stack, settings):
    placed, mug, events = paid_events(stripe_stack, settings, stock_level=3)
    _expire_in_db(placed["orderId"])
    assert stock(mug) == 3
    deliver(stripe_stack.server, events["payment_intent.succeeded"])
    deliver(stripe_stack.server, events["checkout.session.completed"])
    assert status_of(placed["orderId"]) == "PAID"
    assert stock(mug) == 2
    assert history(placed["orderId"])[-1] == ("EXPIRED", "PAID")
    assert_ledger_consistent()


def test_late_payment_without_stock_is_refunded_once(stripe_stack, settings):
    placed, mug, events = paid_events(stripe_stack, settings, stock_level=1)
    _expire_in_db(placed["orderId"])
    _sell_out(settings, mug)
    for event_type in ("checkout.session.completed", "payment_intent.succeeded"):
        assert deliver(stripe_stack.server, events[event_type]).status_code == 200
    wait_status(placed["orderId"], "REFUNDED")
    intent_id = events["payment_intent.succeeded"]["data"]["object"]["id"]
    refunds = (
        stripe_stack.stripe()
        .v1.payment_intents.retrieve(intent_id, {"expand": ["latest_charge"]})
        .latest_charge
    )
    assert refunds.amount_refunded == 1250
    assert stock(mug) == 0
    assert_ledger_consistent()


# --- one transaction: store, apply, mark -------------------------------------------------


def _checkout(order: Order) -> Checkout:
    return Checkout(
        order.id,
        order.payment.id,
        order.amount_cents,
        session_id=new_id("cs_test_"),
        intent_id=new_id("pi_"),
    )


def _completed(checkout: Checkout) -> dict:
    return stripe_event("checkout.session.completed", session_object(checkout, "complete", "paid"))


def _state(order: Order, mug) -> tuple:
    """Everything a paid webhook could change for `order`."""
    row = Order.get_by_id(order.id)
    payment = Payment.get(Payment.order == order.id)
    return (
        row.status,
        row.stock_released,
        history(order.id),
        payment.status,
        payment.session_id,
        payment.payment_intent_id,
        payment.paid_at,
        payment.late_outcome,
        stock(mug),
        StockMovement.select().count(),
    )


def test_a_handler_failure_undoes_everything_and_leaves_the_event_failed(server, settings, cli):
    """Storing and applying share one transaction. A failure half-way through (here the
    PaymentIntent id already belongs to another payment: a unique violation when the
    payment row is written, after the late payment re-reserved stock and moved the order)
    must undo all of it and still leave the event stored as FAILED with its error, so
    Stripe's retry or `events replay` can finish it."""
    shopper, mug = make_user(), make_product("Mug", quantity=3)
    late, other = place(settings, shopper, (mug, 2)), place(settings, shopper, (mug, 1))
    _expire_in_db(late.id)
    checkout = _checkout(late)
    taken = Payment.update(payment_intent_id=checkout.intent_id).where(
        Payment.id == other.payment.id
    )
    taken.execute()
    event = _completed(checkout)
    before = _state(late, mug)
    assert before[:2] == ("EXPIRED", True) and stock(mug) == 2

    for attempt in (1, 2):  # Stripe retries the 5xx; it fails the same way, nothing half-done
        response = deliver(server, event)
        assert response.status_code == 500
        assert "IntegrityError" not in response.text
        row = StripeEvent.get_by_id(event["id"])
        assert (row.status, row.attempts, row.type) == ("FAILED", attempt, event["type"])
        assert row.last_error.startswith("IntegrityError") and row.processed_at is None
        assert json.loads(row.payload) == event
        assert _state(late, mug) == before
        assert status_of(other.id) == "UNPAID"
    assert_ledger_consistent()

    Payment.update(payment_intent_id=None).where(Payment.id == other.payment.id).execute()
    result = cli("events", "replay", "--failed", "--json")
    assert json.loads(result.output)[0]["result"] == "processed"
    assert history(late.id)[-1] == ("EXPIRED", "PAID")
    assert stock(mug) == 0
    assert Payment.get(Payment.order == late.id).payment_intent_id == checkout.intent_id
    assert_ledger_consistent()


def test_duplicates_racing_the_first_delivery_on_two_workers_apply_once(start_server, settings):
    """Each event sent four times at once, with its payment's other "paid" event, across two
    workers: a twin's insert waits for the first transaction and finds the event, so each
    event is applied by exactly one request and each payment moves once."""
    shopper, mug = make_user(), make_product("Mug", quantity=20)
    orders = [place(settings, shopper, (mug, 1)) for _ in range(6)]
    events = []
    for order in orders:
        checkout = _checkout(order)
        events += [
            _completed(checkout),
            stripe_event("payment_intent.succeeded", intent_object(checkout, "succeeded")),
        ]
    unhandled = stripe_event(
        "payment_intent.created", intent_object(checkout, "requires_payment_method")
    )
    bodies = [json.dumps(event) for event in [*events, unhandled] for _ in range(4)]
    random.Random(9).shuffle(bodies)
    with start_server(workers=2) as live, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda body: deliver(live, body), bodies))

    assert [response.status_code for response in responses] == [200] * len(bodies)
    results = Counter((r.json()["data"]["eventId"], r.json()["data"]["result"]) for r in responses)
    for event in events:
        assert (results[event["id"], "processed"], results[event["id"], "duplicate"]) == (1, 3)
    assert (results[unhandled["id"], "ignored"], results[unhandled["id"], "duplicate"]) == (1, 3)
    stored = {row.id: row for row in StripeEvent.select()}
    assert {(row.status, row.attempts) for row in stored.values()} == {
        ("PROCESSED", 1),
        ("IGNORED", 1),
    }
    assert stored[unhandled["id"]].last_error == "unhandled type payment_intent.created"
    for order in orders:
        assert history(order.id) == [(None, "UNPAID"), ("UNPAID", "PAID")]
        payment = Payment.get(Payment.order == order.id)
        assert payment.status == "PAID" and payment.paid_at is not None
        assert payment.session_id and payment.payment_intent_id
    assert stock(mug) == 14
    assert_ledger_consistent()
