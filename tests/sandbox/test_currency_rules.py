"""The sandbox refuses what Stripe refuses: amounts under the currency's minimum, amounts off
a three-decimal or whole-unit currency's step, digits that are not ASCII.

Regression: the sandbox used to accept a 1¢ Checkout Session and a 1.235 KWD charge, both
of which Stripe refuses, so a shop selling them passed every test and failed in production.
"""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY, session_params


def _line(currency: str, unit_amount: int, quantity: int = 1) -> dict:
    return {
        "quantity": quantity,
        "price_data": {
            "currency": currency,
            "unit_amount": unit_amount,
            "product_data": {"name": "Pin"},
        },
    }


def _refusal(create, params: dict) -> dict:
    with pytest.raises(stripe.InvalidRequestError) as err:
        create(params)
    assert err.value.http_status == 400
    return err.value.error


@pytest.mark.parametrize(
    "currency, unit_amount, quantity, minimum",
    [("usd", 1, 1, "0.50 usd"), ("usd", 24, 2, "0.50 usd"), ("gbp", 29, 1, "0.30 gbp"),
     ("jpy", 49, 1, "50 jpy"), ("huf", 17499, 1, "175.00 huf")],
)  # fmt: skip
def test_a_session_under_the_minimum_is_amount_too_small(
    client, currency, unit_amount, quantity, minimum
):
    params = session_params(line_items=[_line(currency, unit_amount, quantity)])
    error = _refusal(client.v1.checkout.sessions.create, params)
    assert (error.type, error.code) == ("invalid_request_error", "amount_too_small")
    assert error.message.endswith(f"must add up to at least {minimum}")
    assert client.v1.checkout.sessions.list().data == []


def test_the_minimum_itself_is_accepted(client):
    session = client.v1.checkout.sessions.create(session_params(line_items=[_line("usd", 50)]))
    assert (session.amount_total, session.status) == (50, "open")


def test_a_payment_intent_under_the_minimum_is_refused_on_amount(client):
    error = _refusal(client.v1.payment_intents.create, {"amount": 49, "currency": "usd"})
    assert (error.code, error.param) == ("amount_too_small", "amount")
    assert error.message == "Amount must be at least 0.50 usd"


@pytest.mark.parametrize("currency, amount", [("kwd", 1235), ("bhd", 5124), ("isk", 550)])
def test_amounts_off_the_currencys_step_are_refused(client, currency, amount):
    """Three-decimal currencies end in 0; ISK is whole krónur written with decimals 00."""
    session = _refusal(
        client.v1.checkout.sessions.create,
        session_params(line_items=[_line(currency, amount)]),
    )
    assert (session.code, session.param) == (
        "invalid_charge_amount",
        "line_items[0][price_data][unit_amount]",
    )
    intent = _refusal(client.v1.payment_intents.create, {"amount": amount, "currency": currency})
    assert (intent.code, intent.param) == ("invalid_charge_amount", "amount")
    on_step = amount - amount % (100 if currency == "isk" else 10) + 1000
    created = client.v1.payment_intents.create({"amount": on_step, "currency": currency})
    assert created.amount == on_step


def test_a_three_decimal_refund_must_end_in_zero(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params(line_items=[_line("kwd", 12_340)]))
    sandbox.pay(session.id)
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    error = _refusal(client.v1.refunds.create, {"payment_intent": intent, "amount": 1235})
    assert (error.code, error.param) == ("invalid_charge_amount", "amount")
    assert client.v1.refunds.create({"payment_intent": intent, "amount": 1230}).amount == 1230


def test_only_ascii_digits_are_read(sandbox):
    """`int()` reads Arabic-Indic digits; Stripe does not."""
    response = httpx.post(
        f"{sandbox.url}/v1/payment_intents",
        data={"amount": "\u0661\u0662\u0663\u0664", "currency": "usd"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_invalid_integer"
