"""Disputes and early fraud warnings at the sandbox: the objects and events Stripe sends,
read back through the unchanged client (`v1.disputes`, `v1.radar.early_fraud_warnings`)."""

from __future__ import annotations

import httpx
import pytest
import stripe


def _paid_intent(client: stripe.StripeClient, amount: int = 2500):
    return client.v1.payment_intents.create(
        {"amount": amount, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )


def _refused(sandbox, path: str, body: dict) -> dict:
    response = httpx.post(f"{sandbox.url}/_sandbox/{path}", json=body, timeout=10)
    assert response.status_code == 400, response.text
    return response.json()["error"]


def test_a_chargeback_won_sends_stripes_events_with_its_money(client, sandbox, listener):
    intent = _paid_intent(client)
    opened = sandbox.control(f"payment_intents/{intent.id}/dispute", {"reason": "fraudulent"})
    dispute = client.v1.disputes.retrieve(opened["id"])
    assert (dispute.status, dispute.amount, dispute.currency, dispute.reason) == (
        "needs_response",
        2500,
        "usd",
        "fraudulent",
    )
    assert (dispute.charge, dispute.payment_intent) == (intent.latest_charge, intent.id)
    assert dispute.evidence_details.due_by > dispute.created
    assert dispute.payment_method_details.card.case_type == "chargeback"
    [withdrawal] = dispute.balance_transactions
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (-2500, 1500, -4000)
    assert client.v1.charges.retrieve(intent.latest_charge).disputed is True

    sandbox.control(f"disputes/{dispute.id}/update", {"status": "under_review"})
    closed = sandbox.control(f"disputes/{dispute.id}/close", {"outcome": "won"})
    assert closed["status"] == "won"
    assert [t["amount"] for t in closed["balance_transactions"]] == [-2500, 2500]
    types = listener.wait_types(5, dispute.id)
    assert types == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    updated = listener.find("charge.dispute.updated", dispute.id)
    assert updated.data.previous_attributes.status == "needs_response"
    assert updated.data.object.evidence_details.has_evidence is True
    created = listener.find("charge.dispute.created", dispute.id)
    assert created.data.object.balance_transactions == []  # each event: the object then
    listed = client.v1.disputes.list({"payment_intent": intent.id})
    assert [d.id for d in listed.data] == [dispute.id]


def test_an_inquiry_takes_no_money_and_closes_as_warning_closed(client, sandbox, listener):
    intent = _paid_intent(client)
    inquiry = sandbox.control(
        f"payment_intents/{intent.id}/dispute", {"status": "warning_needs_response"}
    )
    assert inquiry["balance_transactions"] == [] and inquiry["is_charge_refundable"] is True
    error = _refused(sandbox, f"disputes/{inquiry['id']}/close", {"outcome": "won"})
    assert "warning_closed" in error["message"]
    sandbox.control(f"disputes/{inquiry['id']}/close", {"outcome": "warning_closed"})
    assert listener.wait_types(2, inquiry["id"]) == [
        "charge.dispute.created",
        "charge.dispute.closed",
    ]
    error = _refused(sandbox, f"disputes/{inquiry['id']}/update", {"status": "under_review"})
    assert error["code"] == "dispute_unexpected_state"


def test_a_fraud_warning_stops_being_actionable_when_the_charge_is_disputed(
    client, sandbox, listener
):
    intent = _paid_intent(client)
    made = sandbox.control(f"payment_intents/{intent.id}/fraud_warning", {"fraud_type": "misc"})
    warning = client.v1.radar.early_fraud_warnings.retrieve(made["id"])
    assert (warning.actionable, warning.fraud_type, warning.charge, warning.payment_intent) == (
        True,
        "misc",
        intent.latest_charge,
        intent.id,
    )
    sandbox.control(f"payment_intents/{intent.id}/dispute")
    assert listener.wait_types(2, warning.id) == [
        "radar.early_fraud_warning.created",
        "radar.early_fraud_warning.updated",
    ]
    assert (
        listener.find("radar.early_fraud_warning.updated", warning.id).data.object.actionable
        is False
    )
    assert client.v1.radar.early_fraud_warnings.retrieve(warning.id).actionable is False


def test_a_full_refund_ends_a_fraud_warning(client, sandbox, listener):
    intent = _paid_intent(client)
    made = sandbox.control(f"payment_intents/{intent.id}/fraud_warning")
    client.v1.refunds.create({"payment_intent": intent.id})
    assert client.v1.radar.early_fraud_warnings.retrieve(made["id"]).actionable is False
    updated = listener.wait_types(2, made["id"])
    assert updated == ["radar.early_fraud_warning.created", "radar.early_fraud_warning.updated"]


@pytest.mark.parametrize(
    "body",
    [{"reason": "because"}, {"amount": 0}, {"amount": "12"}, {"status": "won"}],
)
def test_bad_dispute_requests_are_refused(client, sandbox, body):
    intent = _paid_intent(client)
    assert _refused(sandbox, f"payment_intents/{intent.id}/dispute", body)["param"] in body


def test_only_a_paid_intent_can_be_disputed(client, sandbox):
    unpaid = client.v1.payment_intents.create({"amount": 500, "currency": "usd"})
    error = _refused(sandbox, f"payment_intents/{unpaid.id}/dispute", {})
    assert error["code"] == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.disputes.retrieve("du_nothing")
    assert err.value.http_status == 404
