"""Events: what each buyer outcome emits, in which order, and how the list filters and pages."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.sandbox.helpers import load_fixture, session_params

PAY = ["payment_intent.succeeded", "charge.succeeded", "checkout.session.completed"]


def _types_after_creation(client, session) -> list[str]:
    events = client.v1.events.list({"limit": 100}).auto_paging_iter()
    related = [
        e
        for e in events
        if e.data.object.id in (session.id, session.payment_intent)
        or e.data.object.to_dict().get("payment_intent") == session.payment_intent
    ]
    return [e.type for e in reversed(related)][1:]  # drop payment_intent.created


def test_pay_emits_intent_charge_then_session(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)

    assert _types_after_creation(client, session) == PAY
    completed = client.v1.events.list({"type": "checkout.session.completed"}).data[0]
    assert completed.data.object.payment_status == "paid"
    assert completed.data.object.metadata.orderId == "ord-1"
    succeeded = client.v1.events.list({"type": "payment_intent.succeeded"}).data[0]
    assert succeeded.data.object.latest_charge.startswith("ch_")
    assert set(completed.to_dict()) == set(load_fixture("event"))
    assert completed.livemode is False and completed.api_version
    assert completed.request.to_dict() == {"id": None, "idempotency_key": None}


def test_decline_keeps_the_session_open_for_another_try(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id, "declined")

    failed = client.v1.events.list({"type": "payment_intent.payment_failed"}).data[0]
    error = failed.data.object.last_payment_error
    assert (error.code, error.decline_code) == ("card_declined", "generic_decline")
    assert error.message
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    sandbox.pay(session.id)
    assert _types_after_creation(client, session) == ["payment_intent.payment_failed", *PAY]


def test_delayed_payment_that_succeeds(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    pending = sandbox.pay(session.id, "async_pending")
    assert (pending["status"], pending["payment_status"]) == ("complete", "unpaid")

    sandbox.pay(session.id, "async_succeeded")
    assert _types_after_creation(client, session) == [
        "payment_intent.processing",
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.succeeded",
        "checkout.session.async_payment_succeeded",
    ]
    completed = client.v1.events.list({"type": "checkout.session.completed"}).data[0]
    assert completed.data.object.payment_status == "unpaid"
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_delayed_payment_that_fails(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id, "async_pending")
    sandbox.pay(session.id, "async_failed")

    assert _types_after_creation(client, session) == [
        "payment_intent.processing",
        "checkout.session.completed",
        "payment_intent.payment_failed",
        "checkout.session.async_payment_failed",
    ]
    assert client.v1.payment_intents.retrieve(session.payment_intent).status == (
        "requires_payment_method"
    )


def test_expire_and_refund_events(client, sandbox):
    open_session = client.v1.checkout.sessions.create(session_params())
    client.v1.checkout.sessions.expire(open_session.id, options={"idempotency_key": "exp-1"})
    expired = client.v1.events.list({"type": "checkout.session.expired"}).data[0]
    assert expired.data.object.status == "expired"
    assert expired.request.idempotency_key == "exp-1"

    paid = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(paid.id)
    client.v1.refunds.create({"payment_intent": paid.payment_intent, "amount": 1000})
    client.v1.refunds.create({"payment_intent": paid.payment_intent, "amount": 500})
    refunded = client.v1.events.list({"type": "charge.refunded"}).data
    assert [(e.data.object.amount_refunded, e.data.object.refunded) for e in refunded] == [
        (1500, False),
        (1000, False),
    ]
    assert len(refunded[0].data.object.refunds.data) == 2
    assert [e.type for e in client.v1.events.list({"limit": 2}).data] == [
        "refund.created",
        "charge.refunded",
    ]


def test_a_wrong_outcome_for_the_state_is_refused(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    response = sandbox_post(sandbox, f"sessions/{session.id}/pay", {"outcome": "async_succeeded"})
    assert response.status_code == 400
    sandbox.pay(session.id)
    assert sandbox_post(sandbox, f"sessions/{session.id}/pay", {}).status_code == 400
    assert (
        sandbox_post(sandbox, f"sessions/{session.id}/pay", {"outcome": "nonsense"}).status_code
        == 400
    )


def sandbox_post(sandbox, path, body):
    return sandbox.http.post(f"{sandbox.url}/_sandbox/{path}", json=body)


@pytest.fixture
def three_sessions_paid(client, sandbox):
    for _ in range(3):
        session = client.v1.checkout.sessions.create(session_params())
        sandbox.pay(session.id)


def test_list_filters(client, three_sessions_paid):
    everything = list(client.v1.events.list({"limit": 100}).auto_paging_iter())
    assert len(everything) == 12

    assert len(client.v1.events.list({"type": "charge.succeeded"}).data) == 3
    assert {e.type for e in client.v1.events.list({"type": "payment_intent.*"}).data} == {
        "payment_intent.created",
        "payment_intent.succeeded",
    }
    both = client.v1.events.list({"types": ["charge.succeeded", "checkout.session.completed"]})
    assert len(both.data) == 6
    now = int(time.time())
    assert len(client.v1.events.list({"created": {"gte": now - 60}, "limit": 100}).data) == 12
    assert client.v1.events.list({"created": {"gt": now + 60}}).data == []
    assert client.v1.events.list({"created": {"lt": everything[-1].created}}).data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list({"type": "charge.succeeded", "types": ["charge.succeeded"]})


def test_list_pages_newest_first(client, three_sessions_paid):
    everything = client.v1.events.list({"limit": 100}).data
    first = client.v1.events.list({"limit": 5})
    assert [e.id for e in first.data] == [e.id for e in everything[:5]] and first.has_more

    second = client.v1.events.list({"limit": 5, "starting_after": first.data[-1].id})
    assert [e.id for e in second.data] == [e.id for e in everything[5:10]]
    paged = [e.id for e in client.v1.events.list({"limit": 2}).auto_paging_iter()]
    assert paged == [e.id for e in everything]
    back = client.v1.events.list({"limit": 3, "ending_before": everything[5].id})
    assert [e.id for e in back.data] == [e.id for e in everything[2:5]]
    assert [e.id for e in client.v1.events.list().data] == [e.id for e in everything[:10]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"starting_after": "evt_missing"},
        {"created": {"soon": 1}},
    ],
)
def test_bad_list_parameters(client, params):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params)


def test_retrieve_an_event(client, three_sessions_paid):
    latest = client.v1.events.list({"limit": 1}).data[0]

    got = client.v1.events.retrieve(latest.id).to_dict()
    assert got["data"] == latest.to_dict()["data"] and got["type"] == latest.type
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.events.retrieve("evt_missing")
    assert err.value.http_status == 404
