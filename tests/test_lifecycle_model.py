"""The order life cycle, model-checked: Hypothesis plays buyer, Stripe, operator and cron.

A `RuleBasedStateMachine` drives the services in-process (no HTTP): it places pay-now and
pay-later orders, lets buyers decline, pay, pay with a delayed method, or leave the session
to expire at Stripe; cancels, runs the expiry job, refunds (operator and Dashboard; a
Dashboard refund may stay pending and then fail at the bank), and
delivers the resulting Stripe events through `webhooks.ingest` in any order, twice,
concurrently, or as forced replays. Stripe events are built from the sandbox's object
shapes; PaymentIntents and refunds live in a real `shopctl sandbox`, so a late payment
whose stock is gone really gets refunded there.

After every step: stock + reserved + sold = stocked (and the ledger agrees), a PAID order
holds its goods, no payment is refunded beyond its amount, no event moved an order twice,
every history is a path of the SPEC diagram. At the end, with every event delivered, each
order says what Stripe knows: money kept → PAID, money returned → REFUNDED, none → neither.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, target
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shopctl.db import database, release_connection
from shopctl.errors import Conflict, PaymentProviderError, ShopError
from shopctl.models import ALL_MODELS, Order, OrderHistory, Payment, StripeEvent, utcnow
from shopctl.sandbox.shapes import new_id
from shopctl.services.orders import expiry
from shopctl.services.orders import placement as orders
from shopctl.services.orders.lifecycle import ALLOWED
from shopctl.services.payments import webhooks
from shopctl.services.payments.checkout import record_session
from shopctl.services.payments.refunds import refund_order
from tests.conftest import SANDBOX_KEY
from tests.orders_support import make_product, make_user, place
from tests.resilience_support import (
    PAID,
    REFUNDED,
    UNPAID,
    Checkout,
    assert_histories_are_spec_paths,
    assert_orders_hold_what_their_status_says,
    assert_refunds_within_amounts,
    assert_stock_adds_up,
    charge_object,
    declined_error,
    intent_object,
    running_sandbox,
    session_object,
    stripe_event,
)

STOCK = {"Mug": 3, "Lamp": 2}  # scarce, so late payments often find their stock gone

# Every (from, to) move the orders made, over all examples of a run: the test fails
# unless it covers the whole ALLOWED table (read at run time, so the table may grow).
EXERCISED: set[tuple[str, str]] = set()


# Moves an instrumented run reached rarely or never: late payments (re-reserved or
# refunded), a failed bank debit, in either delivery order, and money for a FAILED order.
DEEP = {
    ("PROCESSING", "FAILED"),
    ("UNPAID", "FAILED"),
    ("FAILED", "PAID"),
    ("FAILED", "REFUNDED"),
    ("EXPIRED", "PAID"),
    ("CANCELED", "PAID"),
    ("EXPIRED", "REFUNDED"),
    ("CANCELED", "REFUNDED"),
}


JOURNEYS = [
    ("bank debit", succeeds, first) for succeeds in (True, False) for first in (True, False)
]
JOURNEYS += [
    ("late payment", how, gone)
    for how in ("cancel", "expiry", "failed debit")
    for gone in (False, True)
]
# A full refund that stays pending at Stripe, then fails: its failure delivered after
# the refund (REFUNDED → PAID) or before it (the order never leaves PAID).
JOURNEYS += [("refund fails", failure_first, None) for failure_first in (False, True)]

# What a refund object's events are (charge.refunded carries the charge instead).
REFUND_EVENT_TYPES = ["refund.created", "refund.updated", "refund.failed", "charge.refund.updated"]


def required_transitions() -> set[tuple[str, str]]:
    return {(old, new) for old, targets in ALLOWED.items() for new in targets}


def _moves() -> set[tuple[str, str]]:
    rows = OrderHistory.select(OrderHistory.from_status, OrderHistory.to_status).where(
        OrderHistory.from_status.is_null(False) & OrderHistory.event.is_null()
    )
    return set(rows.distinct().tuples())


RESERVATION_MINUTES = (5, 30, 60)  # per order; the expiry job runs this far ahead


def _empty_tables() -> None:
    """Between examples: DELETE, children first (a few rows: 40x faster than TRUNCATE)."""
    with database.atomic():
        for model in reversed(ALL_MODELS):
            model.delete().execute()


def status(order_id: str) -> str:
    return Order.get_by_id(order_id).status


def _in_threads(*calls):
    """Run the calls at the same moment; re-raise the first failure."""
    errors, start = [], threading.Barrier(len(calls))

    def run(call):
        try:
            start.wait()
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            release_connection()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]


class LifeCycle(RuleBasedStateMachine):
    shop = None  # Settings wired to the sandbox; set by the test
    sandbox_url = ""
    control: httpx.Client  # the sandbox's /_sandbox controls, one connection for the run

    orders = Bundle("orders")

    def __init__(self):
        super().__init__()
        _empty_tables()
        self.control.post("/_sandbox/reset", json={}).raise_for_status()
        import stripe

        self.stripe = stripe.StripeClient(SANDBOX_KEY, base_addresses={"api": self.sandbox_url})
        self.buyer = make_user()
        self.products = [make_product(name, quantity=units) for name, units in STOCK.items()]
        self.stocked = {product.id: STOCK[product.name] for product in self.products}
        self.checkouts: dict[str, Checkout] = {}
        self.pending: list[dict] = []  # Stripe's events not yet delivered (any order)
        self.delivered: list[dict] = []
        self.seen_refunds: set[str] = set()
        self.newest_charge_refunded: str | None = None  # lists start after it
        self.pending_refunds: dict[str, Checkout] = {}  # refund id at Stripe → its checkout

    # --- helpers ------------------------------------------------------------------------

    def _where(self, test) -> list[Checkout]:
        return [c for c in self.checkouts.values() if test(c)]

    def _emit(self, event_type: str, obj: dict) -> None:
        self.pending.append(stripe_event(event_type, obj))

    def _open_session(self, checkout: Checkout) -> None:
        checkout.session_id, checkout.session = new_id("cs_test_"), "open"
        expires = int((datetime.now(UTC) + timedelta(minutes=31)).timestamp())
        record_session(
            checkout.payment_id,
            {
                "id": checkout.session_id,
                "url": f"{self.sandbox_url}/checkout/pay/x",
                "expires_at": expires,
                "payment_intent": None,
            },
        )

    def _ensure_intent(self, checkout: Checkout) -> None:
        """Stripe makes the PaymentIntent when the buyer first tries to pay."""
        if checkout.intent_id is None:
            intent = self.stripe.v1.payment_intents.create(
                {
                    "amount": checkout.amount,
                    "currency": checkout.currency,
                    "metadata": checkout.metadata,
                }
            )
            checkout.intent_id = intent.id

    def _capture(self, checkout: Checkout) -> None:
        self.stripe.v1.payment_intents.confirm(
            checkout.intent_id, {"payment_method": "pm_card_visa"}
        )
        checkout.captured = True
        self._emit("payment_intent.succeeded", intent_object(checkout, "succeeded"))
        self._emit("charge.succeeded", charge_object(checkout))

    def _ingest(self, event: dict) -> None:
        """One delivery. A Stripe refusal in a follow-up is a 5xx: Stripe retries later."""
        try:
            outcome = webhooks.ingest(self.shop, event, json.dumps(event), source="webhook")
        except webhooks.ProcessingFailed as exc:
            assert isinstance(exc.__cause__, PaymentProviderError), exc.__cause__
            self.pending.append(event)
            return
        assert outcome.result in ("processed", "ignored", "duplicate"), outcome
        self.delivered.append(event)

    def _collect_refunds(self) -> None:
        """Refunds made at Stripe (Dashboard, operator, late payments) send charge.refunded;
        a Dashboard refund's charge carries none of our metadata. Only the events newer
        than the last one seen are listed (the run lists after nearly every step)."""
        params = {"type": "charge.refunded", "limit": 100}
        if self.newest_charge_refunded:
            params["ending_before"] = self.newest_charge_refunded
        listing = self.stripe.v1.events.list(params)
        for event in reversed(listing.data):
            if event.id in self.seen_refunds:
                continue
            self.seen_refunds.add(event.id)
            self.newest_charge_refunded = event.id
            payload = event.to_dict()
            payload["data"]["object"]["metadata"] = {}
            charge = payload["data"]["object"]
            for checkout in self._where(lambda c, pi=charge["payment_intent"]: c.intent_id == pi):
                checkout.refunded = max(checkout.refunded, charge["amount_refunded"])
            self.pending.append(payload)

    def _collect_refund_events(self, refund_id: str) -> None:
        """The refund's own events (created; updated, failed), as Stripe sent them: called
        right after it is made or fails, so they are the newest refund events."""
        listing = self.stripe.v1.events.list({"types": REFUND_EVENT_TYPES, "limit": 5})
        for event in reversed(listing.data):
            if event.id in self.seen_refunds or event.data.object.id != refund_id:
                continue
            self.seen_refunds.add(event.id)
            self.pending.append(event.to_dict())

    def _set_refund_status(self, refund_status: str) -> None:
        answer = self.control.post("/_sandbox/config", json={"refund_status": refund_status})
        answer.raise_for_status()

    def _pending_refund(self, checkout: Checkout, amount: int) -> str:
        """A Dashboard refund that Stripe accepts as pending (the bank has not answered)."""
        self._set_refund_status("pending")
        try:
            refund = self.stripe.v1.refunds.create(
                {"payment_intent": checkout.intent_id, "amount": amount}
            )
        finally:
            self._set_refund_status("succeeded")
        assert refund.status == "pending", refund
        self.pending_refunds[refund.id] = checkout
        self._collect_refunds()
        self._collect_refund_events(refund.id)
        return refund.id

    def _fail_refund(self, refund_id: str) -> None:
        """The bank refuses the pending refund: Stripe gives its amount back to the charge."""
        checkout = self.pending_refunds.pop(refund_id)
        before = self._refunded_at_stripe(checkout)
        answer = self.control.post(f"/_sandbox/refunds/{refund_id}/fail", json={})
        answer.raise_for_status()
        failed = answer.json()
        assert failed["status"] == "failed", failed
        checkout.refunded = self._refunded_at_stripe(checkout)
        assert checkout.refunded == before - failed["amount"], (before, failed)
        self._collect_refund_events(refund_id)

    # --- buyers place orders and start checkouts ----------------------------------------

    @rule(
        target=orders,
        pay_later=st.booleans(),
        mugs=st.integers(0, 2),
        lamps=st.integers(0, 2),
        minutes=st.sampled_from(RESERVATION_MINUTES),
    )
    def place_order(self, pay_later, mugs, lamps, minutes):
        pairs = [(p, n) for p, n in zip(self.products, (mugs, lamps), strict=True) if n]
        shop = replace(self.shop, order_reservation_minutes=minutes)
        try:
            order = place(
                shop, self.buyer, *(pairs or [(self.products[0], 1)]), pay_later=pay_later
            )
        except Conflict as exc:
            assert "Not enough stock" in exc.message
            return multiple()
        checkout = Checkout(order.id, order.payment.id, order.amount_cents)
        self.checkouts[order.id] = checkout
        if not pay_later:
            self._open_session(checkout)
        return order.id

    @rule(order_id=orders)
    def pay_later_buyer_starts_checkout(self, order_id):
        checkout = self.checkouts[order_id]
        if checkout.session == "none" and status(order_id) == UNPAID:
            self._open_session(checkout)

    # --- what buyers do at Stripe ------------------------------------------------------

    def _open(self) -> list[Checkout]:
        return self._where(lambda c: c.session == "open")

    @precondition(lambda self: self._open())
    @rule(data=st.data())
    def buyer_card_is_declined(self, data):
        checkout = data.draw(st.sampled_from(self._open()))
        self._ensure_intent(checkout)
        self._emit(
            "payment_intent.payment_failed",
            intent_object(checkout, "requires_payment_method", last_payment_error=declined_error()),
        )

    @precondition(lambda self: self._open())
    @rule(data=st.data())
    def buyer_pays(self, data):
        checkout = data.draw(st.sampled_from(self._open()))
        self._ensure_intent(checkout)
        self._capture(checkout)
        checkout.session = "complete"
        self._emit("checkout.session.completed", session_object(checkout, "complete", "paid"))

    def _bank_debit(self, checkout: Checkout) -> None:
        self._ensure_intent(checkout)
        checkout.session = "processing"
        self._emit("payment_intent.processing", intent_object(checkout, "processing"))
        self._emit("checkout.session.completed", session_object(checkout, "complete", "unpaid"))

    def _settle(self, checkout: Checkout, succeeds: bool) -> None:
        checkout.session = "complete"
        if succeeds:
            self._capture(checkout)
            self._emit(
                "checkout.session.async_payment_succeeded",
                session_object(checkout, "complete", "paid"),
            )
            return
        checkout.session = "failed"  # complete at Stripe, its PaymentIntent unpaid again
        self._emit(
            "payment_intent.payment_failed",
            intent_object(checkout, "requires_payment_method", last_payment_error=declined_error()),
        )
        self._emit(
            "checkout.session.async_payment_failed", session_object(checkout, "complete", "unpaid")
        )

    @precondition(lambda self: self._open())
    @rule(data=st.data())
    def buyer_pays_by_bank_debit(self, data):
        self._bank_debit(data.draw(st.sampled_from(self._open())))

    @precondition(lambda self: self._where(lambda c: c.session == "processing"))
    @rule(data=st.data(), succeeds=st.booleans())
    def bank_debit_settles(self, data, succeeds):
        checkout = data.draw(st.sampled_from(self._where(lambda c: c.session == "processing")))
        self._settle(checkout, succeeds)

    # --- journeys: the deep paths of the table, each in one step, so every run reaches
    # them; their events are delivered in the order drawn, the other rules interleave.

    def _journey_order(self, units: int) -> tuple[Checkout, object]:
        product = make_product(f"Journey {len(self.stocked)}", quantity=units)
        self.stocked[product.id] = units
        order = place(self.shop, self.buyer, (product, 1), pay_later=False)
        checkout = Checkout(order.id, order.payment.id, order.amount_cents)
        self.checkouts[order.id] = checkout
        self._open_session(checkout)
        return checkout, product

    def _deliver_since(self, mark: int, reverse: bool = False) -> None:
        events = self.pending[mark:]
        del self.pending[mark:]
        for event in reversed(events) if reverse else events:
            self._ingest(event)
        self._collect_refunds()

    @initialize(journeys=st.permutations(JOURNEYS))
    def deep_paths_first(self, journeys):
        """Every example starts by walking each deep path once, in a drawn order; the
        rules then interleave with those orders too (refunds, replays, expiry)."""
        for kind, first, second in journeys:
            if kind == "bank debit":
                self._journey_bank_debit(first, second)
            elif kind == "late payment":
                self._journey_late_payment(first, second)
            else:
                self._journey_refund_fails(failure_first=first)

    def _journey_bank_debit(self, succeeds: bool, settled_first: bool) -> None:
        """PROCESSING → PAID / FAILED; or, the settlement overtaking the completion,
        UNPAID → PAID / FAILED straight away."""
        checkout, _ = self._journey_order(2)
        mark = len(self.pending)
        self._bank_debit(checkout)
        self._settle(checkout, succeeds)
        self._deliver_since(mark, reverse=settled_first)

    def _journey_late_payment(self, how: str, stock_gone: bool) -> None:
        """Money for a CANCELED / EXPIRED / FAILED order: PAID again if its stock is still
        there, REFUNDED at Stripe if another buyer took it meanwhile."""
        checkout, product = self._journey_order(1)
        order_id = checkout.order_id
        if how == "cancel":
            orders.cancel_order(order_id, user=None, actor="cli")
        elif how == "expiry":
            later = Order.get_by_id(order_id).expires_at + timedelta(seconds=1)
            assert expiry.expire_overdue(self.shop, now=later).ok
        else:
            mark = len(self.pending)
            self._bank_debit(checkout)
            self._settle(checkout, succeeds=False)
            self._deliver_since(mark)
        assert status(order_id) in ("CANCELED", "EXPIRED", "FAILED"), status(order_id)
        if stock_gone:
            other = place(self.shop, self.buyer, (product, 1))
            self.checkouts[other.id] = Checkout(other.id, other.payment.id, other.amount_cents)
        mark = len(self.pending)
        if how == "failed debit":
            checkout.session = "complete"
            self._capture(checkout)
        else:
            self._ensure_intent(checkout)
            self._capture(checkout)
            checkout.session = "complete"
            self._emit("checkout.session.completed", session_object(checkout, "complete", "paid"))
        self._deliver_since(mark)

    def _journey_refund_fails(self, failure_first: bool) -> None:
        """PAID → REFUNDED by a full refund still pending at Stripe, → PAID when it fails;
        or, the failure overtaking the refund, PAID all along."""
        checkout, _ = self._journey_order(1)
        mark = len(self.pending)
        self._ensure_intent(checkout)
        self._capture(checkout)
        checkout.session = "complete"
        self._emit("checkout.session.completed", session_object(checkout, "complete", "paid"))
        self._deliver_since(mark)
        assert status(checkout.order_id) == PAID
        mark = len(self.pending)
        refund_id = self._pending_refund(checkout, checkout.amount)
        if not failure_first:
            self._deliver_since(mark)
            assert status(checkout.order_id) == REFUNDED
            mark = len(self.pending)
        self._fail_refund(refund_id)
        self._deliver_since(mark, reverse=failure_first)
        assert status(checkout.order_id) == PAID

    @precondition(lambda self: self._where(lambda c: c.session == "failed"))
    @rule(data=st.data())
    def failed_debit_is_paid_another_way(self, data):
        """The PaymentIntent of a failed bank debit went back to requires_payment_method,
        and the buyer pays it after all (another method): money for a FAILED order."""
        checkout = data.draw(st.sampled_from(self._where(lambda c: c.session == "failed")))
        checkout.session = "complete"
        self._capture(checkout)

    @precondition(lambda self: self._open())
    @rule(data=st.data())
    def session_expires_at_stripe(self, data):
        checkout = data.draw(st.sampled_from(self._open()))
        checkout.session = "expired"
        if checkout.intent_id:
            self._emit("payment_intent.canceled", intent_object(checkout, "canceled"))
        self._emit("checkout.session.expired", session_object(checkout, "expired", "unpaid"))

    def _refundable(self) -> list[Checkout]:
        return self._where(lambda c: c.captured and c.refunded < c.amount)

    @precondition(lambda self: self._refundable())
    @rule(data=st.data(), full=st.booleans())
    def merchant_refunds_in_the_dashboard(self, data, full):
        checkout = data.draw(st.sampled_from(self._refundable()))
        left = checkout.amount - checkout.refunded
        self.stripe.v1.refunds.create(
            {"payment_intent": checkout.intent_id, "amount": left if full else max(1, left // 2)}
        )
        self._collect_refunds()

    @precondition(lambda self: self._refundable())
    @rule(data=st.data(), full=st.booleans())
    def merchant_refund_stays_pending(self, data, full):
        checkout = data.draw(st.sampled_from(self._refundable()))
        left = checkout.amount - checkout.refunded
        self._pending_refund(checkout, left if full else max(1, left // 2))

    @precondition(lambda self: self.pending_refunds)
    @rule(data=st.data())
    def pending_refund_fails_at_the_bank(self, data):
        self._fail_refund(data.draw(st.sampled_from(sorted(self.pending_refunds))))

    # --- what we do: operator, cron ----------------------------------------------------

    @precondition(lambda self: self.checkouts)
    @rule(data=st.data())
    def operator_cancels(self, data):
        order_id = data.draw(st.sampled_from(list(self.checkouts)))
        before = status(order_id)
        try:
            orders.cancel_order(order_id, user=None, actor="cli")
        except Conflict:
            assert before != UNPAID
            return
        assert before == UNPAID and status(order_id) == "CANCELED"

    @rule(minutes=st.sampled_from(RESERVATION_MINUTES))
    def expiry_job_runs_later(self, minutes):
        later = utcnow() + timedelta(minutes=minutes, seconds=30)
        overdue = Order.select().where((Order.status == UNPAID) & (Order.expires_at < later))
        expected = {order.id for order in overdue}
        summary = expiry.expire_overdue(self.shop, now=later)
        assert summary.ok and summary.expired == len(expected), summary
        assert all(status(order_id) == "EXPIRED" for order_id in expected)

    def _refunded_at_stripe(self, checkout: Checkout) -> int:
        intent = self.stripe.v1.payment_intents.retrieve(
            checkout.intent_id, {"expand": ["latest_charge"]}
        )
        return intent.latest_charge.amount_refunded if intent.latest_charge else 0

    @precondition(lambda self: self._refundable())
    @rule(data=st.data(), full=st.booleans())
    def operator_refunds(self, data, full):
        """A refund either happened (at Stripe, for the amount, and recorded) or was refused
        for a reason that holds, with nothing refunded: never a refusal taken as success."""
        checkout = data.draw(st.sampled_from(self._refundable()))
        payment = Payment.get(Payment.order == checkout.order_id)
        left = payment.amount_cents - payment.refunded_cents
        amount = left if full else max(1, left // 2)
        at_stripe = self._refunded_at_stripe(checkout)
        before = status(checkout.order_id)
        try:
            result = refund_order(
                self.shop, checkout.order_id, amount=None if full else amount, actor="cli"
            )
        except PaymentProviderError as exc:  # Stripe refused: it has less left than we think
            assert before == PAID and amount > checkout.amount - at_stripe, exc.message
            assert self._refunded_at_stripe(checkout) == at_stripe
        except ShopError as exc:  # we refused: not PAID, or no PaymentIntent known yet
            assert before != PAID or not payment.payment_intent_id, exc.message
            assert self._refunded_at_stripe(checkout) == at_stripe
        else:
            assert before == PAID and result["amountCents"] == amount, result
            assert self._refunded_at_stripe(checkout) == at_stripe + amount
            recorded = Payment.get(Payment.order == checkout.order_id).refunded_cents
            assert recorded >= payment.refunded_cents + amount, (recorded, payment.refunded_cents)
        self._collect_refunds()

    # --- Stripe delivers: in any order, twice, at once; operators replay ---------------

    def _take(self, data) -> dict:
        """Any pending event: Stripe may deliver them in any order (refunds included)."""
        return self.pending.pop(data.draw(st.sampled_from(range(len(self.pending)))))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def stripe_delivers_an_event(self, data):
        self._ingest(self._take(data))
        self._collect_refunds()

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), same_event=st.booleans())
    def stripe_delivers_two_at_once(self, data, same_event):
        first = second = self._take(data)
        if not same_event and self.pending:
            second = self._take(data)
        _in_threads(lambda: self._ingest(first), lambda: self._ingest(second))
        self._collect_refunds()

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def stripe_retries_a_delivered_event(self, data):
        event = self.delivered[data.draw(st.integers(0, len(self.delivered) - 1))]
        outcome = webhooks.ingest(self.shop, event, json.dumps(event), source="webhook")
        assert outcome.result == "duplicate", outcome

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def operator_force_replays(self, data):
        event = self.delivered[data.draw(st.integers(0, len(self.delivered) - 1))]
        [outcome] = webhooks.replay(self.shop, [event["id"]], force=True)
        if outcome.result == "failed":  # a refund Stripe refused: left FAILED for a retry
            assert outcome.detail.startswith("Stripe refused"), outcome
            self.delivered.remove(event)
            self.pending.append(event)
        else:
            assert outcome.result in ("processed", "ignored"), outcome
        self._collect_refunds()

    # --- invariants, after every step --------------------------------------------------

    @invariant()
    def stock_adds_up_and_the_ledger_agrees(self):
        assert_stock_adds_up(self.stocked)

    @invariant()
    def statuses_hold_their_goods(self):
        assert_orders_hold_what_their_status_says()

    @invariant()
    def never_refunded_beyond_the_amount(self):
        assert_refunds_within_amounts()

    @invariant()
    def histories_are_spec_paths_with_no_double_apply(self):
        assert_histories_are_spec_paths()

    # --- the end: everything delivered, every order agrees with Stripe -----------------

    def teardown(self):
        moves = _moves()
        EXERCISED.update(moves)
        # Steer generation toward examples that reach more of the table, deep moves most.
        target(float(len(moves)), label="distinct transitions")
        target(float(len(moves & DEEP)), label="deep transitions")
        for _ in range(50):
            if not self.pending:
                break
            self._ingest(self.pending.pop(0))
            self._collect_refunds()
        assert not self.pending, "events still failing after every retry"
        for checkout in self.checkouts.values():
            self._agrees_with_stripe(checkout)
        assert StripeEvent.select().where(StripeEvent.status == "FAILED").count() == 0
        EXERCISED.update(_moves())

    def _agrees_with_stripe(self, checkout: Checkout) -> None:
        order = Order.get_by_id(checkout.order_id)
        payment = Payment.get(Payment.order == order.id)
        where = f"order {order.id} ({order.status}), Stripe: {checkout}"
        assert payment.refunded_cents == checkout.refunded, where
        if checkout.captured and checkout.refunded >= checkout.amount:
            assert order.status == REFUNDED, where
        elif checkout.captured:
            assert order.status == PAID, where
        else:
            assert order.status not in (PAID, REFUNDED), where


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory):
    with running_sandbox(tmp_path_factory.mktemp("model-sandbox")) as url:
        yield url


@pytest.mark.slow
def test_order_life_cycle_keeps_every_unit_and_cent(settings, sandbox_url):
    LifeCycle.shop = replace(settings, stripe_api_base=sandbox_url)
    LifeCycle.sandbox_url = sandbox_url
    budget = settings_for_ci()
    EXERCISED.clear()
    with httpx.Client(base_url=sandbox_url, timeout=10) as control:
        LifeCycle.control = control
        run_state_machine_as_test(LifeCycle, settings=budget)
    missing = required_transitions() - EXERCISED
    assert not missing, f"the model never made these moves of ALLOWED: {sorted(missing)}"


def settings_for_ci():
    """25 runs of 20 steps fit CI; SHOPCTL_MODEL_EXAMPLES=500 explores deeper locally."""
    examples = int(os.environ.get("SHOPCTL_MODEL_EXAMPLES", "25"))
    return hypothesis_settings(
        max_examples=examples,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        print_blob=True,
    )


# --- refunds that overtake their payment's events (regressions the model found) --------


def _paid_then_refunded_at_stripe(settings, *, decline_first: bool) -> tuple[Checkout, list]:
    """A pay-now order paid at Stripe and refunded in full in the Dashboard, and the
    events Stripe sends, in the order they arrive here: the refund first."""
    order = place(settings, make_user(), (make_product("Mug", quantity=2), 1), pay_later=False)
    checkout = Checkout(
        order.id,
        order.payment.id,
        order.amount_cents,
        session_id=new_id("cs_test_"),
        intent_id=new_id("pi_"),
    )
    record_session(checkout.payment_id, {"id": checkout.session_id, "url": None})
    refunded = charge_object(checkout) | {
        "amount_refunded": checkout.amount,
        "refunded": True,
        "metadata": {},
    }  # Dashboard refunds carry none
    events = [
        stripe_event("charge.refunded", refunded),
        stripe_event("payment_intent.succeeded", intent_object(checkout, "succeeded")),
        stripe_event("checkout.session.completed", session_object(checkout, "complete", "paid")),
    ]
    if decline_first:  # the buyer's first card was declined: that event told us the intent
        events.insert(
            0,
            stripe_event(
                "payment_intent.payment_failed",
                intent_object(
                    checkout, "requires_payment_method", last_payment_error=declined_error()
                ),
            ),
        )
    return checkout, events


def _deliver_all(settings, events) -> None:
    for event in events:
        webhooks.ingest(settings, event, json.dumps(event), source="webhook")


def test_a_refund_that_arrives_before_the_payment_is_not_lost(settings):
    checkout, events = _paid_then_refunded_at_stripe(settings, decline_first=False)
    _deliver_all(settings, events)
    payment = Payment.get_by_id(checkout.payment_id)
    assert (status(checkout.order_id), payment.refunded_cents) == (REFUNDED, checkout.amount)


def test_a_payment_applied_after_its_full_refund_ends_refunded(settings):
    checkout, events = _paid_then_refunded_at_stripe(settings, decline_first=True)
    _deliver_all(settings, events)
    payment = Payment.get_by_id(checkout.payment_id)
    assert payment.refunded_cents == checkout.amount
    assert status(checkout.order_id) == REFUNDED
