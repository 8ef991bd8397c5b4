"""Checkout Sessions through the official client: create, retrieve, list, expire, the rules."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.sandbox.helpers import API_KEY, load_fixture, session_params


def test_create_returns_a_session_shaped_like_stripes(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())

    assert session.id.startswith("cs_test_")
    assert set(session.to_dict()) == set(load_fixture("checkout_session"))
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    assert (session.amount_total, session.amount_subtotal, session.currency) == (3000, 3000, "usd")
    assert session.metadata.to_dict() == {"orderId": "ord-1", "paymentId": "pay-1"}
    assert session.client_reference_id == "ord-1"
    assert session.customer_email == "buyer@example.com"
    assert session.url == f"{sandbox.url}/checkout/pay/{session.id}"
    assert session.payment_intent.startswith("pi_")


def test_the_sessions_payment_intent_carries_payment_intent_data(client):
    session = client.v1.checkout.sessions.create(session_params())
    intent = client.v1.payment_intents.retrieve(session.payment_intent)

    assert set(intent.to_dict()) == set(load_fixture("payment_intent"))
    assert intent.metadata.to_dict() == {"orderId": "ord-1", "paymentId": "pay-1"}
    assert (intent.amount, intent.currency, intent.status) == (
        3000,
        "usd",
        "requires_payment_method",
    )


def test_retrieve_list_and_expand(client):
    first = client.v1.checkout.sessions.create(session_params())
    second = client.v1.checkout.sessions.create(session_params(client_reference_id="ord-2"))

    got = client.v1.checkout.sessions.retrieve(
        first.id, {"expand": ["payment_intent", "line_items"]}
    )
    assert got.payment_intent.id == first.payment_intent
    assert [i.description for i in got.line_items.data] == ["T-shirt", "Mug & <Co>"]
    assert set(got.line_items.data[0].to_dict()) == set(load_fixture("checkout_session_line_item"))

    listed = client.v1.checkout.sessions.list({"limit": 1})
    assert [s.id for s in listed.data] == [second.id] and listed.has_more
    assert [s.id for s in listed.auto_paging_iter()] == [second.id, first.id]
    by_intent = client.v1.checkout.sessions.list({"payment_intent": first.payment_intent})
    assert [s.id for s in by_intent.data] == [first.id]
    items = client.v1.checkout.sessions.line_items.list(first.id)
    assert [i.amount_total for i in items.data] == [2500, 500]


def test_expire_only_while_open(client):
    session = client.v1.checkout.sessions.create(session_params())

    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.expire(session.id)
    assert err.value.http_status == 400
    assert 'status of "expired"' in err.value.user_message
    assert client.v1.payment_intents.retrieve(session.payment_intent).status == "canceled"
    assert [s.id for s in client.v1.checkout.sessions.list({"status": "expired"}).data] == [
        session.id
    ]


def test_a_paid_session_cannot_be_expired(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.pay(session.id)

    with pytest.raises(stripe.InvalidRequestError, match='status of "complete"'):
        client.v1.checkout.sessions.expire(session.id)


@pytest.mark.parametrize("minutes", [29, 24 * 60 + 1])
def test_expires_at_must_be_30_minutes_to_24_hours_away(client, minutes):
    params = session_params(expires_at=int(time.time()) + minutes * 60)

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.create(params)
    assert err.value.param == "expires_at"
    assert client.v1.checkout.sessions.list().data == []


def test_expires_at_defaults_to_24_hours_and_accepts_the_bounds(client):
    default = client.v1.checkout.sessions.create(session_params(expires_at=None))
    assert default.expires_at - default.created == 24 * 3600
    soon = client.v1.checkout.sessions.create(session_params(expires_at=int(time.time()) + 1860))
    assert soon.status == "open"


def test_unknown_session_is_a_404_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert (err.value.http_status, err.value.code) == (404, "resource_missing")


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"line_items": None}, "line_items", "parameter_missing"),
        ({"mode": None}, "mode", "parameter_missing"),
        ({"colour": "red"}, "colour", "parameter_unknown"),
        ({"customer_email": "not-an-email"}, "customer_email", "email_invalid"),
        ({"success_url": "javascript:alert(1)"}, "success_url", "url_invalid"),
        ({"metadata": {"orderId": "x" * 501}}, "metadata[orderId]", "parameter_invalid"),
        (
            {"payment_intent_data": {"metadta": {"a": "b"}}},
            "payment_intent_data[metadta]",
            "parameter_unknown",
        ),
        (
            {
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": "12.5",
                            "product_data": {"name": "x"},
                        },
                    }
                ]
            },
            "line_items[0][price_data][unit_amount]",
            "parameter_invalid_integer",
        ),
        (
            {
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {"currency": "usd", "unit_amount": 100, "product_data": {}},
                    }
                ]
            },
            "line_items[0][price_data][product_data]",
            "parameter_missing",
        ),
    ],
)
def test_bad_parameters_get_a_stripe_shaped_400(client, change, param, code):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.create(session_params(**change))
    assert (err.value.http_status, err.value.param, err.value.code) == (400, param, code)
    assert err.value.request_id.startswith("req_")


@pytest.mark.parametrize(
    "body",
    [
        "mode=payment&line_items[0]=oops",
        "line_items[0][quantity]=1&line_items[0][quantity][x]=2",
        "a]b=1",
        "line_items=%ff%fe",
        "expires_at=soon&mode=payment",
        *(
            f"mode=payment&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd"
            f"&line_items[0][price_data][product_data][name]=x&line_items[0][price_data]{tail}"
            for tail in (
                "[unit_amount_decimal]=nan",
                "[unit_amount_decimal]=1e400",
                "[unit_amount]=99999999999999",
                "[unit_amount]=",
            )
        ),
    ],
)
def test_malformed_forms_never_cause_a_500(sandbox, body):
    response = sandbox.http.post(
        f"{sandbox.url}/v1/checkout/sessions",
        content=body,
        headers={
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["Request-Id"].startswith("req_")


def test_percent_encoded_brackets_are_the_same_as_literal_ones(sandbox):
    body = (
        "mode=payment&line_items%5B0%5D%5Bquantity%5D=3&line_items%5B0%5D%5Bprice_data%5D"
        "%5Bcurrency%5D=eur&line_items[0][price_data][unit_amount]=700&line_items%5B0%5D"
        "[price_data][product_data][name]=Tea&metadata%5BorderId%5D=o-9"
    )
    response = sandbox.http.post(
        f"{sandbox.url}/v1/checkout/sessions",
        content=body,
        headers={
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )

    assert response.status_code == 200, response.text
    session = response.json()
    assert (session["amount_total"], session["currency"]) == (2100, "eur")
    assert session["metadata"] == {"orderId": "o-9"}


def test_the_legacy_global_api_works_too(sandbox, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", sandbox.url)

    params = session_params()
    session = stripe.checkout.Session.create(**params, idempotency_key="legacy-1")
    again = stripe.checkout.Session.create(**params, idempotency_key="legacy-1")
    assert again.id == session.id
    assert stripe.checkout.Session.retrieve(session.id).amount_total == 3000
    assert stripe.checkout.Session.expire(session.id).status == "expired"
