"""Nothing becomes PAID on Stripe's word alone (issue #15, item 1).

Each hole as it was found on main: a signed `checkout.session.completed` with
`amount_total: 1` for the order, one in another currency, one naming an unknown session
with only our `metadata.paymentId`, and a PaymentIntent whose amount or metadata
disagree, each marked the order PAID. Now the order does not move, the payment is
flagged for review with what arrived, the event is stored as processed with that
outcome, `orders show` shows it, `doctor` fails naming the order, and `payments
reconcile` lists it with the command that settles it.
"""

from __future__ import annotations

import json

import pytest

from shopctl.models import PaymentReview, StripeEvent
from shopctl.sandbox.shapes import new_id
from tests.orders_support import make_product, make_user, place
from tests.payments_support import buyer, history, payment_of, product, status_of
from tests.resilience_support import Checkout, intent_object, session_object, stripe_event
from tests.test_indexes import fresh_database  # noqa: F401  (fixture)
from tests.test_webhooks import deliver, paid_events


def _doctor(cli) -> dict:
    result = cli("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(result.output)["checks"]}
    return {"exit": result.exit_code, **checks}


def _forged(event: dict, event_id: str, **session_fields) -> dict:
    """The paid session's event, signed by us, with some of the session's fields changed."""
    obj = {**event["data"]["object"], **session_fields}
    return {**event, "id": event_id, "data": {"object": obj}}


def _assert_flagged(order_id: str, event_id: str, reason_part: str) -> PaymentReview:
    assert status_of(order_id) == "UNPAID"
    assert history(order_id) == [(None, "UNPAID")]
    row = StripeEvent.get_by_id(event_id)
    assert row.status == "PROCESSED", row.last_error
    assert row.last_error.startswith("flagged for review") and reason_part in row.last_error
    [review] = PaymentReview.select().where(PaymentReview.order == order_id)
    assert review.status == "OPEN" and reason_part in review.reason
    return review


@pytest.mark.parametrize(
    ("mutation", "reason_part"),
    [
        ({"amount_total": 1, "amount_subtotal": 1}, "amount 1 is not the order's 1250"),
        ({"currency": "eur"}, "currency eur is not the order's usd"),
        ({"id": "cs_test_unknown_session", "payment_intent": None}, "cs_test_unknown_session"),
        ({"metadata": {"paymentId": "[/]someone-else"}}, "metadata names payment [/]someone"),
    ],
    ids=["wrong-amount", "wrong-currency", "unknown-session", "other-payment"],
)
def test_a_signed_session_that_does_not_match_the_order_is_flagged_not_paid(
    stripe_stack, settings, cli, mutation, reason_part
):
    placed, _, events = paid_events(stripe_stack, settings)
    completed = events["checkout.session.completed"]
    forged = _forged(completed, "evt_forged_session", **mutation)
    if "id" in mutation:  # an unknown session that names only our payment
        forged["data"]["object"]["metadata"] = {"paymentId": placed["paymentId"]}
    response = deliver(stripe_stack.server, forged)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["result"] == "processed"
    review = _assert_flagged(placed["orderId"], "evt_forged_session", reason_part)
    arrived = forged["data"]["object"]
    assert (review.amount_cents, review.currency) == (arrived["amount_total"], arrived["currency"])
    assert review.session_id == arrived["id"] and review.event_id == "evt_forged_session"

    assert deliver(stripe_stack.server, forged).json()["data"]["result"] == "duplicate"
    shown = cli("orders", "show", placed["orderId"])
    assert "FLAGGED FOR REVIEW" in shown.output and reason_part in shown.output
    as_json = json.loads(cli("orders", "show", placed["orderId"], "--json").output)
    assert as_json["reviews"][0]["status"] == "OPEN"
    doctor = _doctor(cli)
    assert doctor["exit"] == 1 and doctor["payment checks"]["ok"] is False
    assert placed["orderId"] in doctor["payment checks"]["detail"]

    table = cli("payments", "reconcile")
    assert table.exit_code == 0 and "flagged" in table.output, table.output
    gaps = json.loads(cli("payments", "reconcile", "--json").output)
    [flagged] = [gap for gap in gaps if gap["kind"] == "flagged"]
    assert flagged["orderId"] == placed["orderId"]
    if review.payment_intent_id is None:  # nothing names money at Stripe: checked, dismissed
        assert flagged["fix"].startswith(f"shopctl payments settle {placed['orderId']} --dismiss")
        settle = ("--dismiss", "--note", "no such session at Stripe")
    else:  # the buyer paid the session at Stripe: the money we did not accept goes back
        assert flagged["fix"] == f"shopctl payments settle {placed['orderId']} --refund"
        settle = ("--refund",)
    settled = cli("payments", "settle", placed["orderId"], *settle, "--yes", "--json")
    assert settled.exit_code == 0, settled.output
    assert json.loads(settled.output)[0]["status"] in ("REFUNDED", "DISMISSED")
    intent = stripe_stack.stripe().v1.payment_intents.retrieve(
        payment_of(placed["orderId"]).payment_intent_id, {"expand": ["latest_charge"]}
    )
    assert intent.latest_charge.amount_refunded == (1250 if review.payment_intent_id else 0)
    assert _doctor(cli)["payment checks"]["ok"] is True
    assert payment_of(placed["orderId"]).refunded_cents == 0  # not a refund of the order


def test_the_real_events_still_pay_and_doctor_stays_green(stripe_stack, settings, cli):
    placed, _, events = paid_events(stripe_stack, settings)
    for event_type in ("payment_intent.succeeded", "checkout.session.completed"):
        assert deliver(stripe_stack.server, events[event_type]).status_code == 200
    assert status_of(placed["orderId"]) == "PAID"
    assert PaymentReview.select().count() == 0
    assert _doctor(cli)["exit"] == 0


def _checkout_for(settings, name: str = "Lamp") -> tuple[Checkout, str]:
    """An order for 12.50 whose session we recorded, its PaymentIntent not known yet."""
    from shopctl.services.payments.checkout import record_session

    shopper = make_user(f"{name.lower()}@example.com")
    order = place(settings, shopper, (make_product(name, price_cents=1250), 1))
    checkout = Checkout(
        order.id,
        order.payment.id,
        order.amount_cents,
        session_id=new_id("cs_test_"),
        intent_id=new_id("pi_"),
    )
    record_session(checkout.payment_id, {"id": checkout.session_id, "url": "http://x/pay"})
    return checkout, order.id


def test_currency_conversion_compares_the_source_amount_and_currency(server, settings):
    """Adaptive Pricing (before API 2025-03-31): `currency` is the buyer's, and
    `currency_conversion` holds what the order was created in."""
    checkout, order_id = _checkout_for(settings)
    session = session_object(checkout, "complete", "paid") | {
        "amount_total": 1150,
        "currency": "eur",
        "currency_conversion": {
            "amount_subtotal": 1250,
            "amount_total": 1250,
            "fx_rate": "0.92",
            "source_currency": "usd",
        },
    }
    assert deliver(server, stripe_event("checkout.session.completed", session)).status_code == 200
    assert status_of(order_id) == "PAID"

    other, other_id = _checkout_for(settings, "Vase")
    wrong = session_object(other, "complete", "paid") | {
        "currency_conversion": {"amount_total": 99, "source_currency": "usd"}
    }
    event = stripe_event("checkout.session.completed", wrong)
    deliver(server, event)
    _assert_flagged(other_id, event["id"], "amount 99")


@pytest.mark.parametrize(
    ("fields", "reason_part"),
    [
        ({"amount": 1}, "amount 1 is not the order's 1250"),
        ({"currency": "gbp"}, "currency gbp"),
        ({"metadata": {"paymentId": "PAYMENT", "orderId": "another-order"}}, "names order"),
    ],
    ids=["wrong-amount", "wrong-currency", "other-order"],
)
def test_a_payment_intent_is_adopted_only_when_its_amount_and_metadata_agree(
    server, settings, fields, reason_part
):
    checkout, order_id = _checkout_for(settings)
    intent = intent_object(checkout, "requires_payment_method") | fields
    if "metadata" in fields:
        intent["metadata"] = {**fields["metadata"], "paymentId": checkout.payment_id}
    # a declined first card: the event that would teach us the PaymentIntent
    assert deliver(server, stripe_event("payment_intent.payment_failed", intent)).status_code == 200
    assert payment_of(order_id).payment_intent_id is None
    succeeded = stripe_event("payment_intent.succeeded", {**intent, "status": "succeeded"})
    assert deliver(server, succeeded).status_code == 200
    _assert_flagged(order_id, succeeded["id"], reason_part)
    assert payment_of(order_id).payment_intent_id is None


def test_a_payment_intent_with_the_wrong_amount_is_flagged(server, settings, cli):
    checkout, order_id = _checkout_for(settings)
    intent = intent_object(checkout, "succeeded") | {"amount": 1}
    event = stripe_event("payment_intent.succeeded", intent)
    assert deliver(server, event).status_code == 200
    review = _assert_flagged(order_id, event["id"], "amount 1")
    assert review.payment_intent_id == checkout.intent_id
    assert payment_of(order_id).payment_intent_id is None  # not adopted
    # the right events still pay the order afterwards
    paid = session_object(checkout, "complete", "paid")
    assert deliver(server, stripe_event("checkout.session.completed", paid)).status_code == 200
    assert status_of(order_id) == "PAID"
    doctor = _doctor(cli)  # the flagged money is still to be settled
    assert doctor["exit"] == 1 and order_id in doctor["payment checks"]["detail"]
    refused = cli("payments", "settle", order_id, "--refund", "--yes")
    assert refused.exit_code == 1 and "accepted" in refused.output  # never the order's money
    dismissed = cli("payments", "settle", order_id, "--dismiss", "--note", "forged", "--yes")
    assert dismissed.exit_code == 0, dismissed.output
    assert _doctor(cli)["exit"] == 0


def test_replaying_a_forged_event_from_a_file_is_checked_too(stripe_stack, settings, cli, tmp_path):
    placed, _, events = paid_events(stripe_stack, settings)
    forged = _forged(events["checkout.session.completed"], "evt_forged_file", amount_total=5)
    exported = tmp_path / "event.json"
    exported.write_text(json.dumps(forged))
    result = cli("events", "replay", "--file", str(exported), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["result"] == "processed"
    _assert_flagged(placed["orderId"], "evt_forged_file", "amount 5")


def test_a_cancel_that_finds_a_mismatched_payment_flags_it_and_cancels(stripe_stack, settings, cli):
    """Cancel asks Stripe about the session first; a paid session that does not match the
    order (here the order's total no longer equals what the session charged) is flagged,
    and the cancel goes on: the order does not become PAID on it."""
    from shopctl.models import Order

    shopper = buyer(stripe_stack, settings)
    placed = shopper.order_now(product(quantity=3))
    stripe_stack.configure(webhooks_enabled=False)
    stripe_stack.pay(placed["sessionId"])
    Order.update(amount_cents=999).where(Order.id == placed["orderId"]).execute()
    result = cli("orders", "cancel", placed["orderId"], "--yes")
    assert result.exit_code == 0, result.output
    assert status_of(placed["orderId"]) == "CANCELED"
    [review] = PaymentReview.select().where(PaymentReview.order == placed["orderId"])
    assert "amount 1250 is not the order's 999" in review.reason
    assert _doctor(cli)["payment checks"]["ok"] is False


# --- known false alarms: Adaptive Pricing's PaymentIntent, a replaced session ---------------


def _adaptive(checkout: Checkout) -> tuple[dict, dict]:
    """A 12.50 USD order paid as 11.50 EUR with legacy Adaptive Pricing: the session keeps
    the order's money in `currency_conversion`, its PaymentIntent only the buyer's."""
    session = session_object(checkout, "complete", "paid") | {
        "amount_subtotal": 1150,
        "amount_total": 1150,
        "currency": "eur",
        "currency_conversion": {
            "amount_subtotal": 1250,
            "amount_total": 1250,
            "fx_rate": "0.92",
            "source_currency": "usd",
        },
    }
    intent = intent_object(checkout, "succeeded") | {"amount": 1150, "currency": "eur"}
    return stripe_event("checkout.session.completed", session), stripe_event(
        "payment_intent.succeeded", intent
    )


def _outcome(event: dict) -> str:
    row = StripeEvent.get_by_id(event["id"])
    assert row.status == "PROCESSED", row.last_error
    return row.last_error or ""


def test_adaptive_pricings_payment_intent_in_the_buyers_currency_is_no_false_alarm(
    server, settings, cli
):
    """Pins the false alarm: `payment_intent.succeeded` for 11.50 EUR, the PaymentIntent of
    a session that charged a 12.50 USD order in euros, was flagged for review. It is checked
    against what its session says the buyer was charged, in either order of the events."""
    first, first_id = _checkout_for(settings)
    session, intent = _adaptive(first)
    for event in (session, intent):
        assert deliver(server, event).status_code == 200
    assert status_of(first_id) == "PAID"
    assert "flagged" not in _outcome(intent)

    second, second_id = _checkout_for(settings, "Vase")
    session, intent = _adaptive(second)
    for event in (intent, session):  # the PaymentIntent first: its session is not known yet
        assert deliver(server, event).status_code == 200
    assert status_of(second_id) == "PAID"
    [review] = PaymentReview.select().where(PaymentReview.order == second_id)
    assert review.status == "DISMISSED" and second.session_id in review.note
    assert not PaymentReview.select().where(PaymentReview.status == "OPEN").exists()
    assert _doctor(cli)["exit"] == 0

    # The session's word covers its own charge only: another amount is still flagged.
    wrong = stripe_event(
        "payment_intent.succeeded",
        intent_object(first, "succeeded") | {"amount": 1149, "currency": "eur"},
    )
    deliver(server, wrong)
    assert "amount 1149" in _outcome(wrong)


def test_a_payment_on_a_session_the_order_replaced_pays_the_order(server, settings, cli):
    """Pins the false alarm: paying again (pay later, the old session about to expire) gives
    the order a new session; a payment that still lands on the old one was flagged as "not
    the order's session". Now a session we created for the order pays it; its PaymentIntent
    replaces the one a declined card on the new session had taught us, and the review that
    PaymentIntent raised before its session was known is closed."""
    from shopctl.services.payments.checkout import record_session

    old, order_id = _checkout_for(settings)
    new = Checkout(old.order_id, old.payment_id, old.amount)
    new.session_id, new.intent_id = new_id("cs_test_"), new_id("pi_")
    record_session(old.payment_id, {"id": new.session_id, "url": "http://x/pay-again"})
    declined = intent_object(new, "requires_payment_method")
    deliver(server, stripe_event("payment_intent.payment_failed", declined))
    assert payment_of(order_id).payment_intent_id == new.intent_id

    paid_intent = stripe_event("payment_intent.succeeded", intent_object(old, "succeeded"))
    deliver(server, paid_intent)  # its session is not known yet: flagged for now
    assert "is not the order's" in _outcome(paid_intent)
    paid = stripe_event("checkout.session.completed", session_object(old, "complete", "paid"))
    assert deliver(server, paid).status_code == 200
    assert "flagged" not in _outcome(paid)
    assert status_of(order_id) == "PAID"
    assert payment_of(order_id).payment_intent_id == old.intent_id
    assert not PaymentReview.select().where(PaymentReview.status == "OPEN").exists()
    assert _doctor(cli)["exit"] == 0

    # Money on the new session as well is a second payment: flagged, with its refund.
    twice = stripe_event("checkout.session.completed", session_object(new, "complete", "paid"))
    deliver(server, twice)
    assert f"PaymentIntent {new.intent_id} is not the order's {old.intent_id}" in _outcome(twice)


def test_a_late_payment_on_a_replaced_session_is_a_late_payment(server, settings):
    """The order expired meanwhile: the old session's payment re-reserves its stock."""
    from shopctl.services.payments.checkout import record_session
    from tests.test_webhooks import _expire_in_db

    old, order_id = _checkout_for(settings)
    record_session(old.payment_id, {"id": new_id("cs_test_"), "url": "http://x/pay-again"})
    _expire_in_db(order_id)
    paid = stripe_event("checkout.session.completed", session_object(old, "complete", "paid"))
    assert deliver(server, paid).status_code == 200
    assert status_of(order_id) == "PAID"
    assert history(order_id)[-1] == ("EXPIRED", "PAID")
    assert payment_of(order_id).late_outcome == "rereserved"
    assert not PaymentReview.select().exists()


def test_migration_0012_keeps_each_payments_session_and_goes_back(fresh_database):  # noqa: F811
    import uuid

    from shopctl.models import utcnow
    from tests.test_indexes import runner_for

    migration = "0012_checkout_sessions"
    runner = runner_for(fresh_database)
    runner.up([m.name for m in runner.status() if m.name < migration][-1])
    mark = "%s" if "Postgres" in type(fresh_database).__name__ else "?"
    ids = {name: str(uuid.uuid4()) for name in ("user", "order", "payment", "unstarted")}
    now = utcnow()
    statements = [
        (
            'INSERT INTO "user" (id, email, password_hash, role, is_deleted, created_at, '
            "updated_at) VALUES (?, 'old@example.com', 'x', 'USER', ?, ?, ?)",
            (ids["user"], False, now, now),
        ),
        *(
            (
                'INSERT INTO "order" (id, user_id, status, amount_cents, currency, pay_later, '
                "expires_at, stock_released, created_at, updated_at) "
                "VALUES (?, ?, 'UNPAID', 1000, 'usd', ?, ?, ?, ?, ?)",
                (order_id, ids["user"], False, now, False, now, now),
            )
            for order_id in (ids["order"], ids["unstarted"])
        ),
        *(
            (
                'INSERT INTO "payment" (id, order_id, status, amount_cents, currency, attempts, '
                "refunded_cents, session_id, created_at, updated_at) "
                "VALUES (?, ?, 'PENDING', 1000, 'usd', 0, 0, ?, ?, ?)",
                (payment_id, order_id, session_id, now, now),
            )
            for payment_id, order_id, session_id in (
                (ids["payment"], ids["order"], "cs_test_old"),
                (str(uuid.uuid4()), ids["unstarted"], None),
            )
        ),
    ]
    for sql, params in statements:
        fresh_database.execute_sql(sql.replace("?", mark), params)
    assert runner.up(migration) == [migration]
    rows = fresh_database.execute_sql(
        'SELECT "id", "payment_id", "payment_intent_id" FROM "checkout_session"'
    ).fetchall()
    assert rows == [("cs_test_old", ids["payment"], None)]
    assert runner.down() == [migration]
    assert "checkout_session" not in fresh_database.get_tables()
    assert runner.up(migration) == [migration]
