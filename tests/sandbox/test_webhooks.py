"""Signed webhook delivery: verified by stripe.Webhook, ordered per session, retried, switchable."""

from __future__ import annotations

import json

import httpx

from tests.sandbox.helpers import free_port, session_params, wait_until

# Events of one session (they all name its PaymentIntent), as the listener sees them.
PAY = [
    "payment_intent.created",
    "payment_intent.succeeded",
    "charge.succeeded",
    "checkout.session.completed",
]


def test_each_button_delivers_its_events_in_order(client, sandbox, listener):
    paid = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(paid.id, "declined")
    sandbox.pay(paid.id)
    delayed = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(delayed.id, "async_pending")
    sandbox.pay(delayed.id, "async_succeeded")
    failed = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(failed.id, "async_pending")
    sandbox.pay(failed.id, "async_failed")

    assert listener.wait_types(5, paid.payment_intent) == [
        "payment_intent.created",
        "payment_intent.payment_failed",
        *PAY[1:],
    ]
    assert listener.wait_types(6, delayed.payment_intent) == [
        "payment_intent.created",
        "payment_intent.processing",
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.succeeded",
        "checkout.session.async_payment_succeeded",
    ]
    assert listener.wait_types(5, failed.payment_intent) == [
        "payment_intent.created",
        "payment_intent.processing",
        "checkout.session.completed",
        "payment_intent.payment_failed",
        "checkout.session.async_payment_failed",
    ]
    assert listener.bad_signatures == []
    completed = listener.find("checkout.session.completed", paid.id)
    assert completed.data.object.payment_status == "paid"
    assert completed.data.object.metadata.paymentId == "pay-1"


def test_the_signature_covers_the_exact_body(client, sandbox, listener):
    session = client.v1.checkout.sessions.create(session_params())
    client.v1.checkout.sessions.expire(session.id)
    listener.wait_types(1, session.id)

    event = listener.find("checkout.session.expired", session.id)
    stored = client.v1.events.retrieve(event.id)
    assert stored.data.object.status == "expired"
    assert [d["status"] for d in sandbox.deliveries(event.id)] == [200]
    assert sandbox.deliveries(event.id)[0]["url"] == f"{listener.url}/hook"
    # The signature the sandbox sent verifies those bytes and no others: sent again to
    # the listener (stripe.Webhook verifies), the exact body passes, a tampered one not.
    body, header = listener.raw[event.id]
    tampered = [
        body.replace(b'"expired"', b'"complete"', 1),
        body + b" ",
        json.dumps(json.loads(body)).encode(),  # the same JSON, re-serialised
    ]
    for changed in tampered:
        assert changed != body
        answer = httpx.post(
            f"{listener.url}/hook", content=changed, headers={"Stripe-Signature": header}
        )
        assert answer.status_code == 400
    assert len(listener.bad_signatures) == len(tampered)
    again = httpx.post(f"{listener.url}/hook", content=body, headers={"Stripe-Signature": header})
    assert again.status_code == 200 and listener.types(session.id).count(event.type) == 2


def test_a_failing_endpoint_is_retried_and_order_is_kept(client, sandbox, listener):
    listener.fail["/hook"] = 2
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)

    assert listener.wait_types(4, session.payment_intent) == PAY
    created = client.v1.events.list({"type": "payment_intent.created"}).data[0]
    attempts = sandbox.deliveries(created.id)
    assert [(a["attempt"], a["status"], a["ok"]) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert listener.attempts.count("/hook") == 6
    wait_until(
        lambda: client.v1.events.retrieve(created.id).pending_webhooks == 0,
        3,
        "pending_webhooks to drop to 0",
    )


def test_unreachable_endpoints_do_not_hold_up_others(client, sandbox, listener):
    dead = f"http://127.0.0.1:{free_port()}/hook"
    sandbox.control("config", {"webhook_urls": [dead, f"{listener.url}/other"]})
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)

    assert listener.wait_types(1, session.id, path="/other") == ["checkout.session.completed"]
    first = client.v1.events.list({"type": "payment_intent.created"}).data[0]
    to_dead = wait_until(
        lambda: [d for d in sandbox.deliveries(first.id) if d["url"] == dead and d["attempt"] == 4],
        5,
        "all four attempts at the dead endpoint",
    )
    assert to_dead[0]["status"] is None and "Connect" in to_dead[0]["error"]
    assert client.v1.events.retrieve(first.id).pending_webhooks == 1


def test_delivery_switched_off_then_an_event_resent(client, sandbox, listener):
    sandbox.control("config", {"webhooks_enabled": False})
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)
    # Nothing is queued or in flight, and no attempt was made: a fact, not a pause.
    assert sandbox.control("health", method="GET")["pending_deliveries"] == 0
    events = client.v1.events.list({"limit": 100}).data
    assert len(events) == 4 and all(sandbox.deliveries(event.id) == [] for event in events)
    assert listener.types() == [] and listener.attempts == []
    completed = client.v1.events.list({"type": "checkout.session.completed"}).data[0]
    assert completed.pending_webhooks == 0

    sandbox.control(f"events/{completed.id}/resend")
    assert listener.wait_types(1) == ["checkout.session.completed"]
    assert listener.events[0][1].id == completed.id


def test_a_new_secret_signs_new_deliveries(client, sandbox, listener):
    sandbox.control("config", {"webhook_secret": "whsec_rotated"})
    session = client.v1.checkout.sessions.create(session_params())
    wait_until(lambda: listener.bad_signatures, 3, "a delivery signed with the new secret")

    assert listener.types() == []
    created = client.v1.events.list({"limit": 1}).data[0]
    # The listener refuses the delivery before the sandbox records the attempt: wait for
    # the record (it flaked on a busy machine, read a moment too early).
    statuses = wait_until(
        lambda: {d["status"] for d in sandbox.deliveries(created.id)}, 3, "the attempt recorded"
    )
    assert statuses == {400}
    assert session.status == "open"


def test_the_control_config_rejects_bad_values(sandbox):
    for bad in (
        {"fail_rate": 2},
        {"latency_ms": -1},
        {"webhook_urls": ["ftp://x"]},
        {"webhooks_enabled": "yes"},
        {"colour": "red"},
    ):
        response = sandbox.http.post(f"{sandbox.url}/_sandbox/config", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"]
    config = sandbox.control("config", method="GET")
    assert (config["fail_rate"], config["latency_ms"], config["webhook_secret_set"]) == (
        0.0,
        0,
        True,
    )
    not_json = sandbox.http.post(
        f"{sandbox.url}/_sandbox/config",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert (not_json.status_code, json.loads(not_json.text)["error"]["type"]) == (
        400,
        "invalid_request_error",
    )
