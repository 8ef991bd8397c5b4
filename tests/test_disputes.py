"""Disputes and early fraud warnings (issue 18, item 4), end to end: `shopctl serve`, the
sandbox and its signed webhooks, the CLI.

As found on main: every `charge.dispute.*` and `radar.early_fraud_warning.*` event was
stored as "unhandled type"; nothing said an order was disputed, nothing held its
shipping, and doctor stayed green with evidence due tomorrow.
"""

from __future__ import annotations

import json
import time

from shopctl.models import Dispute, FraudWarning, Order, OrderHistory, StripeEvent
from shopctl.services.payments.dispute_views import shipping_hold
from tests.payments_support import payment_of, status_of, wait_for, wait_processed
from tests.test_indexes import fresh_database  # noqa: F401  (fixture)
from tests.test_payments_ops import _paid_order

HOUR = 3600


def _open(stack, order_id: str, **body) -> dict:
    intent = payment_of(order_id).payment_intent_id
    return stack.control("POST", f"/payment_intents/{intent}/dispute", json=body)


def _dispute(dispute_id: str, **expected) -> Dispute:
    """The stored dispute once it has every `expected` value."""

    def arrived():
        row = Dispute.get_or_none(Dispute.id == dispute_id)
        return row if row and all(getattr(row, k) == v for k, v in expected.items()) else None

    return wait_for(arrived, what=f"dispute {dispute_id} with {expected}")


def _notes(order_id: str) -> list[str]:
    """History rows that record something around the order without moving it."""
    rows = OrderHistory.select().where(
        (OrderHistory.order == order_id) & (OrderHistory.from_status == OrderHistory.to_status)
    )
    return [row.reason for row in rows.order_by(OrderHistory.id)]


def _doctor(cli) -> tuple[int, dict]:
    result = cli("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(result.output)["checks"]}
    return result.exit_code, checks


def _disputed_over_http(stack, settings, order_id: str) -> bool:
    from shopctl.models import User
    from tests.orders_support import bearer

    owner = User.get(User.email == "payer@example.com")
    response = stack.server.request("GET", f"/order/{order_id}", headers=bearer(settings, owner))
    assert response.status_code == 200, response.text
    return response.json()["data"]["disputed"]


def test_a_dispute_opened_and_won_at_the_sandbox(stripe_stack, settings, cli):
    order_id = _paid_order(stripe_stack, settings)["orderId"]
    assert _disputed_over_http(stripe_stack, settings, order_id) is False
    opened = _open(stripe_stack, order_id, reason="product_not_received")
    row = _dispute(opened["id"], funds_withdrawn_cents=1000)
    assert (row.order_id, row.payment_id) == (order_id, payment_of(order_id).id)
    assert (row.status, row.reason, row.amount_cents, row.currency) == (
        "needs_response",
        "product_not_received",
        1000,
        "usd",
    )
    assert row.evidence_due_by is not None and row.problem is None
    assert Order.get_by_id(order_id).disputed is True
    assert _disputed_over_http(stripe_stack, settings, order_id) is True
    assert (status_of(order_id), payment_of(order_id).status) == ("PAID", "PAID")
    assert "open (needs_response)" in shipping_hold(order_id)
    code, checks = _doctor(cli)  # evidence due in a week: a warning, not a failure
    assert code == 0 and checks["disputes"]["warning"] is True
    assert opened["id"] in checks["disputes"]["detail"]

    listed = json.loads(cli("disputes", "list", "--open", "--json").output)
    assert [d["id"] for d in listed] == [opened["id"]]
    shown = cli("disputes", "show", opened["id"][:9])
    assert shown.exit_code == 0, shown.output
    assert order_id in shown.output and "needs_response" in shown.output

    stripe_stack.control(
        "POST", f"/disputes/{opened['id']}/update", json={"status": "under_review"}
    )
    _dispute(opened["id"], status="under_review")
    assert Order.get_by_id(order_id).disputed is True
    stripe_stack.control("POST", f"/disputes/{opened['id']}/close", json={"outcome": "won"})
    _dispute(opened["id"], status="won", funds_reinstated_cents=1000)
    wait_processed(
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    )
    assert Order.get_by_id(order_id).disputed is False
    assert (status_of(order_id), payment_of(order_id).status) == ("PAID", "PAID")
    notes = _notes(order_id)
    assert len(notes) == 2 and "opened" in notes[0] and "closed: won" in notes[1]
    assert shipping_hold(order_id) is None
    code, checks = _doctor(cli)
    assert code == 0 and not checks["disputes"]["warning"], checks["disputes"]
    assert json.loads(cli("disputes", "list", "--open", "--json").output) == []
    order = json.loads(cli("orders", "show", order_id, "--json").output)
    assert [d["status"] for d in order["disputes"]] == ["won"]
    assert "dispute " + opened["id"] in cli("orders", "show", order_id).output


def test_a_lost_dispute_keeps_the_order_disputed_and_doctor_fails_near_the_deadline(
    stripe_stack, settings, cli
):
    order_id = _paid_order(stripe_stack, settings)["orderId"]
    due = int(time.time()) + 24 * HOUR
    opened = _open(stripe_stack, order_id, evidence_due_by=due)
    _dispute(opened["id"], funds_withdrawn_cents=1000)
    code, checks = _doctor(cli)
    assert code == 1 and checks["disputes"]["ok"] is False
    assert "evidence due within 72 h" in checks["disputes"]["detail"]
    assert "FAIL" in cli("doctor").output

    stripe_stack.control("POST", f"/disputes/{opened['id']}/close", json={"outcome": "lost"})
    _dispute(opened["id"], status="lost")
    assert Order.get_by_id(order_id).disputed is True  # the money went back to the buyer
    assert "is lost" in shipping_hold(order_id)
    assert (status_of(order_id), payment_of(order_id).status) == ("PAID", "PAID")
    assert payment_of(order_id).refunded_cents == 0
    assert "closed: lost" in _notes(order_id)[-1]
    code, checks = _doctor(cli)
    assert code == 0 and checks["disputes"]["detail"] == "no open disputes"


def test_events_out_of_order_never_move_a_dispute_back(stripe_stack, settings):
    """An older `updated` delivered after `closed` leaves it closed; a dispute whose every
    event arrives newest first ends as the one delivered in order."""
    order_id = _paid_order(stripe_stack, settings)["orderId"]
    opened = _open(stripe_stack, order_id)
    _dispute(opened["id"], funds_withdrawn_cents=1000)
    stripe_stack.configure(webhooks_enabled=False)
    stripe_stack.control(
        "POST", f"/disputes/{opened['id']}/update", json={"status": "under_review"}
    )
    time.sleep(1.1)  # the close is a second newer by Stripe's clock
    stripe_stack.configure(webhooks_enabled=True)
    stripe_stack.control("POST", f"/disputes/{opened['id']}/close", json={"outcome": "won"})
    _dispute(opened["id"], status="won", funds_reinstated_cents=1000)
    [late] = _sandbox_events(stripe_stack, opened["id"], "charge.dispute.updated")
    stripe_stack.control("POST", f"/events/{late['id']}/resend")
    wait_for(lambda: _settled(late["id"]), what="the late update processed")
    row = Dispute.get_by_id(opened["id"])
    assert (row.status, row.funds_reinstated_cents) == ("won", 1000)
    assert Order.get_by_id(order_id).disputed is False
    assert len(_notes(order_id)) == 2  # opened, closed: never reopened

    second = _paid_order(stripe_stack, settings, email="second@example.com")["orderId"]
    stripe_stack.configure(webhooks_enabled=False)
    backwards = _open(stripe_stack, second)
    stripe_stack.control("POST", f"/disputes/{backwards['id']}/close", json={"outcome": "won"})
    events = _sandbox_events(stripe_stack, backwards["id"])
    assert len(events) == 4
    for event in reversed(events):
        stripe_stack.control("POST", f"/events/{event['id']}/resend")
    wait_for(lambda: all(_settled(e["id"]) for e in events), what="all four processed")
    row = Dispute.get_by_id(backwards["id"])
    assert (row.status, row.funds_withdrawn_cents, row.funds_reinstated_cents) == (
        "won",
        1000,
        1000,
    )
    assert Order.get_by_id(second).disputed is False
    notes = _notes(second)
    assert len(notes) == 1 and "closed: won" in notes[0]


def _sandbox_events(stack, object_id: str, event_type: str | None = None) -> list[dict]:
    """The sandbox's events about `object_id`, oldest first."""
    listed = stack.stripe().v1.events.list({"limit": 100}).to_dict()["data"]
    found = [
        event
        for event in listed
        if event["data"]["object"]["id"] == object_id
        and (event_type is None or event["type"] == event_type)
    ]
    return list(reversed(found))


def _settled(event_id: str) -> bool:
    row = StripeEvent.get_or_none(StripeEvent.id == event_id)
    return row is not None and row.status in ("PROCESSED", "IGNORED")


def test_a_fraud_warning_holds_shipping_until_the_order_is_refunded(stripe_stack, settings, cli):
    order_id = _paid_order(stripe_stack, settings)["orderId"]
    intent = payment_of(order_id).payment_intent_id
    made = stripe_stack.control("POST", f"/payment_intents/{intent}/fraud_warning", json={})
    warning = wait_for(lambda: FraudWarning.get_or_none(FraudWarning.id == made["id"]))
    assert (warning.order_id, warning.actionable, warning.fraud_type) == (
        order_id,
        True,
        "made_with_stolen_card",
    )
    assert "early fraud warning" in shipping_hold(order_id)
    assert Order.get_by_id(order_id).disputed is False  # a warning is not a dispute
    code, checks = _doctor(cli)
    assert code == 0 and checks["fraud warnings"]["warning"] is True
    assert "actionable" in cli("orders", "show", order_id).output

    refunded = cli("orders", "refund", order_id, "--yes")
    assert refunded.exit_code == 0, refunded.output
    wait_processed("radar.early_fraud_warning.updated")
    assert FraudWarning.get_by_id(made["id"]).actionable is False
    assert shipping_hold(order_id) is None
    notes = _notes(order_id)
    assert "actionable" in notes[0] and "no longer actionable" in notes[1]
    code, checks = _doctor(cli)  # the refund's history row is still the order's last move
    assert code == 0, checks
    assert checks["order stock"]["ok"] and not checks["fraud warnings"]["warning"]


def test_a_dispute_of_a_payment_intent_we_do_not_know_is_stored_unlinked(stripe_stack, cli):
    foreign = stripe_stack.stripe().v1.payment_intents.create(
        {"amount": 4200, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    opened = stripe_stack.control("POST", f"/payment_intents/{foreign.id}/dispute", json={})
    row = _dispute(opened["id"], funds_withdrawn_cents=4200)
    assert (row.order_id, row.payment_id, row.payment_intent_id) == (None, None, foreign.id)
    created = StripeEvent.get(StripeEvent.type == "charge.dispute.created")
    assert created.status == "IGNORED" and "stored unlinked" in created.last_error
    assert created.attempts == 1  # answered 200 once: no retry loop
    code, checks = _doctor(cli)
    assert code == 0 and checks["dispute links"]["warning"] is True
    assert foreign.id in checks["dispute links"]["detail"]
    table = cli("disputes", "list")
    assert table.exit_code == 0 and "unlinked" in table.output
    assert "not one of ours" in cli("disputes", "show", opened["id"]).output


def test_a_dispute_for_more_than_was_paid_is_stored_but_flagged(
    stripe_stack, settings, cli, monkeypatch
):
    order_id = _paid_order(stripe_stack, settings)["orderId"]
    opened = _open(stripe_stack, order_id, amount=1500, reason="product_not_received")
    row = _dispute(opened["id"], funds_withdrawn_cents=1500)
    assert row.problem == "disputed 1500 is more than the 1000 paid"
    assert Order.get_by_id(order_id).disputed is True
    code, checks = _doctor(cli)
    assert code == 0 and "more than the 1000 paid" in checks["dispute links"]["detail"]
    monkeypatch.setenv("COLUMNS", "80")
    for command in (("disputes", "list"), ("orders", "list"), ("disputes", "show", opened["id"])):
        output = cli(*command).output
        assert all(len(line.rstrip()) <= 80 for line in output.splitlines()), output
        assert "…" not in output
    assert "15.00 USD!" in cli("disputes", "list").output
    assert "PAID disputed" in cli("orders", "list").output


def test_events_sync_recovers_a_dispute_whose_webhooks_never_came(stripe_stack, settings, cli):
    order_id = _paid_order(stripe_stack, settings)["orderId"]
    stripe_stack.configure(webhooks_enabled=False)
    opened = _open(stripe_stack, order_id)
    assert Dispute.get_or_none(Dispute.id == opened["id"]) is None
    result = cli("events", "sync", "--since", "1h", "--json")
    assert result.exit_code == 0, result.output
    row = Dispute.get_by_id(opened["id"])
    assert (row.order_id, row.funds_withdrawn_cents) == (order_id, 1000)
    assert Order.get_by_id(order_id).disputed is True


def test_disputes_cli_refuses_bad_input_clearly(cli):
    empty = cli("disputes", "list")
    assert empty.exit_code == 0 and "0 dispute(s)" in empty.output
    unknown = cli("disputes", "show", "du_doesnotexist")
    assert unknown.exit_code == 1 and "no dispute id starts with du_doesnotexist" in unknown.output
    assert cli("disputes", "show", "du_abc").exit_code == 2  # too short a prefix
    assert cli("disputes", "show").exit_code == 2
    assert cli("disputes", "list", "--limit", "0").exit_code == 2
    assert cli("disputes", "list", "--json").output.strip() == "[]"


def test_migration_0010_adds_disputes_rolls_back_and_applies_again(fresh_database):  # noqa: F811
    from tests.test_indexes import runner_for

    runner = runner_for(fresh_database)
    runner.up("0010_disputes")
    tables = set(fresh_database.get_tables())
    assert {"dispute", "fraud_warning"} <= tables
    assert "disputed" in {c.name for c in fresh_database.get_columns("order")}
    assert runner.down() == ["0010_disputes"]
    assert not {"dispute", "fraud_warning"} & set(fresh_database.get_tables())
    assert "disputed" not in {c.name for c in fresh_database.get_columns("order")}
    assert runner.up("0010_disputes") == ["0010_disputes"]


def test_an_event_whose_dispute_object_is_malformed_is_kept_not_retried(cli, tmp_path):
    """A signed event can still carry an object we cannot read: stored IGNORED with the
    reason (never FAILED, which Stripe would retry for days), nothing else written."""
    event = {
        "id": "evt_malformed_dispute",
        "object": "event",
        "type": "charge.dispute.created",
        "created": int(time.time()),
        "data": {"object": {"id": "du_malformed", "object": "dispute", "status": "lost"}},
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    result = cli("events", "replay", "--file", str(path))
    assert result.exit_code == 0, result.output
    stored = StripeEvent.get_by_id("evt_malformed_dispute")
    assert (stored.status, stored.last_error) == (
        "IGNORED",
        "not a dispute object: no id, status or amount",
    )
    assert Dispute.select().count() == 0
