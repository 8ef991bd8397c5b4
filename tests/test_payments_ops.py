"""The operator's payment tools: refunds, events list/show/replay, sync, reconcile."""

from __future__ import annotations

import json

from shopctl.models import Payment, Product, StockMovement, StripeEvent
from tests.orders_support import assert_ledger_consistent
from tests.payments_support import buyer, history, product, status_of, wait_for, wait_status
from tests.resilience_support import assert_orders_hold_what_their_status_says
from tests.test_webhooks import paid_events


def _paid_order(stack, settings, quantity: int = 1, email: str = "payer@example.com") -> dict:
    shopper = buyer(stack, settings, email)
    mug = product(f"Mug for {email}", quantity=5, price_cents=1000)
    placed = shopper.order_now(mug, quantity)
    stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    return placed


def _refunded_at_stripe(stack, order_id: str) -> int:
    intent = Payment.get(Payment.order == order_id).payment_intent_id
    charge = stack.stripe().v1.payment_intents.retrieve(intent, {"expand": ["latest_charge"]})
    return charge.latest_charge.amount_refunded


def test_partial_then_full_refund_through_the_cli(stripe_stack, settings, cli):
    placed = _paid_order(stripe_stack, settings, quantity=2)
    partial = cli("orders", "refund", placed["orderId"], "--amount", "500", "--yes", "--json")
    assert partial.exit_code == 0, partial.output
    assert json.loads(partial.output)["refundedCents"] == 500
    assert status_of(placed["orderId"]) == "PAID"
    rest = cli("orders", "refund", placed["orderId"], "--yes")
    assert rest.exit_code == 0, rest.output
    assert status_of(placed["orderId"]) == "REFUNDED"
    assert _refunded_at_stripe(stripe_stack, placed["orderId"]) == 2000
    wait_for(
        lambda: StripeEvent.select().where(StripeEvent.type == "charge.refunded").count() == 2,
        what="charge.refunded webhooks",
    )
    assert Payment.get(Payment.order == placed["orderId"]).refunded_cents == 2000
    again = cli("orders", "refund", placed["orderId"], "--yes")
    assert again.exit_code == 1 and "already" in again.output


def test_refund_is_refused_for_unpaid_orders_and_bad_amounts(stripe_stack, settings, cli):
    shopper, mug = buyer(stripe_stack, settings), product()
    unpaid = shopper.order_later(mug)
    assert cli("orders", "refund", unpaid["orderId"], "--yes").exit_code == 1
    paid = _paid_order(stripe_stack, settings)
    too_much = cli("orders", "refund", paid["orderId"], "--amount", "999999", "--yes")
    assert too_much.exit_code == 1
    assert cli("orders", "refund", paid["orderId"], "--amount", "0", "--yes").exit_code != 0
    assert _refunded_at_stripe(stripe_stack, paid["orderId"]) == 0


def test_dashboard_refund_without_our_metadata_is_matched(stripe_stack, settings, cli):
    placed = _paid_order(stripe_stack, settings)
    intent = Payment.get(Payment.order == placed["orderId"]).payment_intent_id
    stripe_stack.stripe().v1.refunds.create({"payment_intent": intent, "amount": 400})
    wait_for(
        lambda: Payment.get(Payment.order == placed["orderId"]).refunded_cents == 400,
        what="dashboard refund recorded",
    )
    [partial] = StripeEvent.select().where(StripeEvent.type == "charge.refunded")
    again = cli("events", "replay", partial.id, "--force", "--json")
    assert [o["result"] for o in json.loads(again.output)] == ["processed"], again.output
    assert Payment.get(Payment.order == placed["orderId"]).refunded_cents == 400
    stripe_stack.stripe().v1.refunds.create({"payment_intent": intent})
    wait_status(placed["orderId"], "REFUNDED")
    wait_for(
        lambda: (
            StripeEvent.select()
            .where((StripeEvent.type == "charge.refunded") & (StripeEvent.status == "PROCESSED"))
            .count()
            == 2
        ),
        what="both charge.refunded events processed",
    )
    ids = [row.id for row in StripeEvent.select().where(StripeEvent.type == "charge.refunded")]
    # A replay of every refund event, through the handler (--force: not refused as a
    # duplicate by its id), never double-counts: the total comes from amount_refunded.
    replayed = cli("events", "replay", *ids, "--force", "--json")
    assert replayed.exit_code == 0, replayed.output
    assert [o["result"] for o in json.loads(replayed.output)] == ["processed", "processed"]
    assert Payment.get(Payment.order == placed["orderId"]).refunded_cents == 1000
    assert status_of(placed["orderId"]) == "REFUNDED"
    assert history(placed["orderId"]).count(("PAID", "REFUNDED")) == 1


def test_events_list_show_and_dry_run_replay(stripe_stack, settings, cli, tmp_path):
    placed, _, events = paid_events(stripe_stack, settings)
    exported = tmp_path / "event.json"
    exported.write_text(json.dumps(events["checkout.session.completed"]))
    preview = cli("events", "replay", "--file", str(exported), "--dry-run", "--json")
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.output)[0]["result"] == "dry-run"
    assert any("PAID" in change for change in json.loads(preview.output)[0]["changes"])
    assert status_of(placed["orderId"]) == "UNPAID" and StripeEvent.select().count() == 0
    applied = cli("events", "replay", "--file", str(exported))
    assert applied.exit_code == 0 and status_of(placed["orderId"]) == "PAID"
    listing = json.loads(cli("events", "list", "--json").output)
    assert [row["source"] for row in listing] == ["replay"]
    shown = cli("events", "show", listing[0]["id"], "--json")
    assert json.loads(shown.output)["payload"]["type"] == "checkout.session.completed"
    assert cli("events", "show", "evt_missing").exit_code == 1


def test_replay_refuses_bad_files_and_flags(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"object": "charge"}')
    assert cli("events", "replay", "--file", str(bad)).exit_code == 2
    assert cli("events", "replay").exit_code == 2
    assert cli("events", "replay", "--file", str(tmp_path / "absent.json")).exit_code == 2
    assert cli("events", "list", "--status", "WEIRD").exit_code == 2


def test_events_sync_recovers_missed_webhooks(stripe_stack, settings, cli):
    placed, _, _ = paid_events(stripe_stack, settings)
    assert status_of(placed["orderId"]) == "UNPAID"
    result = cli("events", "sync", "--since", "1h", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["processed"] >= 2 and summary["failed"] == 0
    assert status_of(placed["orderId"]) == "PAID"
    resumed = json.loads(cli("events", "sync", "--json").output)
    assert resumed["processed"] == 0 and resumed["alreadyKnown"] >= 1
    assert StripeEvent.select().where(StripeEvent.source == "sync").count() >= 2


def test_reconcile_reports_then_applies(stripe_stack, settings, cli):
    placed, _, _ = paid_events(stripe_stack, settings)
    report = cli("payments", "reconcile", "--json")
    assert report.exit_code == 0, report.output
    gaps = json.loads(report.output)
    assert [gap["kind"] for gap in gaps] == ["paid-at-stripe"]
    assert "--apply" in gaps[0]["fix"] and status_of(placed["orderId"]) == "UNPAID"
    applied = cli("payments", "reconcile", "--apply", "--json")
    assert json.loads(applied.output)[0]["applied"] is True
    assert status_of(placed["orderId"]) == "PAID"
    assert json.loads(cli("payments", "reconcile", "--json").output) == []


def test_doctor_reports_failed_webhooks(stripe_stack, settings, cli):
    event = {
        "id": "evt_broken",
        "object": "event",
        "type": "checkout.session.completed",
        "created": 1,
        "data": {"object": {"id": "cs_x", "metadata": {"paymentId": 7}}},
    }
    StripeEvent.create(
        id=event["id"],
        type=event["type"],
        payload=json.dumps(event),
        status="FAILED",
        last_error="boom",
    )
    doctor = cli("doctor", "--json")
    assert doctor.exit_code == 1
    checks = {check["name"]: check for check in json.loads(doctor.output)["checks"]}
    assert checks["webhooks"]["ok"] is False


def _mug_stock(email: str = "payer@example.com") -> int:
    return Product.get(Product.name == f"Mug for {email}").quantity


def test_refunds_do_not_return_stock(stripe_stack, settings, cli):
    """README: a refunded order's goods may already have shipped, so neither an operator
    refund nor a Dashboard refund gives its units back; the ledger checks agree."""
    by_operator = _paid_order(stripe_stack, settings, quantity=2)
    by_dashboard = _paid_order(stripe_stack, settings, email="other@example.com")
    assert (_mug_stock(), _mug_stock("other@example.com")) == (3, 4)
    assert cli("orders", "refund", by_operator["orderId"], "--yes").exit_code == 0
    intent = Payment.get(Payment.order == by_dashboard["orderId"]).payment_intent_id
    stripe_stack.stripe().v1.refunds.create({"payment_intent": intent})
    wait_status(by_dashboard["orderId"], "REFUNDED")
    wait_for(
        lambda: (
            StripeEvent.select()
            .where((StripeEvent.type == "charge.refunded") & (StripeEvent.status == "PROCESSED"))
            .count()
            == 2
        ),
        what="both refunds' webhooks processed",
    )
    assert status_of(by_operator["orderId"]) == "REFUNDED"
    assert (_mug_stock(), _mug_stock("other@example.com")) == (3, 4)
    returned = StockMovement.select().where(
        StockMovement.delta > 0, StockMovement.order.is_null(False)
    )
    assert list(returned) == []
    assert_ledger_consistent()
    assert_orders_hold_what_their_status_says()


def test_reconcile_applies_a_dashboard_refund_whose_webhook_never_came(stripe_stack, settings, cli):
    placed = _paid_order(stripe_stack, settings)
    stripe_stack.configure(webhooks_enabled=False)  # the refund's webhook is never sent
    intent = Payment.get(Payment.order == placed["orderId"]).payment_intent_id
    stripe_stack.stripe().v1.refunds.create({"payment_intent": intent})  # no metadata
    assert status_of(placed["orderId"]) == "PAID"
    report = cli("payments", "reconcile", "--json")
    assert report.exit_code == 0, report.output
    [gap] = json.loads(report.output)
    assert gap["kind"] == "refunds-differ" and gap["applied"] is False, gap
    assert Payment.get(Payment.order == placed["orderId"]).refunded_cents == 0
    applied = cli("payments", "reconcile", "--apply", "--json")
    assert applied.exit_code == 0, applied.output
    assert [g["applied"] for g in json.loads(applied.output)] == [True]
    assert status_of(placed["orderId"]) == "REFUNDED"
    assert Payment.get(Payment.order == placed["orderId"]).refunded_cents == 1000
    assert _mug_stock() == 4  # refunds do not return stock
    assert StripeEvent.select().where(StripeEvent.type == "charge.refunded").count() == 0
    assert json.loads(cli("payments", "reconcile", "--json").output) == []
    assert_ledger_consistent()
