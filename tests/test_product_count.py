"""The total under every `GET /product` page comes from a count that database triggers
keep (migrations/0003): it must follow every way the catalog changes, on both databases,
under concurrent writers too, and `shopctl doctor` must notice if it ever drifts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from shopctl.models import Product, ProductCount
from shopctl.services.catalog.ledger import RECOUNT, check_product_count
from shopctl.services.common import Report
from tests.orders_support import bearer, make_product, make_user


def listed_total(server, **params) -> int:
    response = server.request("GET", "/product", params={"limit": 1, **params})
    assert response.status_code == 200, response.text
    return response.json()["meta"]["total"]


def for_sale() -> int:
    return Product.select().where(Product.is_archived == False).count()  # noqa: E712


def create(server, admin, name: str, quantity: int = 5) -> str:
    body = {"name": name, "priceCents": 500, "quantity": quantity}
    response = server.request("POST", "/product", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def delete(server, admin, product_id: str) -> str:
    response = server.request("DELETE", f"/product/{product_id}", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()["message"]


def test_the_listing_total_follows_every_change_to_the_catalog(server, cli, settings):
    admin = bearer(settings, make_user("admin@example.com", role="ADMIN"))
    buyer = bearer(settings, make_user())
    assert listed_total(server) == 0
    mug, pen = create(server, admin, "Quokka Mug"), create(server, admin, "Quokka Pen")
    assert cli("products", "seed", "--count", "30", "--seed", "5").exit_code == 0
    assert listed_total(server) == 32

    order = {"items": [{"productId": mug, "quantity": 2}]}
    assert server.request("POST", "/order/pay-later", json=order, headers=buyer).status_code == 201
    patched = server.request("PATCH", f"/product/{pen}", json={"quantity": 9}, headers=admin)
    assert patched.status_code == 200, patched.text
    assert listed_total(server) == 32  # stock changes leave the count alone

    assert delete(server, admin, mug) == "Product archived"
    assert delete(server, admin, pen) == "Product deleted successfully"
    assert listed_total(server) == 30 == for_sale()
    assert listed_total(server, search="quokka") == 0
    report = Report()
    check_product_count(report)
    assert report.ok, report.checks


def test_concurrent_writers_keep_the_count_exact(server, settings):
    admin = bearer(settings, make_user("admin@example.com", role="ADMIN"))
    doomed = [make_product(f"Old {n}", quantity=0).id for n in range(12)]
    with ThreadPoolExecutor(8) as pool:
        created = pool.map(lambda n: create(server, admin, f"New {n}"), range(24))
        deleted = pool.map(lambda product_id: delete(server, admin, product_id), doomed)
        assert len(list(created)) == 24 and len(list(deleted)) == 12
    assert listed_total(server) == 24 == for_sale()


def test_doctor_names_a_count_that_drifted(db):
    make_product("Mug")
    ProductCount.update(live=5).execute()
    report = Report()
    try:
        check_product_count(report)
    finally:
        db.execute_sql(RECOUNT)  # the next test's database starts right
    [check] = report.checks
    assert not check.ok
    assert check.detail == "listings say 5 products are for sale, there are 1"
    assert "UPDATE product_count" in check.hint
