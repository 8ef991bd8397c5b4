"""PaymentIntents (create, retrieve, confirm, cancel) and Refunds (full, partial, too much)."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.helpers import load_fixture, session_params


def test_create_confirm_and_retrieve_a_payment_intent(client):
    intent = client.v1.payment_intents.create(
        {"amount": 1999, "currency": "EUR", "metadata": {"orderId": "o-7"}}
    )
    assert (intent.status, intent.currency, intent.latest_charge) == (
        "requires_payment_method",
        "eur",
        None,
    )

    paid = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert (paid.status, paid.amount_received) == ("succeeded", 1999)
    charge = client.v1.charges.retrieve(paid.latest_charge)
    assert set(charge.to_dict()) == set(load_fixture("charge"))
    assert (charge.amount, charge.payment_intent, charge.metadata.orderId) == (
        1999,
        intent.id,
        "o-7",
    )
    assert client.v1.payment_intents.retrieve(intent.id).latest_charge == charge.id


def test_a_declined_confirmation_is_a_card_error(client):
    intent = client.v1.payment_intents.create({"amount": 500, "currency": "usd"})

    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_chargeDeclined"})
    assert (err.value.http_status, err.value.code) == (402, "card_declined")
    again = client.v1.payment_intents.retrieve(intent.id)
    assert again.status == "requires_payment_method"
    assert again.last_payment_error.decline_code == "generic_decline"


def test_cancel_only_from_a_cancelable_status(client):
    intent = client.v1.payment_intents.create({"amount": 500, "currency": "usd"})
    canceled = client.v1.payment_intents.cancel(intent.id, {"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    assert canceled.canceled_at is not None

    paid = client.v1.payment_intents.create(
        {"amount": 500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert paid.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.cancel(paid.id)
    assert err.value.code == "payment_intent_unexpected_state"


def test_a_checkout_sessions_intent_cannot_be_confirmed_or_canceled(client):
    session = client.v1.checkout.sessions.create(session_params())

    with pytest.raises(stripe.InvalidRequestError, match="Checkout Session"):
        client.v1.payment_intents.cancel(session.payment_intent)
    with pytest.raises(stripe.InvalidRequestError, match="Checkout Session"):
        client.v1.payment_intents.confirm(
            session.payment_intent, {"payment_method": "pm_card_visa"}
        )


def test_payment_intent_bad_input(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create({"currency": "usd"})
    assert (err.value.param, err.value.code) == ("amount", "parameter_missing")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create({"amount": 100, "currency": "dollars"})
    assert err.value.param == "currency"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.cancel("pi_missing")
    assert err.value.http_status == 404


@pytest.fixture
def paid_session(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)
    return client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]})


def test_partial_then_full_refund_then_refused(client, paid_session):
    intent = paid_session.payment_intent
    first = client.v1.refunds.create(
        {"payment_intent": intent.id, "amount": 1000, "reason": "requested_by_customer"}
    )
    assert set(first.to_dict()) == set(load_fixture("refund"))
    assert (first.id[:3], first.amount, first.status, first.charge) == (
        "re_",
        1000,
        "succeeded",
        intent.latest_charge,
    )
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (1000, False)

    rest = client.v1.refunds.create({"charge": intent.latest_charge})
    assert rest.amount == 2000
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (3000, True)
    assert [r.id for r in charge.refunds.data] == [rest.id, first.id]
    assert client.v1.refunds.retrieve(first.id).amount == 1000

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create({"payment_intent": intent.id})
    assert err.value.code == "charge_already_refunded"


def test_refund_more_than_is_left_is_refused(client, paid_session):
    intent = paid_session.payment_intent
    client.v1.refunds.create({"payment_intent": intent.id, "amount": 2500})

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 501})
    assert (err.value.http_status, err.value.param) == (400, "amount")
    assert client.v1.charges.retrieve(intent.latest_charge).amount_refunded == 2500
    assert len(client.v1.refunds.list({"payment_intent": intent.id}).data) == 1


def test_refund_needs_a_successful_charge(client):
    session = client.v1.checkout.sessions.create(session_params())

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create({"payment_intent": session.payment_intent})
    assert err.value.param == "payment_intent"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create({})
    assert err.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create({"charge": "ch_nope"})
    assert err.value.http_status == 404


def test_a_pending_refund_fails_with_the_events_stripe_sends(client, sandbox, listener):
    """Stripe's refunds can stay pending and fail later (refund.failed and friends, API
    2024-10-28): the refunded amount goes back to the charge."""
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)
    intent = client.v1.payment_intents.retrieve(session.payment_intent)
    sandbox.control("config", {"refund_status": "pending"})
    refund = client.v1.refunds.create({"payment_intent": intent.id, "amount": 1000})
    assert refund.status == "pending"
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.amount_refunded == 1000  # pending refunds count at Stripe too

    failed = sandbox.control(f"refunds/{refund.id}/fail")
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")
    assert client.v1.refunds.retrieve(refund.id).status == "failed"
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    assert charge.refunds.data[0].status == "failed"
    listener.wait_types(4, refund.id)
    types = [t for t in listener.types(intent.id) if "refund" in t]
    assert types == [
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refund.updated",
    ]
    updated = listener.find("refund.updated", refund.id)
    assert updated.data.previous_attributes.to_dict() == {"status": "pending"}

    again = client.v1.refunds.create({"payment_intent": intent.id})  # refundable again
    assert again.amount == 3000
    twice = sandbox.http.post(f"{sandbox.url}/_sandbox/refunds/{refund.id}/fail", json={})
    assert twice.status_code == 400  # only a pending refund can fail


def test_a_pending_refund_can_succeed(client, sandbox, listener):
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)
    sandbox.control("config", {"refund_status": "pending"})
    refund = client.v1.refunds.create({"payment_intent": session.payment_intent})
    assert sandbox.control(f"refunds/{refund.id}/succeed")["status"] == "succeeded"
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    bad = sandbox.http.post(f"{sandbox.url}/_sandbox/config", json={"refund_status": "later"})
    assert bad.status_code == 400
