"""`shopctl orders list / show / cancel / expire`, the expiry service and doctor's ledger checks."""

from __future__ import annotations

import json
import time

import pytest

from shopctl.models import Order, OrderHistory, Payment, StockMovement
from shopctl.services.orders.expiry import Verdict, expire_overdue
from tests.orders_support import (
    assert_ledger_consistent,
    bearer,
    lines,
    make_overdue,
    make_product,
    make_user,
    place,
    stock_of,
)


@pytest.fixture
def shop(settings):
    """A buyer with two orders of a mug: one UNPAID and overdue, one UNPAID and running."""
    buyer = make_user("buyer@example.com")
    mug = make_product("Mug", quantity=10)
    overdue, running = place(settings, buyer, (mug, 2)), place(settings, buyer, (mug, 3))
    make_overdue(overdue)
    return buyer, mug, overdue, running


# --- list and show ------------------------------------------------------------------------


def test_list_shows_a_table_and_json(cli, shop, monkeypatch):
    _, _, overdue, running = shop
    monkeypatch.setenv("COLUMNS", "200")
    table = cli("orders", "list")
    assert table.exit_code == 0, table.output
    assert "buyer@example.com" in table.output and "2 order(s)" in table.output
    rows = json.loads(cli("orders", "list", "--json").output)
    assert {row["id"] for row in rows} == {overdue.id, running.id}
    assert rows[0]["lines"] == 1 and rows[0]["amountCents"] == rows[0]["lines"] * 1250 * 3


def test_list_filters_by_status_buyer_and_time(cli, shop, settings):
    _, mug, overdue, _ = shop
    Order.update(status="PAID").where(Order.id == overdue.id).execute()
    place(settings, make_user("other@example.com"), (mug, 1))

    def ids(*args):
        result = cli("orders", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json.loads(result.output)]

    assert ids("--status", "paid") == [overdue.id]
    assert len(ids("--user", "BUYER@example.com")) == 2
    assert len(ids("--user", overdue.user_id)) == 2
    assert len(ids("--since", "1h")) == 3 and ids("--since", "2999-01-01") == []
    assert len(ids("--limit", "1")) == 1


@pytest.mark.parametrize("args", [("--status", "LOST"), ("--since", "yesterday"), ("--limit", "0")])
def test_list_refuses_bad_filters_with_exit_2(cli, db, args):
    result = cli("orders", "list", *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_show_prints_items_payment_and_history(cli, shop, monkeypatch):
    _, _, overdue, _ = shop
    monkeypatch.setenv("COLUMNS", "200")
    Payment.update(session_id="cs_test_123", payment_intent_id="pi_123").where(
        Payment.order == overdue.id
    ).execute()
    text = cli("orders", "show", overdue.id)
    assert text.exit_code == 0, text.output
    assert "cs_test_123" in text.output and "pi_123" in text.output and "Mug" in text.output
    details = json.loads(cli("orders", "show", overdue.id, "--json").output)
    assert details["payment"]["sessionId"] == "cs_test_123"
    assert details["history"][0] | {"at": None} == {
        "at": None,
        "from": None,
        "to": "UNPAID",
        "reason": "created",
        "actor": "api",
    }
    assert details["userEmail"] == "buyer@example.com" and details["stockReleased"] is False


def test_show_an_unknown_order_exits_1_and_a_malformed_id_2(cli, db):
    assert cli("orders", "show", "00000000-0000-4000-8000-000000000000").exit_code == 1
    assert cli("orders", "show", "nope").exit_code == 2


# --- cancel -------------------------------------------------------------------------------


def test_cancel_with_yes_returns_the_stock(cli, shop):
    _, mug, _, running = shop
    result = cli("orders", "cancel", running.id, "--yes")
    assert result.exit_code == 0, result.output
    assert "3 unit(s) back in stock" in result.output
    assert Order.get_by_id(running.id).status == "CANCELED" and stock_of(mug) == 8
    last = OrderHistory.select().order_by(OrderHistory.id.desc()).get()
    assert (last.actor, last.reason) == ("cli", "canceled by the operator")
    assert_ledger_consistent()


def test_cancel_without_confirmation_changes_nothing(cli, shop):
    _, mug, _, running = shop
    result = cli("orders", "cancel", running.id)
    assert result.exit_code == 1 and "--yes" in result.output
    assert Order.get_by_id(running.id).status == "UNPAID" and stock_of(mug) == 5


def test_cancel_a_paid_order_exits_1(cli, shop):
    _, mug, _, running = shop
    Order.update(status="PAID").where(Order.id == running.id).execute()
    result = cli("orders", "cancel", running.id, "--yes")
    assert result.exit_code == 1 and "PAID" in result.output
    assert stock_of(mug) == 5


# --- expire -------------------------------------------------------------------------------


def test_expire_dry_run_counts_and_changes_nothing(cli, shop):
    _, mug, overdue, _ = shop
    result = cli("orders", "expire", "--dry-run", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) | {"errors": []} == {
        "expired": 1,
        "restoredUnits": 2,
        "failed": 0,
        "skipped": 0,
        "unconfirmed": 0,
        "dryRun": True,
        "errors": [],
        "warnings": [],
    }
    assert Order.get_by_id(overdue.id).status == "UNPAID" and stock_of(mug) == 5


def test_expire_expires_only_overdue_unpaid_orders_once(cli, shop, settings):
    buyer, mug, overdue, running = shop
    processing = place(settings, buyer, (mug, 1))
    Order.update(status="PROCESSING").where(Order.id == processing.id).execute()
    make_overdue(processing)
    first = cli("orders", "expire")
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "expired 1 orders, restored 2 units, 0 failed"
    again = json.loads(cli("orders", "expire", "--json").output)
    assert (again["expired"], again["restoredUnits"]) == (0, 0)
    statuses = {o.id: o.status for o in Order.select()}
    assert statuses == {overdue.id: "EXPIRED", running.id: "UNPAID", processing.id: "PROCESSING"}
    assert Payment.get(Payment.order == overdue.id).status == "EXPIRED"
    assert stock_of(mug) == 6
    history = OrderHistory.get(
        (OrderHistory.order == overdue.id) & (OrderHistory.to_status == "EXPIRED")
    )
    assert (history.from_status, history.actor, history.reason) == (
        "UNPAID",
        "cron",
        "reservation expired",
    )
    assert_ledger_consistent()


def test_expire_works_through_many_small_batches(settings, shop):
    buyer, mug, _, _ = shop
    more = [place(settings, buyer, (mug, 1)) for _ in range(4)]
    make_overdue(*more)
    summary = expire_overdue(settings, batch=2)
    assert (summary.expired, summary.restored_units, summary.failed) == (5, 6, 0)
    assert stock_of(mug) == 7
    assert_ledger_consistent()


def test_the_stripe_hook_runs_before_expiry_and_can_hold_an_order_back(settings, shop):
    buyer, mug, overdue, _ = shop
    completed, unreachable = place(settings, buyer, (mug, 1)), place(settings, buyer, (mug, 1))
    sessionless = place(settings, buyer, (mug, 1))
    make_overdue(completed, unreachable, sessionless)
    for order, session in ((overdue, "cs_open"), (completed, "cs_done"), (unreachable, "cs_x")):
        Payment.update(session_id=session).where(Payment.order == order.id).execute()
    asked = []

    def before_expire(rows: list[tuple[str, str]]) -> dict[str, Verdict]:
        asked.extend(session_id for _, session_id in rows)
        verdicts = {
            "cs_open": Verdict(True),
            "cs_done": Verdict(False),
            "cs_x": Verdict(False, error="ConnectionError: Stripe is down"),
        }
        return {order_id: verdicts[session_id] for order_id, session_id in rows}

    summary = expire_overdue(settings, before_expire=before_expire)
    assert sorted(asked) == ["cs_done", "cs_open", "cs_x"]
    assert (summary.expired, summary.skipped, summary.failed) == (2, 1, 1)
    assert "Stripe is down" in summary.errors[0]
    assert {Order.get_by_id(o.id).status for o in (overdue, sessionless)} == {"EXPIRED"}
    assert {Order.get_by_id(o.id).status for o in (completed, unreachable)} == {"UNPAID"}


def test_doctor_flags_stuck_orders_and_is_green_after_expiry(cli, shop):
    _, _, overdue, _ = shop
    make_overdue(overdue, minutes=120)
    stuck = cli("doctor", "--json")
    assert stuck.exit_code == 1
    failed = [c["name"] for c in json.loads(stuck.output)["checks"] if not c["ok"]]
    assert failed == ["stuck orders"]
    assert cli("orders", "expire").exit_code == 0
    assert cli("doctor").exit_code == 0


@pytest.mark.slow
def test_done_when_journey_through_shopctl_serve(cli, start_server, settings):
    """Pay-later orders over HTTP, a cancel, and expiry by cron with a 1.2 s reservation."""
    buyer, lamp = make_user("journey@example.com"), make_product("Lamp", quantity=5)
    headers = bearer(settings, buyer)
    with start_server(env={"ORDER_RESERVATION_MINUTES": "0.02"}) as srv:
        made = [
            srv.request(
                "POST", "/order/pay-later", json={"items": lines((lamp, n))}, headers=headers
            )
            for n in (1, 2)
        ]
        assert [r.status_code for r in made] == [201, 201]
        listed = srv.request("GET", "/order", headers=headers).json()
        assert listed["meta"]["total"] == 2
        first, second = (r.json()["data"]["orderId"] for r in made)
        assert srv.request("POST", f"/order/{first}/cancel", headers=headers).status_code == 200
        assert stock_of(lamp) == 3
        time.sleep(1.3)
        expired = json.loads(cli("orders", "expire", "--json").output)
        assert (expired["expired"], expired["restoredUnits"]) == (1, 2)
        order = srv.request("GET", f"/order/{second}", headers=headers).json()["data"]
        assert order["status"] == "EXPIRED" and order["payment"]["status"] == "EXPIRED"
    assert json.loads(cli("orders", "expire", "--json").output)["expired"] == 0
    assert stock_of(lamp) == 5
    assert (
        StockMovement.select().where(StockMovement.order == second, StockMovement.delta > 0).count()
        == 1
    )
    doctor = cli("doctor")
    assert doctor.exit_code == 0, doctor.output
