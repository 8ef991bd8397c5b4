"""Every command that takes an order, product or event id takes a unique prefix of at
least 6 characters, as git takes commits (`evt_` is not counted in an event's).

An ambiguous prefix lists the candidates and exits 1; a prefix under 6 characters is a
usage error (exit 2); a prefix nothing starts with exits 1. Regression: no command took
a shortened id, so the 8 characters a table shows could not be typed back.
"""

from __future__ import annotations

import json

import pytest

from shopctl.models import Order, Product, StockMovement, StripeEvent
from tests.orders_support import make_product, make_user, place

TWIN_A = "abc123de-0000-4000-8000-000000000001"
TWIN_B = "abc123de-1111-4000-8000-000000000002"


def _place_with_id(settings, monkeypatch, buyer, product, order_id: str):
    """An order placed as the API places it, whose id is `order_id`."""
    from shopctl.models import new_id
    from shopctl.services.orders import placement

    ids = iter([order_id])
    monkeypatch.setattr(placement, "new_id", lambda: next(ids, None) or new_id())
    place(settings, buyer, (product, 1))
    monkeypatch.setattr(placement, "new_id", new_id)


@pytest.fixture
def twins(settings, monkeypatch):
    """Two orders and two products whose ids share their first 9 characters, and two
    stored events that share `evt_` and 9 more (one with a LIKE wildcard in its id)."""
    buyer = make_user()
    mug = make_product("Mug", quantity=10)
    for order_id in (TWIN_A, TWIN_B):
        _place_with_id(settings, monkeypatch, buyer, mug, order_id)
    for name, product_id in (("Cup", TWIN_A), ("Bowl", TWIN_B)):
        Product.create(id=product_id, name=name, price_cents=500, quantity=3)
        StockMovement.create(product=product_id, delta=3, reason="initial")
    for event_id in ("evt_1NG8Du2eZaaa", "evt_1NG8Du2eZ_bb"):
        StripeEvent.create(
            id=event_id, type="checkout.session.expired", payload="{}", status="FAILED"
        )
    return buyer


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(
    "command",
    [
        ("orders", "show", "{id}"),
        ("orders", "show", "{id}", "--json"),
        ("orders", "cancel", "{id}", "--yes"),
        ("orders", "refund", "{id}", "--yes"),
        ("products", "set-stock", "{id}", "7", "--yes"),
    ],
)
def test_order_and_product_prefixes(cli, twins, command):
    def run(prefix):
        return cli(*(part.format(id=prefix) for part in command))

    ambiguous = run("abc123d")
    assert ambiguous.exit_code == 1, ambiguous.output
    assert "ambiguous" in ambiguous.output
    assert TWIN_A in ambiguous.output and TWIN_B in ambiguous.output
    short = run("abc12")
    assert short.exit_code == 2 and "6 characters" in short.output, short.output
    unknown = run("fedcba98")
    assert unknown.exit_code == 1 and "no " in unknown.output, unknown.output
    assert "Traceback" not in ambiguous.output + short.output + unknown.output
    unique = run("ABC123DE-1")  # any case, as a UUID may be written
    if command[1] == "refund":  # an UNPAID order: found, then refused for what it is
        assert unique.exit_code == 1, unique.output
        assert "starts with" not in unique.output and "ambiguous" not in unique.output
        return
    _ok(unique)
    if command[0] == "orders" and command[1] == "show" and "--json" in command:
        assert json.loads(unique.output)["id"] == TWIN_B


def test_cancel_by_prefix_cancels_that_order(cli, twins):
    _ok(cli("orders", "cancel", "abc123de-11", "--yes"))
    assert Order.get_by_id(TWIN_B).status == "CANCELED"
    assert Order.get_by_id(TWIN_A).status == "UNPAID"


def test_event_prefixes_for_show_and_replay(cli, twins):
    ambiguous = cli("events", "show", "evt_1NG8Du2eZ")
    assert ambiguous.exit_code == 1 and "evt_1NG8Du2eZaaa" in ambiguous.output
    assert "evt_1NG8Du2eZ_bb" in ambiguous.output
    # `_` is a LIKE wildcard: escaped, the prefix `evt_1NG8Du2eZ_` matches only itself
    shown = _ok(cli("events", "show", "evt_1NG8Du2eZ_", "--json"))
    assert json.loads(shown.output)["id"] == "evt_1NG8Du2eZ_bb"
    assert cli("events", "show", "evt_1NG8D").exit_code == 2  # 5 after evt_
    assert cli("events", "show", "evt_1nG8Du2eZa").exit_code == 1  # ids are case-sensitive
    replayed = cli("events", "replay", "evt_1NG8Du2eZa", "--json")
    assert json.loads(replayed.output)[0]["eventId"] == "evt_1NG8Du2eZaaa", replayed.output
    assert cli("events", "replay", "evt_1NG8Du2eZ").exit_code == 1


def test_orders_list_takes_a_user_id_prefix(cli, twins):
    rows = json.loads(_ok(cli("orders", "list", "--user", twins.id[:8], "--json")).output)
    assert {row["id"] for row in rows} == {TWIN_A, TWIN_B}
