"""The life-cycle primitives payments and expiry build on: transition, release, re-reserve."""

from __future__ import annotations

import pytest

from shopctl.db import write_transaction
from shopctl.errors import Conflict
from shopctl.models import Order, OrderHistory, Payment, Product, StockMovement
from shopctl.services.catalog.ledger import check_ledger, order_stock_mismatches, stock_mismatches
from shopctl.services.common import Report
from shopctl.services.orders import lifecycle
from tests.orders_support import (
    assert_ledger_consistent,
    make_overdue,
    make_product,
    make_user,
    place,
    stock_of,
)
from tests.resilience_support import assert_orders_hold_what_their_status_says


@pytest.fixture
def products(db):
    return make_product("Mug", quantity=5), make_product("Pen", quantity=3)


@pytest.fixture
def order(settings, products):
    mug, pen = products
    return place(settings, make_user(), (mug, 2), (pen, 3))


def _history(order) -> list[tuple]:
    rows = OrderHistory.select().where(OrderHistory.order == order.id).order_by(OrderHistory.id)
    return [(row.from_status, row.to_status, row.reason, row.actor) for row in rows]


def test_transition_records_history_and_payment_status(order):
    with write_transaction():
        locked = lifecycle.lock_order(order.id)
        assert lifecycle.transition(
            locked, "PAID", reason="checkout completed", actor="evt_123", payment_status="PAID"
        )
    assert Order.get_by_id(order.id).status == "PAID"
    assert Payment.get(Payment.order == order.id).status == "PAID"
    assert _history(order) == [
        (None, "UNPAID", "created", "api"),
        ("UNPAID", "PAID", "checkout completed", "evt_123"),
    ]


def test_transition_to_the_same_status_writes_nothing(order):
    before = Order.get_by_id(order.id).updated_at
    with write_transaction():
        assert not lifecycle.transition(
            lifecycle.lock_order(order.id), "UNPAID", reason="again", actor="api"
        )
    assert Order.get_by_id(order.id).updated_at == before
    assert len(_history(order)) == 1


PAYMENT_PATHS = [
    ("UNPAID", "PAID"),
    ("UNPAID", "PROCESSING"),
    ("PROCESSING", "PAID"),
    ("PROCESSING", "FAILED"),
    ("UNPAID", "EXPIRED"),
    ("PAID", "REFUNDED"),
    ("EXPIRED", "PAID"),
    ("CANCELED", "PAID"),
    ("EXPIRED", "REFUNDED"),
    ("CANCELED", "REFUNDED"),
    ("REFUNDED", "PAID"),  # a refund that failed or was canceled (issue #15)
]


@pytest.mark.parametrize("path", PAYMENT_PATHS)
def test_every_transition_payments_rely_on_is_allowed(order, path):
    start, end = path
    Order.update(status=start).where(Order.id == order.id).execute()
    with write_transaction():
        assert lifecycle.transition(lifecycle.lock_order(order.id), end, reason="x", actor="evt")
    assert Order.get_by_id(order.id).status == end


@pytest.mark.parametrize(
    "path",
    [
        ("PAID", "UNPAID"),
        ("PAID", "EXPIRED"),
        ("REFUNDED", "UNPAID"),
        ("CANCELED", "UNPAID"),
        ("PROCESSING", "EXPIRED"),
    ],
)
def test_transitions_outside_the_table_are_refused(order, path):
    start, refused = path
    Order.update(status=start).where(Order.id == order.id).execute()
    with pytest.raises(Conflict, match=f"{start} and cannot become {refused}"), write_transaction():
        lifecycle.transition(lifecycle.lock_order(order.id), refused, reason="x", actor="api")
    assert Order.get_by_id(order.id).status == start
    assert len(_history(order)) == 1


def test_lock_order_of_an_unknown_id_is_none(db):
    with write_transaction():
        assert lifecycle.lock_order("00000000-0000-4000-8000-000000000000") is None


def test_stock_comes_back_once_however_often_it_is_released(order, products):
    mug, pen = products
    assert (stock_of(mug), stock_of(pen)) == (3, 0)
    with write_transaction():
        assert lifecycle.release_stock(lifecycle.lock_order(order.id), "canceled")
    with write_transaction():
        assert not lifecycle.release_stock(lifecycle.lock_order(order.id), "expired")
    assert (stock_of(mug), stock_of(pen)) == (5, 3)
    back = StockMovement.select().where(
        (StockMovement.order == order.id) & (StockMovement.delta > 0)
    )
    assert sorted((m.product_id, m.delta, m.reason) for m in back) == sorted(
        [(mug.id, 2, "canceled"), (pen.id, 3, "canceled")]
    )
    assert Order.get_by_id(order.id).stock_released


def test_rereserve_takes_the_stock_again_for_a_late_payment(order, products):
    with write_transaction():
        locked = lifecycle.lock_order(order.id)
        lifecycle.transition(locked, "EXPIRED", reason="reservation expired", actor="cron")
        lifecycle.release_stock(locked, "expired")
    with write_transaction():
        locked = lifecycle.lock_order(order.id)
        assert lifecycle.rereserve_stock(locked)
        lifecycle.transition(locked, "PAID", reason="late payment", actor="evt_late")
    mug, pen = products
    assert (stock_of(mug), stock_of(pen)) == (3, 0)
    reasons = [m.reason for m in StockMovement.select().where(StockMovement.order == order.id)]
    assert sorted(reasons) == [
        "expired",
        "expired",
        "late-payment",
        "late-payment",
        "order",
        "order",
    ]
    assert not Order.get_by_id(order.id).stock_released
    assert_ledger_consistent()


def test_rereserve_is_all_or_nothing(settings, order, products):
    with write_transaction():
        lifecycle.release_stock(lifecycle.lock_order(order.id), "canceled")
        Order.update(status="CANCELED").where(Order.id == order.id).execute()
    mug, pen = products
    place(settings, make_user("other@example.com"), (pen, 1))  # the pen is no longer all there
    with write_transaction():
        assert not lifecycle.rereserve_stock(lifecycle.lock_order(order.id))
    assert (stock_of(mug), stock_of(pen)) == (5, 2)
    assert Order.get_by_id(order.id).stock_released
    assert StockMovement.select().where(StockMovement.reason == "late-payment").count() == 0
    assert_ledger_consistent()


def test_rereserve_of_an_order_that_still_holds_its_stock_changes_nothing(order):
    with write_transaction():
        assert lifecycle.rereserve_stock(lifecycle.lock_order(order.id))
    assert StockMovement.select().count() == 4  # two initial, two for the order


# --- the ledger checks doctor runs ------------------------------------------------------


def _failed(report: Report) -> dict[str, str]:
    return {check.name: check.detail for check in report.checks if not check.ok}


def test_ledger_checks_pass_on_a_consistent_shop(order):
    report = Report()
    check_ledger(report)
    assert report.ok, report.checks


def test_ledger_sees_stock_changed_outside_the_ledger(order, products):
    mug = products[0]
    Product.update(quantity=Product.quantity + 7).where(Product.id == mug.id).execute()
    assert stock_mismatches() == [("Mug", 10, 3)]
    report = Report()
    check_ledger(report)
    assert "Mug: stock 10, movements 3" in _failed(report)["stock ledger"]


def test_ledger_sees_an_order_that_returned_its_stock_twice(order, products):
    with write_transaction():
        lifecycle.release_stock(lifecycle.lock_order(order.id), "canceled")
        Order.update(status="CANCELED").where(Order.id == order.id).execute()
    pen = products[1]
    StockMovement.create(product=pen.id, delta=3, reason="canceled", order=order.id)
    problems = order_stock_mismatches()
    assert problems == [(order.id, "CANCELED", "stock returned twice (net +3)")]


def test_ledger_sees_a_status_that_disagrees_with_the_stock_flag(order):
    Order.update(status="EXPIRED").where(Order.id == order.id).execute()
    assert order_stock_mismatches() == [(order.id, "EXPIRED", "still holds stock")]


def _refund(order_id: str, *, returning_stock: bool = False) -> None:
    with write_transaction():
        locked = lifecycle.lock_order(order_id)
        lifecycle.transition(locked, "REFUNDED", reason="refunded at Stripe", actor="evt_r")
        if returning_stock:  # what a refund must never do
            lifecycle.release_stock(locked, "refunded")


def test_ledger_sees_a_refund_that_returned_the_stock(order):
    """Refunds do not return stock: a REFUNDED order keeps what it held when PAID."""
    Order.update(status="PAID").where(Order.id == order.id).execute()
    _refund(order.id, returning_stock=True)
    assert stock_mismatches() == []  # the movements add up: only the status tells
    assert order_stock_mismatches() == [(order.id, "REFUNDED", "its refund returned the stock")]
    with pytest.raises(AssertionError, match="returned the stock"):
        assert_orders_hold_what_their_status_says()


def test_refunded_orders_keep_the_stock_they_had(settings, order, products):
    """Refunded from PAID: still held; a late payment refunded (its order had expired,
    the stock was gone): never held again. Both are consistent."""
    Order.update(status="PAID").where(Order.id == order.id).execute()
    _refund(order.id)
    late = place(settings, make_user("late@example.com"), (products[0], 1))
    with write_transaction():
        locked = lifecycle.lock_order(late.id)
        lifecycle.transition(locked, "EXPIRED", reason="reservation expired", actor="cron")
        lifecycle.release_stock(locked, "expired")
    _refund(late.id)
    assert order_stock_mismatches() == []
    assert_orders_hold_what_their_status_says()
    assert (stock_of(products[0]), stock_of(products[1])) == (3, 0)
    Order.update(stock_released=False).where(Order.id == late.id).execute()
    assert order_stock_mismatches() == [(late.id, "REFUNDED", "movements net 0 for 1 ordered")]


def test_ledger_flags_orders_the_cron_job_left_behind(order):
    make_overdue(order, minutes=90)
    report = Report()
    check_ledger(report)
    assert "1 unpaid order(s)" in _failed(report)["stuck orders"]


@pytest.fixture
def moves(monkeypatch):
    """A transition hook registered for this test only, as a higher layer would at start-up."""
    seen: list[tuple] = []
    monkeypatch.setattr(lifecycle, "TRANSITION_HOOKS", [])
    lifecycle.on_transition(lambda ids, old, new, actor: seen.append((list(ids), old, new, actor)))
    return seen


def test_registered_hooks_see_every_move_and_the_expiry_batch(settings, order, moves):
    from shopctl.services.orders.expiry import expire_overdue

    other = place(settings, make_user("other@example.com"), (Product.get(Product.name == "Mug"), 1))
    make_overdue(other)
    with write_transaction():
        lifecycle.transition(lifecycle.lock_order(order.id), "CANCELED", reason="x", actor="api")
    expire_overdue(settings)
    assert moves == [
        ([order.id], "UNPAID", "CANCELED", "api"),
        ([other.id], "UNPAID", "EXPIRED", "cron"),
    ]


def test_a_hook_that_fails_undoes_the_move(order, moves):
    def refuse(*_):
        raise RuntimeError("outbox unavailable")

    lifecycle.on_transition(refuse)
    with pytest.raises(RuntimeError), write_transaction():
        lifecycle.transition(lifecycle.lock_order(order.id), "CANCELED", reason="x", actor="api")
    assert Order.get_by_id(order.id).status == "UNPAID"
    assert len(_history(order)) == 1
