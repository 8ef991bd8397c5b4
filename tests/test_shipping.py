"""Shipping at checkout (issue #18, item 1), end to end: `shopctl serve` with
SHIPPING_COUNTRIES set, the sandbox, real HTTP, on SQLite and PostgreSQL.

Rates are added with the CLI, offered as Checkout shipping options; the buyer's address
and rate come back in the session as Stripe shapes it now (`collected_information.
shipping_details`, `shipping_cost`) and are stored on the order when the payment is
applied; the total includes shipping. A signed session whose shipping cost is not our
rate's is flagged for review and the order does not move.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shopctl.config import load_settings
from shopctl.errors import ConfigError
from shopctl.models import Order, PaymentReview, ShippingRate
from tests.conftest import StripeStack, _start_sandbox, free_port, run_server
from tests.orders_support import stock_of
from tests.payments_support import buyer, payment_of, product, status_of, wait_status
from tests.test_webhooks import deliver

COUNTRIES = "US,CA"
ADDRESS = {
    "name": "Ada Lovelace",
    "address": {
        "line1": "12 St James's Square",
        "line2": "Flat 3",
        "city": "Toronto",
        "postal_code": "M5V 2T6",
        "state": "ON",
        "country": "CA",
    },
}


@pytest.fixture(scope="session")
def _shipping_stack(backend_url, tmp_path_factory) -> Iterator[StripeStack]:
    tmp = tmp_path_factory.mktemp("shipping")
    sandbox_port, api_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    webhook = f"http://127.0.0.1:{api_port}/api/v1/payment/webhook"
    sandbox = _start_sandbox(sandbox_port, webhook, tmp / "sandbox.log")
    env = {"STRIPE_API_BASE": sandbox_url, "SHIPPING_COUNTRIES": COUNTRIES}
    try:
        with run_server(backend_url, tmp, port=api_port, env=env) as server:
            yield StripeStack(server, sandbox_url)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=15)


@pytest.fixture
def shipping_stack(_shipping_stack, db, monkeypatch) -> Iterator[StripeStack]:
    """A server that ships to US and CA, wired to an emptied sandbox; the CLI sees both."""
    _shipping_stack.control("POST", "/reset")
    _shipping_stack.configure(webhooks_enabled=True, latency_ms=0, fail_rate=0.0, fail_next=0)
    monkeypatch.setenv("STRIPE_API_BASE", _shipping_stack.sandbox_url)
    monkeypatch.setenv("SHIPPING_COUNTRIES", COUNTRIES)
    yield _shipping_stack
    _shipping_stack.control("POST", "/reset")


def _add_rates(cli) -> dict[str, dict]:
    added = {}
    for name, amount, days in (("Standard", "500", ("3", "5")), ("Express", "1500", ("1", "1"))):
        result = cli("shipping", "rates", "add", name, "--amount", amount, "--min-days", days[0],
                     "--max-days", days[1], "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        added[name] = json.loads(result.output)
    return added


def _session(stack: StripeStack, session_id: str) -> dict:
    return stack.stripe().v1.checkout.sessions.retrieve(session_id).to_dict()


def _order(shopper, order_id: str) -> dict:
    response = shopper.get(f"/order/{order_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _doctor_ok(cli) -> None:
    result = cli("doctor", "--json")
    failing = [c for c in json.loads(result.output)["checks"] if not c["ok"]]
    assert result.exit_code == 0, failing


def test_pay_with_an_address_and_a_rate_stores_them_and_the_total_includes_shipping(
    shipping_stack, settings, cli
):
    rates = _add_rates(cli)
    shopper, mug = buyer(shipping_stack, settings), product(price_cents=1250)
    placed = shopper.order_now(mug, 2)
    offered = _session(shipping_stack, placed["sessionId"])
    assert offered["shipping_address_collection"] == {"allowed_countries": ["US", "CA"]}
    assert [o["shipping_amount"] for o in offered["shipping_options"]] == [500, 1500]
    assert (
        offered["metadata"]["shippingRates"]
        == f"{rates['Standard']['id']},{rates['Express']['id']}"
    )
    express = offered["shipping_options"][1]["shipping_rate"]

    shipping_stack.control(
        "POST",
        f"/sessions/{placed['sessionId']}/pay",
        json={"outcome": "succeeded", "shipping_details": ADDRESS, "shipping_rate": express,
              "phone": "+1 416 555 0199"},
    )  # fmt: skip
    wait_status(placed["orderId"], "PAID")

    paid = _session(shipping_stack, placed["sessionId"])
    assert paid["collected_information"]["shipping_details"] == ADDRESS
    assert paid["shipping_cost"]["amount_total"] == 1500
    assert paid["total_details"]["amount_shipping"] == 1500 and paid["amount_total"] == 4000
    order = _order(shopper, placed["orderId"])
    assert order["amountCents"] == 4000  # 2 x 12.50 + 15.00 shipping
    assert order["shipping"] == {
        "address": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "line2": "Flat 3",
            "city": "Toronto",
            "postalCode": "M5V 2T6",
            "state": "ON",
            "country": "CA",
            "phone": "+1 416 555 0199",
        },
        "rate": {"id": rates["Express"]["id"], "name": "Express"},
        "amountCents": 1500,
    }
    assert payment_of(placed["orderId"]).amount_cents == 4000
    shown = cli("orders", "show", placed["orderId"])
    assert "15.00 USD (Express)" in shown.output and "M5V 2T6 Toronto" in shown.output
    assert "total 40.00 USD" in shown.output
    _doctor_ok(cli)

    refunded = cli("orders", "refund", placed["orderId"], "--yes", "--json")
    assert refunded.exit_code == 0, refunded.output
    wait_status(placed["orderId"], "REFUNDED")  # shipping is refundable too
    assert payment_of(placed["orderId"]).refunded_cents == 4000


def test_pay_without_a_choice_ships_the_test_address_at_the_first_rate(
    shipping_stack, settings, cli
):
    rates = _add_rates(cli)
    shopper, mug = buyer(shipping_stack, settings), product(price_cents=1250)
    placed = shopper.order_now(mug)
    shipping_stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    order = _order(shopper, placed["orderId"])
    assert order["amountCents"] == 1750
    assert order["shipping"]["rate"] == {"id": rates["Standard"]["id"], "name": "Standard"}
    assert order["shipping"]["address"]["country"] == "US"
    assert order["shipping"]["address"]["line1"]


def test_an_order_stripe_could_not_charge_with_its_dearest_rate_is_refused_unreserved(
    shipping_stack, settings, cli
):
    """The buyer picks the rate at Checkout: goods that fit one payment but not with the
    dearest rate offered would leave a session Stripe refuses, the stock held for nothing."""
    _add_rates(cli)
    shopper, ring = buyer(shipping_stack, settings), product(price_cents=49_999_500, quantity=3)
    refused = shopper.post("/order", json={"items": [{"productId": ring.id, "quantity": 2}]})
    assert refused.status_code == 400, refused.text
    assert "dearest shipping rate" in refused.json()["message"], refused.text
    assert "999999.99 USD" in refused.json()["message"], refused.text
    assert Order.select().count() == 0 and stock_of(ring) == 3
    assert shopper.order_now(ring, 1)["orderId"]  # one ring, with any rate, fits


def test_the_hosted_page_asks_for_the_address_and_offers_the_rates(shipping_stack, settings, cli):
    _add_rates(cli)
    shopper, mug = buyer(shipping_stack, settings), product(price_cents=1250)
    placed = shopper.order_now(mug)
    page_url = f"/checkout/pay/{placed['sessionId']}"
    page = shipping_stack.http.get(page_url).text
    assert "Shipping address" in page and "<option>CA</option>" in page
    assert "Standard 5.00 USD" in page and "Express 15.00 USD" in page
    express = _session(shipping_stack, placed["sessionId"])["shipping_options"][1]
    form = {
        "name": "Grace Hopper",
        "line1": "1 Navy Yard",
        "city": "Ottawa",
        "postal_code": "K1A 0B1",
        "country": "CA",
        "phone": "+1 613 555 0100",
        "shipping_rate": express["shipping_rate"],
    }
    answer = shipping_stack.http.post(f"{page_url}/pay", data=form)
    assert answer.status_code == 303, answer.text
    wait_status(placed["orderId"], "PAID")
    shipping = _order(shopper, placed["orderId"])["shipping"]
    assert shipping["address"]["name"] == "Grace Hopper"
    assert shipping["address"]["country"] == "CA" and shipping["rate"]["name"] == "Express"
    assert shipping["address"]["phone"] == "+1 613 555 0100"


def test_the_sandbox_refuses_a_bad_choice_and_changes_nothing(shipping_stack, settings, cli):
    _add_rates(cli)
    shopper, mug = buyer(shipping_stack, settings), product(price_cents=1250)
    placed = shopper.order_now(mug)
    pay_url = f"/_sandbox/sessions/{placed['sessionId']}/pay"
    elsewhere = {**ADDRESS, "address": {**ADDRESS["address"], "country": "FR"}}
    for body, says in (
        ({"shipping_details": elsewhere}, "ships to US, CA only"),
        ({"shipping_details": ADDRESS, "shipping_rate": "shr_not_offered"}, "shipping options"),
    ):
        refused = shipping_stack.http.post(pay_url, json=body)
        assert refused.status_code == 400 and says in refused.text, refused.text
    session = _session(shipping_stack, placed["sessionId"])
    assert session["status"] == "open" and session["collected_information"] is None
    shipping_stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    assert _order(shopper, placed["orderId"])["shipping"]["rate"]["name"] == "Standard"


def test_a_signed_session_whose_shipping_cost_is_not_our_rate_is_flagged_not_paid(
    shipping_stack, settings, cli
):
    """A rate amount Stripe reports that differs from our table's (a tampered or
    replayed event) does not pay the order; the genuine event still does."""
    _add_rates(cli)
    shipping_stack.configure(webhooks_enabled=False)
    shopper, mug = buyer(shipping_stack, settings), product(price_cents=1250)
    placed = shopper.order_now(mug)
    shipping_stack.pay(placed["sessionId"])
    events = shipping_stack.stripe().v1.events.list({"limit": 100})
    by_type = {event.type: event.to_dict() for event in events.data}
    completed = by_type["checkout.session.completed"]
    session = completed["data"]["object"]
    assert session["shipping_cost"]["amount_total"] == 500
    cheap = {"amount_subtotal": 1, "amount_tax": 0, "amount_total": 1}
    forged_session = {
        **session,
        "shipping_cost": {**session["shipping_cost"], **cheap},
        "amount_total": 1251,
        "total_details": {**session["total_details"], "amount_shipping": 1},
    }
    forged = {**completed, "id": "evt_forged_shipping", "data": {"object": forged_session}}

    intent = deliver(shipping_stack.server, by_type["payment_intent.succeeded"])
    assert intent.status_code == 200, intent.text
    assert status_of(placed["orderId"]) == "UNPAID"  # the session's event brings the shipping
    assert deliver(shipping_stack.server, forged).status_code == 200
    assert status_of(placed["orderId"]) == "UNPAID"
    [review] = PaymentReview.select().where(PaymentReview.order == placed["orderId"])
    assert "shipping cost 1 is not 500" in review.reason
    assert "amount 1251 is not the order's 1750" in review.reason
    assert Order.get_by_id(placed["orderId"]).shipping_cents is None

    assert deliver(shipping_stack.server, completed).status_code == 200
    assert status_of(placed["orderId"]) == "PAID"
    assert _order(shopper, placed["orderId"])["amountCents"] == 1750


def test_an_older_api_version_shape_and_an_expanded_rate_are_read_too(
    shipping_stack, settings, cli
):
    """Before 2025-03-31 the address was the session's top-level `shipping_details`; an
    expanded `shipping_cost.shipping_rate` names our rate by its metadata."""
    rates = _add_rates(cli)
    shipping_stack.configure(webhooks_enabled=False)
    shopper, mug = buyer(shipping_stack, settings), product(price_cents=1250)
    placed = shopper.order_now(mug)
    express = _session(shipping_stack, placed["sessionId"])["shipping_options"][1]
    shipping_stack.control(
        "POST",
        f"/sessions/{placed['sessionId']}/pay",
        json={"shipping_details": ADDRESS, "shipping_rate": express["shipping_rate"]},
    )
    events = shipping_stack.stripe().v1.events.list({"limit": 100})
    [completed] = [e.to_dict() for e in events.data if e.type == "checkout.session.completed"]
    expanded = shipping_stack.stripe().v1.checkout.sessions.retrieve(
        placed["sessionId"], {"expand": ["shipping_cost.shipping_rate"]}
    )
    old = {**completed["data"]["object"], "collected_information": None, "shipping_options": []}
    old["shipping_details"] = ADDRESS
    old["shipping_cost"] = expanded.to_dict()["shipping_cost"]
    assert old["shipping_cost"]["shipping_rate"]["metadata"] == {
        "shippingRateId": str(rates["Express"]["id"])
    }
    delivered = deliver(shipping_stack.server, {**completed, "data": {"object": old}})
    assert delivered.status_code == 200, delivered.text
    assert status_of(placed["orderId"]) == "PAID"
    shipping = _order(shopper, placed["orderId"])["shipping"]
    assert shipping["address"]["postalCode"] == "M5V 2T6" and shipping["amountCents"] == 1500


def test_without_shipping_countries_nothing_is_collected_and_digital_goods_are_unchanged(
    stripe_stack, settings, cli
):
    _add_rates(cli)
    shopper, ebook = buyer(stripe_stack, settings), product("E-book", price_cents=900)
    placed = shopper.order_now(ebook)
    offered = _session(stripe_stack, placed["sessionId"])
    assert offered["shipping_address_collection"] is None
    assert offered["shipping_options"] == [] and "shippingRates" not in offered["metadata"]
    stripe_stack.pay(placed["sessionId"])
    wait_status(placed["orderId"], "PAID")
    order = _order(shopper, placed["orderId"])
    assert order["amountCents"] == 900 and order["shipping"] is None
    assert "shipping   none" in cli("orders", "show", placed["orderId"]).output


def test_rates_add_list_disable_and_bad_input(cli, db):
    rates = _add_rates(cli)
    listed = json.loads(cli("shipping", "rates", "list", "--json").output)
    assert [(r["name"], r["amountCents"], r["minDays"], r["maxDays"]) for r in listed] == [
        ("Standard", 500, 3, 5),
        ("Express", 1500, 1, 1),
    ]
    table = cli("shipping", "rates", "list").output
    assert "5.00 USD" in table and "3-5 days" in table and "1 day " in table

    express = str(rates["Express"]["id"])
    assert cli("shipping", "rates", "disable", express).exit_code == 0
    assert not ShippingRate.get_by_id(int(express)).active
    assert "Already disabled" in cli("shipping", "rates", "disable", express).output
    active = json.loads(cli("shipping", "rates", "list", "--active", "--json").output)
    assert [r["name"] for r in active] == ["Standard"]

    before = list(ShippingRate.select().tuples())
    refused = [
        (("add", "Cheap", "--amount", "-1"), 2, "amount"),
        (("add", "Slow", "--amount", "100", "--min-days", "9", "--max-days", "2"), 2, "minDays"),
        (("add", "Late", "--amount", "100", "--max-days", "400"), 2, "maxDays"),
        (("add", " ", "--amount", "100"), 2, "name"),
        (("add", "x" * 101, "--amount", "100"), 2, "name"),
        (("add", "Huge", "--amount", "100000000"), 2, "at most"),
        (("add", "Odd", "--amount", "ten"), 2, "amount"),
        (("add", "Standard", "--amount", "700"), 1, "already named"),
        (("disable", "999"), 1, "No shipping rate 999"),
        (("disable", "abc"), 2, "RATE_ID"),
    ]
    for args, code, says in refused:
        result = cli("shipping", "rates", *args)
        assert result.exit_code == code, (args, result.output)
        assert says in result.output, (args, result.output)
    assert list(ShippingRate.select().tuples()) == before


def test_at_most_five_rates_are_active_and_steps_follow_the_currency(cli, db, monkeypatch):
    for n in range(5):
        added = cli("shipping", "rates", "add", f"Rate {n}", "--amount", "100", "--json")
        assert added.exit_code == 0, added.output
    sixth = cli("shipping", "rates", "add", "Rate 5", "--amount", "100")
    assert sixth.exit_code == 1 and "At most 5" in sixth.output
    monkeypatch.setenv("STRIPE_CURRENCY", "kwd")
    last = str(json.loads(added.output)["id"])
    assert cli("shipping", "rates", "disable", last).exit_code == 0
    off_step = cli("shipping", "rates", "add", "Dinar", "--amount", "1235")
    assert off_step.exit_code == 2 and "steps of 0.010 KWD" in off_step.output


def test_shipping_countries_are_validated(monkeypatch):
    monkeypatch.setenv("SHIPPING_COUNTRIES", " us, ca,US ")
    assert load_settings(env_file=None).shipping_countries == ("US", "CA")
    monkeypatch.setenv("SHIPPING_COUNTRIES", "")
    assert load_settings(env_file=None).shipping_countries == ()
    for bad in ("USA", "U1", "XX,US"):
        monkeypatch.setenv("SHIPPING_COUNTRIES", bad)
        with pytest.raises(ConfigError, match="SHIPPING_COUNTRIES"):
            load_settings(env_file=None)


def test_openapi_and_postman_cover_the_shipping_field(cli, tmp_path):
    document = json.loads(cli("api", "openapi").output)
    schemas = document["components"]["schemas"]
    assert "shipping" in schemas["Order"]["properties"]
    assert set(schemas["OrderShipping"]["properties"]) == {"address", "rate", "amountCents"}
    assert "postalCode" in schemas["ShippingAddress"]["properties"]
    target = tmp_path / "shop.postman_collection.json"
    assert cli("api", "postman", "-o", str(target)).exit_code == 0
    assert "body.data.shipping" in target.read_text()
