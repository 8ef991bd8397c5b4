"""The webhook endpoint: signatures, the event log, duplicates, concurrency, reordering."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import pytest

from shopctl.models import StripeEvent
from tests.conftest import WEBHOOK_SECRET
from tests.orders_support import assert_ledger_consistent
from tests.payments_support import buyer, history, product, status_of, stock, wait_status


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
    return {"id": event_id, "object": "event", "type": event_type, "created": int(time.time()),
            "api_version": "2026-10-28.endive", "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": {"id": "cus_1", "object": "customer", "metadata": {}}}}


@pytest.mark.parametrize("mutation", ["missing", "wrong-secret", "stale", "reserialised",
                                      "garbage"])
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


def test_seed_path_and_rotated_secrets_both_work(start_server):
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
    expired = {**events["checkout.session.completed"], "id": "evt_expired_late",
               "type": "checkout.session.expired"}
    expired["data"] = {"object": {**expired["data"]["object"], "status": "expired"}}
    assert deliver(stripe_stack.server, expired).status_code == 200
    assert status_of(placed["orderId"]) == "PAID"
    assert stock(mug) == 4
    assert_ledger_consistent()


def test_an_event_for_an_unknown_payment_is_kept_and_flagged(server):
    event = _event("evt_orphan", "checkout.session.completed")
    event["data"]["object"] = {"id": "cs_test_nobody", "object": "checkout.session",
                               "payment_status": "paid", "metadata": {}}
    assert deliver(server, event).status_code == 200
    row = StripeEvent.get_by_id("evt_orphan")
    assert row.status == "IGNORED" and row.last_error.startswith("unmatched")


def test_processing_failure_answers_5xx_stores_failed_and_replay_fixes_it(stripe_stack,
                                                                          settings, cli):
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
        events["payment_intent.succeeded"]["data"]["object"]["id"], {"expand": ["latest_charge"]})
    assert intent.latest_charge.amount_refunded == 1250


def _expire_in_db(order_id: str) -> None:
    from shopctl.db import write_transaction
    from shopctl.services.lifecycle import lock_order, release_stock, transition

    with write_transaction():
        order = lock_order(order_id)
        transition(order, "EXPIRED", reason="test: reservation ran out", actor="test",
                   payment_status="EXPIRED")
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
    refunds = stripe_stack.stripe().v1.payment_intents.retrieve(
        intent_id, {"expand": ["latest_charge"]}).latest_charge
    assert refunds.amount_refunded == 1250
    assert stock(mug) == 0
    assert_ledger_consistent()
