"""Refunds followed to their end (issue #15, item 3).

As found on main: a refund counted as done when Stripe's API answered, whatever its
status; `refund.created` was stored as "unhandled type"; a refund that failed later left
the order REFUNDED for ever; two operator refunds at once refunded 500 at Stripe while
shopctl recorded 300 (and two of the same amount shared one idempotency key).
"""

from __future__ import annotations

import json
import threading

from shopctl.commands.common import EXIT_STRIPE_UNREACHABLE
from shopctl.db import release_connection
from shopctl.errors import ShopError
from shopctl.models import Payment, Refund
from tests.payments_support import (
    history,
    payment_of,
    status_of,
    wait_for,
    wait_processed,
    wait_status,
)
from tests.test_indexes import fresh_database  # noqa: F401  (fixture)
from tests.test_payments_ops import _paid_order, _refunded_at_stripe


def _rows(order_id: str) -> list[tuple[int, str]]:
    query = Refund.select().where(Refund.order == order_id).order_by(Refund.created_at)
    return [(row.amount_cents, row.status) for row in query]


def _doctor_ok(cli) -> bool:
    return cli("doctor", "--json").exit_code == 0


def _api_refunds(stack, settings, order_id: str) -> list[dict]:
    from shopctl.models import User
    from tests.orders_support import bearer

    owner = User.get(User.email == "payer@example.com")
    response = stack.server.request("GET", f"/order/{order_id}", headers=bearer(settings, owner))
    assert response.status_code == 200, response.text
    return response.json()["data"]["refunds"]


def test_a_pending_refund_that_fails_puts_the_order_back_to_paid(stripe_stack, settings, cli):
    placed = _paid_order(stripe_stack, settings)
    order_id = placed["orderId"]
    stripe_stack.configure(refund_status="pending")
    result = cli("orders", "refund", order_id, "--yes", "--json")
    assert result.exit_code == 0, result.output
    refund = json.loads(result.output)
    assert refund["status"] == "PENDING" and refund["refundedCents"] == 1000
    assert status_of(order_id) == "REFUNDED"  # a pending refund counts as refunded
    [listed] = _api_refunds(stripe_stack, settings, order_id)
    assert (listed["stripeRefundId"], listed["amountCents"], listed["status"]) == (
        refund["refundId"],
        1000,
        "PENDING",
    )
    assert set(listed) >= {"id", "stripeRefundId", "amountCents", "status", "reason", "createdAt"}

    stripe_stack.control("POST", f"/refunds/{refund['refundId']}/fail")
    wait_status(order_id, "PAID")
    assert history(order_id)[-2:] == [("PAID", "REFUNDED"), ("REFUNDED", "PAID")]
    wait_for(lambda: _rows(order_id) == [(1000, "FAILED")], what="the refund row FAILED")
    assert payment_of(order_id).refunded_cents == 0 == _refunded_at_stripe(stripe_stack, order_id)
    wait_processed("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
    assert _doctor_ok(cli)

    stripe_stack.configure(refund_status="succeeded")  # refundable again, in full
    again = cli("orders", "refund", order_id, "--yes", "--json")
    assert again.exit_code == 0, again.output
    assert status_of(order_id) == "REFUNDED"
    assert _refunded_at_stripe(stripe_stack, order_id) == 1000
    wait_for(lambda: len(_rows(order_id)) == 2, what="two refund rows")
    assert sorted(_rows(order_id)) == [(1000, "FAILED"), (1000, "SUCCEEDED")]
    assert payment_of(order_id).refunded_cents == 1000
    shown = json.loads(cli("orders", "show", order_id, "--json").output)["refunds"]
    assert [(r["status"], r["failureReason"]) for r in shown] == [
        ("FAILED", "expired_or_canceled_card"),
        ("SUCCEEDED", None),
    ]
    assert "SUCCEEDED" in cli("orders", "show", order_id).output
    assert _doctor_ok(cli)


def test_a_dashboard_refund_that_fails_is_given_back(stripe_stack, settings):
    """No metadata of ours: matched by its PaymentIntent; a partial refund that fails."""
    placed = _paid_order(stripe_stack, settings)
    order_id = placed["orderId"]
    stripe_stack.configure(refund_status="pending")
    intent = payment_of(order_id).payment_intent_id
    dashboard = stripe_stack.stripe().v1.refunds.create({"payment_intent": intent, "amount": 400})
    wait_for(lambda: payment_of(order_id).refunded_cents == 400, what="pending refund counted")
    stripe_stack.control(
        "POST", f"/refunds/{dashboard.id}/fail", json={"failure_reason": "lost_or_stolen_card"}
    )
    wait_for(lambda: _rows(order_id) == [(400, "FAILED")], what="the refund row FAILED")
    wait_for(lambda: payment_of(order_id).refunded_cents == 0, what="amount given back")
    assert status_of(order_id) == "PAID"
    row = Refund.get(Refund.order == order_id)
    assert (row.stripe_refund_id, row.failure_reason) == (dashboard.id, "lost_or_stolen_card")


def _at_once(*calls):
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except ShopError as exc:
            results[index] = exc
        finally:
            release_connection()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_operator_refunds_at_once_record_what_stripe_holds(stripe_stack, settings, cli):
    """Each asks Stripe while the other does (latency), webhooks off: what shopctl records
    must equal what Stripe holds, from the operator refunds alone."""
    from dataclasses import replace

    from shopctl.services.payments.refunds import refund_order

    shop = replace(settings, stripe_api_base=stripe_stack.sandbox_url)
    placed = _paid_order(stripe_stack, settings)
    order_id = placed["orderId"]
    stripe_stack.configure(webhooks_enabled=False, latency_ms=300)
    results = _at_once(
        lambda: refund_order(shop, order_id, amount=300, actor="cli"),
        lambda: refund_order(shop, order_id, amount=300, actor="cli"),
    )
    assert all(isinstance(result, dict) for result in results), results
    assert len({result["refundId"] for result in results}) == 2
    assert _refunded_at_stripe(stripe_stack, order_id) == 600
    assert Payment.get(Payment.order == order_id).refunded_cents == 600
    assert _rows(order_id) == [(300, "SUCCEEDED"), (300, "SUCCEEDED")]

    results = _at_once(
        lambda: refund_order(shop, order_id, amount=300, actor="cli"),
        lambda: refund_order(shop, order_id, amount=300, actor="cli"),
    )
    refused = [result for result in results if isinstance(result, ShopError)]
    assert len(refused) == 1 and "between 1 and 100" in refused[0].message
    assert _refunded_at_stripe(stripe_stack, order_id) == 900
    assert Payment.get(Payment.order == order_id).refunded_cents == 900
    assert status_of(order_id) == "PAID"
    assert _doctor_ok(cli)


def test_migration_0005_turns_refunded_totals_into_rows_and_goes_back(fresh_database):  # noqa: F811
    """Payments refunded before refunds were rows keep their total, as one row each."""
    import uuid

    from shopctl.models import utcnow
    from tests.test_indexes import runner_for

    migration = "0005_refunds_and_review"
    runner = runner_for(fresh_database)
    runner.up("0004_product_fillfactor")
    mark = "%s" if "Postgres" in type(fresh_database).__name__ else "?"
    ids = {name: str(uuid.uuid4()) for name in ("user", "order", "payment")}
    now = utcnow()
    statements = [
        (
            'INSERT INTO "user" (id, email, password_hash, role, is_deleted, created_at, '
            "updated_at) VALUES (?, 'old@example.com', 'x', 'USER', ?, ?, ?)",
            (ids["user"], False, now, now),
        ),
        (
            'INSERT INTO "order" (id, user_id, status, amount_cents, currency, pay_later, '
            "expires_at, stock_released, created_at, updated_at) "
            "VALUES (?, ?, 'REFUNDED', 1000, 'usd', ?, ?, ?, ?, ?)",
            (ids["order"], ids["user"], False, now, False, now, now),
        ),
        (
            'INSERT INTO "payment" (id, order_id, status, amount_cents, currency, attempts, '
            "refunded_cents, created_at, updated_at) "
            "VALUES (?, ?, 'REFUNDED', 1000, 'usd', 0, 1000, ?, ?)",
            (ids["payment"], ids["order"], now, now),
        ),
    ]
    for sql, params in statements:
        fresh_database.execute_sql(sql.replace("?", mark), params)
    assert runner.up(migration) == [migration]
    rows = fresh_database.execute_sql(
        'SELECT "payment_id", "amount_cents", "status", "stripe_refund_id" FROM "refund"'
    ).fetchall()
    assert rows == [(ids["payment"], 1000, "SUCCEEDED", None)]
    assert runner.down() == [migration]
    assert not {"refund", "payment_review"} & set(fresh_database.get_tables())


def test_a_refund_whose_answer_was_lost_is_settled_by_reconcile(stripe_stack, settings, cli):
    """Stripe ran the refund but every answer was lost (three 500s): the row stays PENDING,
    reserved, so nobody refunds it twice; `reconcile --apply` asks again with the same
    idempotency key and records what Stripe did."""
    placed = _paid_order(stripe_stack, settings)
    order_id = placed["orderId"]
    stripe_stack.configure(webhooks_enabled=False, fail_next=3)
    lost = cli("orders", "refund", order_id, "--amount", "400", "--yes")
    assert lost.exit_code == EXIT_STRIPE_UNREACHABLE
    assert "stays PENDING" in " ".join(lost.output.split())
    assert _rows(order_id) == [(400, "PENDING")]
    assert payment_of(order_id).refunded_cents == 400 == _refunded_at_stripe(stripe_stack, order_id)
    too_much = cli("orders", "refund", order_id, "--amount", "700", "--yes")
    assert too_much.exit_code == 1 and "between 1 and 600" in " ".join(too_much.output.split())

    gaps = json.loads(cli("payments", "reconcile", "--json").output)
    assert [gap["kind"] for gap in gaps] == ["refund-unanswered"]
    applied = json.loads(cli("payments", "reconcile", "--apply", "--json").output)
    assert applied[0]["applied"] is True
    [row] = Refund.select().where(Refund.order == order_id)
    assert (row.status, row.amount_cents) == ("SUCCEEDED", 400) and row.stripe_refund_id
    assert _refunded_at_stripe(stripe_stack, order_id) == 400  # once, not twice
    assert json.loads(cli("payments", "reconcile", "--json").output) == []
    assert _doctor_ok(cli)


def test_a_refund_stripe_could_not_make_in_a_three_decimal_currency_is_refused(
    stripe_stack, settings, cli
):
    """Pins `orders refund --amount 505` of a KWD order reserving 505 and asking Stripe,
    which refunds KWD (and BHD, JOD, OMR, TND) only in steps of 10, the last digit 0."""
    from shopctl.models import Order

    placed = _paid_order(stripe_stack, settings)
    order_id = placed["orderId"]
    Order.update(currency="kwd").where(Order.id == order_id).execute()
    Payment.update(currency="kwd").where(Payment.order == order_id).execute()
    refused = cli("orders", "refund", order_id, "--amount", "505", "--yes")
    assert refused.exit_code == 1, refused.output
    said = " ".join(refused.output.split())
    assert "0.505 KWD" in said and "steps of 0.010 KWD" in said and "end in 0" in said
    assert _rows(order_id) == [] and payment_of(order_id).refunded_cents == 0
    assert _refunded_at_stripe(stripe_stack, order_id) == 0

    allowed = cli("orders", "refund", order_id, "--amount", "500", "--yes", "--json")
    assert allowed.exit_code == 0, allowed.output
    assert _rows(order_id) == [(500, "SUCCEEDED")]
    assert _refunded_at_stripe(stripe_stack, order_id) == 500
