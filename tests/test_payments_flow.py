"""Paying through Stripe Checkout end to end: `shopctl serve` + `shopctl sandbox` + webhooks."""

from __future__ import annotations

from tests.orders_support import assert_ledger_consistent
from tests.payments_support import (
    buyer,
    history,
    payment_of,
    product,
    status_of,
    stock,
    wait_for,
    wait_status,
)


def test_pay_now_then_pay_at_stripe_marks_the_order_paid(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=5)
    placed = shopper.order_now(mug, 2)
    assert placed["paymentUrl"].startswith(stripe_stack.sandbox_url)
    assert placed["sessionId"].startswith("cs_test_")
    session = stripe_stack.stripe().v1.checkout.sessions.retrieve(placed["sessionId"])
    assert session.metadata["paymentId"] == placed["paymentId"]
    assert session.client_reference_id == placed["orderId"]
    assert session.customer_email == "buyer@example.com"
    assert session.amount_total == 2500
    stripe_stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    assert stock(mug) == 3
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "PAID")]
    status = shopper.get(f"/payment/{placed['paymentId']}/status").json()
    assert status["message"] == "Payment status"
    assert status["data"]["status"] == "PAID"
    assert_ledger_consistent()


def test_pay_later_then_pay_reuses_one_session(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product()
    placed = shopper.order_later(mug)
    assert placed["payLater"] is True and "paymentUrl" not in placed
    first = shopper.pay(placed["orderId"])
    again = shopper.pay(placed["orderId"])
    assert first["sessionId"] == again["sessionId"] and first["paymentUrl"] == again["paymentUrl"]
    stripe_stack.pay(first["sessionId"])
    wait_status(placed["orderId"], "PAID")
    paid_again = shopper.post(f"/order/{placed['orderId']}/pay")
    assert paid_again.status_code == 409


def test_decline_then_pay_in_the_same_session_ends_paid(stripe_stack, settings):
    """Regression: the Express API marked a declined order FAILED and ignored the later success."""
    shopper, mug = buyer(stripe_stack, settings), product(quantity=1)
    placed = shopper.order_now(mug)
    stripe_stack.pay(placed["sessionId"], "declined")
    wait_for(lambda: payment_of(placed["orderId"]).attempts == 1, what="decline recorded")
    assert status_of(placed["orderId"]) == "UNPAID"
    assert payment_of(placed["orderId"]).last_error
    stripe_stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    assert stock(mug) == 0
    assert_ledger_consistent()


def test_delayed_payment_goes_processing_then_paid(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=2)
    placed = shopper.order_now(mug)
    stripe_stack.pay(placed["sessionId"], "async_pending")
    wait_status(placed["orderId"], "PROCESSING")
    stripe_stack.pay(placed["sessionId"], "async_succeeded")
    wait_status(placed["orderId"], "PAID")
    assert history(placed["orderId"])[-2:] == [("UNPAID", "PROCESSING"), ("PROCESSING", "PAID")]
    assert stock(mug) == 1


def test_delayed_payment_failing_gives_the_stock_back(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=2)
    placed = shopper.order_now(mug, 2)
    stripe_stack.pay(placed["sessionId"], "async_pending")
    wait_status(placed["orderId"], "PROCESSING")
    stripe_stack.pay(placed["sessionId"], "async_failed")
    wait_status(placed["orderId"], "FAILED")
    assert stock(mug) == 2
    assert_ledger_consistent()


def test_session_expired_at_stripe_expires_the_order_and_frees_stock_once(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=3)
    placed = shopper.order_now(mug, 3)
    stripe_stack.control("POST", f"/sessions/{placed['sessionId']}/expire")
    wait_status(placed["orderId"], "EXPIRED")
    event_id = wait_for(lambda: _event_id("checkout.session.expired"), what="expired event")
    stripe_stack.control("POST", f"/events/{event_id}/resend")
    wait_for(lambda: _deliveries(stripe_stack, event_id) >= 2, what="redelivery")
    assert stock(mug) == 3
    assert history(placed["orderId"]) == [(None, "UNPAID"), ("UNPAID", "EXPIRED")]
    assert_ledger_consistent()


def test_buyer_cancel_expires_the_session_at_stripe(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=1)
    placed = shopper.order_now(mug)
    canceled = shopper.post(f"/order/{placed['orderId']}/cancel")
    assert canceled.status_code == 200, canceled.text
    session = stripe_stack.stripe().v1.checkout.sessions.retrieve(placed["sessionId"])
    assert session.status == "expired"
    assert stock(mug) == 1
    wait_for(lambda: _event_id("checkout.session.expired"), what="expired event")
    assert status_of(placed["orderId"]) == "CANCELED"


def test_cancel_after_the_buyer_paid_at_stripe_keeps_the_order_paid(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=1)
    stripe_stack.configure(webhooks_enabled=False)
    placed = shopper.order_now(mug)
    stripe_stack.pay(placed["sessionId"])
    refused = shopper.post(f"/order/{placed['orderId']}/cancel")
    assert refused.status_code == 409
    assert status_of(placed["orderId"]) == "PAID"
    assert stock(mug) == 0


def test_stripe_down_leaves_the_order_reserved_and_pay_retries(stripe_stack, settings):
    shopper, mug = buyer(stripe_stack, settings), product(quantity=1)
    stripe_stack.configure(fail_rate=1.0)
    placed = shopper.order_now(mug)
    assert placed["paymentUrl"] is None and "retry" in placed["message"]
    assert status_of(placed["orderId"]) == "UNPAID" and stock(mug) == 0
    assert payment_of(placed["orderId"]).last_error
    stripe_stack.configure(fail_rate=0.0)
    retried = shopper.pay(placed["orderId"])
    assert retried["paymentUrl"]
    stripe_stack.pay(retried["sessionId"])
    wait_status(placed["orderId"], "PAID")


def test_someone_elses_payment_is_not_found(stripe_stack, settings):
    owner, other, mug = buyer(stripe_stack, settings), None, product()
    other = buyer(stripe_stack, settings, "other@example.com")
    placed = owner.order_later(mug)
    assert other.get(f"/payment/{placed['paymentId']}/status").status_code == 404
    assert owner.get(f"/payment/{placed['paymentId']}/status").status_code == 200
    assert owner.get("/payment/not-a-uuid/status").status_code == 400


def _event_id(event_type: str) -> str | None:
    from shopctl.models import StripeEvent

    row = StripeEvent.get_or_none(StripeEvent.type == event_type)
    return row.id if row else None


def _deliveries(stack, event_id: str) -> int:
    return len(stack.control("GET", "/deliveries", params={"event_id": event_id})["data"])
