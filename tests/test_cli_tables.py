"""Every table fits 80 columns, the width of any pipe (`shopctl orders list | cat`).

Regression: at 80 columns `orders list` showed `UNP…` and `41…` and `events list` cut its
ids. Now ids are 8 characters (whole in `--json` and `show`), statuses and amounts are
never cut, and wide columns (names, emails, types, errors) wrap instead of ending in "…".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from shopctl.models import Order, StripeEvent, User
from tests.orders_support import make_product, make_user, place

LONG_EMAIL = "a.very.long.buyer.address.for.testing@subdomain.example.com"
LONG_NAME = "A rather long product name that goes on and on, past any column"
BIG_PRICE = 12_345_678  # 123456.78 USD, three of them 370370.34 USD
LONG_ERROR = "something went badly wrong while processing this event, and it says so at length"


@pytest.fixture
def wide_shop(settings):
    """Rows whose every cell is wider than its share of 80 columns."""
    buyer = make_user(LONG_EMAIL)
    User.update(name="Someone With A Name Longer Than Any Column").where(
        User.id == buyer.id
    ).execute()
    make_user("gone@example.com")
    User.update(is_deleted=True).where(User.email == "gone@example.com").execute()
    product = make_product(LONG_NAME, price_cents=BIG_PRICE, quantity=100)
    processing = place(settings, buyer, (product, 3))
    Order.update(status="PROCESSING").where(Order.id == processing.id).execute()
    unpaid = place(settings, buyer, (product, 1))
    StripeEvent.create(
        id="evt_1NG8Du2eZvKYlo2CUI79vXWy",
        type="checkout.session.async_payment_succeeded",
        payload="{}",
        status="PROCESSED",
    )
    StripeEvent.create(
        id="evt_1NG8Du2eZvKYlo2CFAILED01",
        type="payment_intent.payment_failed",
        payload="{}",
        status="FAILED",
        last_error=LONG_ERROR,
    )
    return product, processing, unpaid


def _fits(output: str) -> None:
    assert output.strip(), "no output"
    for line in output.splitlines():
        assert len(line.rstrip()) <= 80, line
    assert "…" not in output and "..." not in output, output


def _column(output: str, header: str) -> str:
    """A left-aligned column's text, wrapping undone: on each line, what starts under
    its header and runs to the two spaces that separate columns."""
    lines = output.splitlines()
    start = re.search(rf"(?<!\S){re.escape(header)}(?!\S)", lines[0]).start()
    pieces = [re.split(r"\s{2,}", line[start:])[0] for line in lines[2:]]
    return "".join("".join(pieces).split())


def _whole(value: str) -> str:
    return "".join(value.split())


def test_orders_list_through_a_real_pipe_keeps_statuses_amounts_and_short_ids(
    wide_shop, backend_url, tmp_path
):
    _, processing, unpaid = wide_shop
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run(
        [sys.executable, "-m", "shopctl", "orders", "list"],
        env={**env, "DATABASE_URL": backend_url},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    _fits(result.stdout)
    assert "PROCESSING" in result.stdout and "UNPAID" in result.stdout
    assert "370370.34 USD" in result.stdout and "123456.78 USD" in result.stdout
    for order in (processing, unpaid):
        assert order.id[:8] in result.stdout and order.id[:9] not in result.stdout
    assert LONG_EMAIL in _column(result.stdout, "buyer")


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def test_orders_show_fits(cli, wide_shop, narrow):
    _, processing, _ = wide_shop
    result = cli("orders", "show", processing.id)
    assert result.exit_code == 0, result.output
    for line in result.output.splitlines():
        assert len(line.rstrip()) <= 80, line
    assert "…" not in result.output
    assert "370370.34 USD" in result.output and "123456.78 USD" in result.output
    assert processing.id in result.output  # whole in `show`


def test_products_list_fits(cli, wide_shop, narrow):
    product, _, _ = wide_shop
    result = cli("products", "list")
    assert result.exit_code == 0, result.output
    _fits(result.output)
    assert "123456.78 USD" in result.output and " 96" in result.output
    assert product.id[:8] in result.output and product.id[:9] not in result.output
    assert _whole(LONG_NAME) in _column(result.output, "name")
    assert json.loads(cli("products", "list", "--json").output)[0]["id"] == product.id


def test_users_list_fits(cli, wide_shop, narrow):
    result = cli("users", "list")
    assert result.exit_code == 0, result.output
    _fits(result.output)
    assert "deactivated" in result.output and "active" in result.output
    assert LONG_EMAIL in _column(result.output, "email")
    for user in User.select():
        assert user.id[:8] in result.output and user.id[:9] not in result.output


def test_events_list_fits(cli, wide_shop, narrow):
    result = cli("events", "list")
    assert result.exit_code == 0, result.output
    _fits(result.output)
    assert "PROCESSED" in result.output and "FAILED" in result.output
    # Stripe ids keep their evt_ and show 8 characters after it; these two share 14, so
    # the table shows as many as it takes to tell them apart.
    assert "evt_1NG8Du2eZvKYlo2CU" in result.output and "evt_1NG8Du2eZvKYlo2CF" in result.output
    assert "evt_1NG8Du2eZvKYlo2CUI79vXWy" not in result.output
    assert "checkout.session.async_payment_succeeded" in _column(result.output, "type")
    assert _whole(LONG_ERROR) in _column(result.output, "error")


def test_doctor_fits(cli, wide_shop, narrow):
    result = cli("doctor")
    assert result.exit_code == 1  # the FAILED event
    _fits(result.output)
    assert "FAIL" in result.output and "webhooks" in result.output


def test_payments_reconcile_fits(stripe_stack, settings, cli, narrow):
    from tests.test_webhooks import paid_events

    placed, _, _ = paid_events(stripe_stack, settings)
    result = cli("payments", "reconcile")
    assert result.exit_code == 0, result.output
    _fits(result.output)
    assert "paid-at-stripe" in result.output
    assert placed["orderId"][:8] in result.output and placed["orderId"] not in result.output
