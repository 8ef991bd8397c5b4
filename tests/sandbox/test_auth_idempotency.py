"""Authentication, Request-Id and Idempotency-Key semantics, as stripe-python sees them."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.helpers import API_KEY, session_params


@pytest.mark.parametrize("key", ["sk_live_realmoney123456", "pk_test_publishable1234"])
def test_only_test_secret_keys_are_accepted(sandbox, key):
    client = stripe.StripeClient(key, base_addresses={"api": sandbox.url})

    with pytest.raises(stripe.AuthenticationError) as err:
        client.v1.checkout.sessions.list()
    assert err.value.http_status == 401
    assert err.value.request_id.startswith("req_")


def test_a_request_without_a_key_is_a_401(sandbox):
    response = sandbox.http.get(f"{sandbox.url}/v1/events")

    assert response.status_code == 401
    error = response.json()["error"]
    assert {"type", "code", "message", "param", "doc_url"} <= set(error)
    assert "API key" in error["message"]


def test_same_key_and_parameters_replay_the_first_response(client):
    params = session_params()
    first = client.v1.checkout.sessions.create(params, {"idempotency_key": "order-1-pay"})
    again = client.v1.checkout.sessions.create(params, {"idempotency_key": "order-1-pay"})

    assert again.id == first.id
    assert len(client.v1.checkout.sessions.list().data) == 1
    assert len(client.v1.events.list({"type": "payment_intent.created"}).data) == 1


def test_the_replay_is_byte_for_byte_with_the_same_status(sandbox):
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "raw-1"}
    body = {
        "amount": "700",
        "currency": "usd",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": "true",
    }
    first = sandbox.http.post(f"{sandbox.url}/v1/payment_intents", data=body, headers=headers)
    again = sandbox.http.post(f"{sandbox.url}/v1/payment_intents", data=body, headers=headers)

    assert first.status_code == again.status_code == 402
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Request-Id"] != first.headers["Request-Id"]


def test_same_key_with_other_parameters_is_an_idempotency_error(client):
    client.v1.checkout.sessions.create(session_params(), {"idempotency_key": "k-1"})

    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.checkout.sessions.create(
            session_params(client_reference_id="other"), {"idempotency_key": "k-1"}
        )
    assert err.value.http_status == 400
    assert len(client.v1.checkout.sessions.list().data) == 1


def test_a_rejected_request_is_not_remembered(client):
    bad = session_params(expires_at=1)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(bad, {"idempotency_key": "k-bad"})

    fixed = client.v1.checkout.sessions.create(session_params(), {"idempotency_key": "k-bad"})
    assert fixed.status == "open"


def test_every_response_has_a_request_id(sandbox):
    for url in ("/v1/events", "/_sandbox/health", "/checkout/pay/cs_test_missing", "/v1/nope"):
        response = sandbox.http.get(
            f"{sandbox.url}{url}", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert response.headers["Request-Id"].startswith("req_"), url


def test_an_unknown_route_is_a_stripe_404(client, sandbox):
    response = sandbox.http.post(
        f"{sandbox.url}/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"}
    )

    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Unrecognized request URL")
