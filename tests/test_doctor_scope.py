"""doctor's stock checks read what changed since the last clean run and a sweep (issue 20),
so they cost the same at a million products: they must still find every problem they
found reading every row. Both databases."""

from __future__ import annotations

import json

import pytest

from shopctl.db import write_transaction
from shopctl.models import Order, Product, StockMovement, SyncCursor
from shopctl.services.catalog import ledger_scope
from shopctl.services.catalog.ledger import check_ledger
from shopctl.services.common import Report
from shopctl.services.orders import lifecycle
from tests.orders_support import make_product, make_user, place


@pytest.fixture
def shop(settings):
    products = [make_product(name, quantity=5) for name in ("Cup", "Mug", "Pen", "Pot")]
    orders = [place(settings, make_user(f"b{n}@example.com"), (products[n], 1)) for n in range(4)]
    return products, orders


@pytest.fixture
def small_sweep(monkeypatch):
    """A sweep of one row per run: four products take four runs to go round."""
    monkeypatch.setattr(ledger_scope, "SWEEP", 1)


def failures(full: bool = False) -> dict[str, str]:
    report = Report()
    check_ledger(report, full)
    return {check.name: check.detail for check in report.checks if not check.ok}


def runs_until_found(check: str, limit: int) -> int:
    for run in range(1, limit + 1):
        if check in failures():
            return run
    raise AssertionError(f"{check} not found in {limit} runs")


def test_a_clean_run_leaves_a_checkpoint_and_the_next_reads_what_changed_and_a_slice(
    settings, shop, small_sweep
):
    products, _ = shop
    assert failures() == {}  # no checkpoint yet: everything was read
    assert SyncCursor.get_by_id(ledger_scope.CHECKPOINT).value
    scope = ledger_scope.ledger_scope()
    first = min(p.id for p in products)
    # Nothing changed: only the sweep's slice, the first product.
    assert scope.products == ledger_scope.Part([], ["", first], False)
    later = place(settings, make_user("late@example.com"), (products[3], 2))
    scope = ledger_scope.ledger_scope()
    assert scope.products == ledger_scope.Part([products[3].id], ["", first], False)
    assert later.id in scope.orders.changed
    assert ledger_scope.ledger_scope(full=True).whole


def test_a_bad_movement_since_the_checkpoint_is_found_by_the_next_run(shop, small_sweep):
    products, _ = shop
    assert failures() == {}
    StockMovement.create(product=products[2].id, delta=3, reason="adjustment")
    assert "Pen: stock 4, movements 7" in failures()["stock ledger"]


def test_stock_changed_by_hand_is_found_within_one_sweep_and_again_until_fixed(shop, small_sweep):
    products, _ = shop
    assert failures() == {}
    Product.update(quantity=Product.quantity + 7).where(Product.id == products[1].id).execute()
    assert runs_until_found("stock ledger", len(products)) <= len(products)
    # A failed run saves no checkpoint: the next run reads the same slice and finds it again.
    assert "Mug: stock 11, movements 4" in failures()["stock ledger"]
    assert "Mug: stock 11, movements 4" in failures(full=True)["stock ledger"]


def test_doctor_full_finds_at_once_what_the_sweep_has_not_reached(shop, small_sweep, cli):
    products, _ = shop
    assert cli("doctor", "--json").exit_code == 0
    last = max(products, key=lambda p: p.id)
    Product.update(quantity=Product.quantity - 1).where(Product.id == last.id).execute()
    first = json.loads(cli("doctor", "--json").output)
    assert first["ok"]  # the sweep read the first product, not this one
    full = cli("doctor", "--full", "--json")
    assert full.exit_code == 1
    checks = {check["name"]: check for check in json.loads(full.output)["checks"]}
    assert f"{last.name}: stock 3, movements 4" in checks["stock ledger"]["detail"]


def test_a_status_moved_without_its_stock_is_found_by_the_next_run(shop, small_sweep):
    _, orders = shop
    assert failures() == {}
    with write_transaction():  # history is written, the stock is not given back
        locked = lifecycle.lock_order(orders[2].id)
        lifecycle.transition(locked, "EXPIRED", reason="by hand", actor="test")
    assert f"{orders[2].id} (EXPIRED): still holds stock" in failures()["order stock"]


def test_a_status_changed_by_hand_is_found_within_one_sweep(shop, small_sweep):
    _, orders = shop
    assert failures() == {}
    Order.update(status="CANCELED").where(Order.id == orders[1].id).execute()
    assert runs_until_found("order stock", len(orders)) <= len(orders)
    assert "still holds stock" in failures()["order stock"]


def test_a_shop_within_one_sweep_is_read_whole_every_run(shop):
    products, _ = shop
    assert failures() == {}
    assert ledger_scope.ledger_scope().products.open_end  # every product, in one range
    Product.update(quantity=0).where(Product.id == products[0].id).execute()
    assert "Cup: stock 0, movements 4" in failures()["stock ledger"]


def test_retention_counts_a_big_table_only_up_to_a_bound(settings, monkeypatch):
    from shopctl.models import StripeEvent
    from shopctl.services.system import retention

    for n in range(3):
        StripeEvent.create(id=f"evt_bound_{n}", type="checkout.session.completed", payload="{}")
    report = Report()
    retention.check_retention(settings, report)
    assert "3 rows" in {c.name: c.detail for c in report.checks}["stripe_event rows"]
    monkeypatch.setattr(retention, "COUNTED", 2)
    report = Report()
    retention.check_retention(settings, report)
    assert "over 2 rows" in {c.name: c.detail for c in report.checks}["stripe_event rows"]


def test_an_order_line_whose_movements_do_not_net_is_found_in_a_slice(shop, small_sweep):
    products, orders = shop
    assert failures() == {}
    StockMovement.create(product=products[0].id, delta=1, reason="canceled", order=orders[0].id)
    assert f"{orders[0].id} (UNPAID): movements net 0 for 1 ordered" in failures()["order stock"]


def test_stock_without_room_is_found_in_a_slice(shop):
    from shopctl.schemas import STOCK_COLUMN_MAX

    products, _ = shop
    assert failures() == {}  # the checkpoint is saved: the next run reads a slice
    assert not ledger_scope.ledger_scope().whole
    Product.update(quantity=STOCK_COLUMN_MAX).where(Product.id == products[0].id).execute()
    assert f"Cup: stock {STOCK_COLUMN_MAX:,} + 1 held" in failures()["stock room"]
