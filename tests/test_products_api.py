"""`/product` over real HTTP on both databases: reads for anyone, writes for admins only."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from peewee import fn

from shopctl.models import Order, OrderItem, Product, StockMovement, User, utcnow
from shopctl.services.accounts.tokens import issue_access_token

ANY_ID = "6f1f7d1c-0a55-4d3c-9a39-2b9f4a0a7c11"


def make_user(role: str = "USER") -> User:
    email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    return User.create(email=email, password_hash="not-a-real-hash", role=role)


def bearer(settings, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_access_token(settings, user)}"}


@pytest.fixture
def admin(settings) -> dict[str, str]:
    return bearer(settings, make_user("ADMIN"))


@pytest.fixture
def shopper(settings) -> dict[str, str]:
    return bearer(settings, make_user("USER"))


def create(server, headers, **body) -> dict:
    if "price" not in body:
        body.setdefault("priceCents", 1000)
    response = server.request("POST", "/product", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def listing(server, **params) -> dict:
    response = server.request("GET", "/product", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def error_paths(response) -> set[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["message"] == "Validation Error"
    return {error["path"] for error in body["error"]}


def movements(product_id: str) -> list[tuple[int, str]]:
    query = StockMovement.select().where(StockMovement.product == product_id)
    return [(m.delta, m.reason) for m in query.order_by(StockMovement.id)]


def assert_ledger_holds() -> None:
    moved = dict(
        StockMovement.select(StockMovement.product, fn.SUM(StockMovement.delta))
        .group_by(StockMovement.product)
        .tuples()
    )
    for product in Product.select():
        assert product.quantity == moved.get(product.id, 0), product.name


def order_containing(product_id: str) -> None:
    user = make_user()
    order = Order.create(
        user=user, amount_cents=1000, currency="usd", expires_at=utcnow() + timedelta(minutes=30)
    )
    OrderItem.create(
        order=order, product=product_id, product_name="snapshot", quantity=1, price_cents=1000
    )


# --- the journey -------------------------------------------------------------------------


def test_admin_manages_the_catalog_while_a_user_only_reads(server, admin, shopper):
    mug = create(
        server, admin, name="Blue Mug", description="Stoneware, 350 ml", price="12.50", quantity=5
    )
    assert mug["priceCents"] == 1250 and mug["quantity"] == 5 and mug["currency"] == "usd"
    assert set(mug) >= {
        "id",
        "name",
        "description",
        "priceCents",
        "quantity",
        "createdAt",
        "updatedAt",
    }
    for index in range(11):
        create(server, admin, name=f"Plate {index:02d}", priceCents=500 + index)

    first = listing(server)
    assert first["message"] == "Products retrieved successfully"
    next_cursor = first["meta"]["nextCursor"]  # page 2 follows; a cursor walk may continue
    assert first["meta"] == {
        "page": 1,
        "limit": 10,
        "total": 12,
        "totalPage": 2,
        "nextCursor": next_cursor,
    }
    assert isinstance(next_cursor, str)
    assert len(first["data"]) == 10
    assert len(listing(server, page=2)["data"]) == 2
    assert [p["name"] for p in listing(server, search="MUG")["data"]] == ["Blue Mug"]

    patched = server.request("PATCH", f"/product/{mug['id']}", json={"price": 9.99}, headers=admin)
    assert (
        patched.status_code == 200 and patched.json()["message"] == "Product updated successfully"
    )
    assert patched.json()["data"]["priceCents"] == 999
    assert patched.json()["data"]["name"] == "Blue Mug"

    for method, path, body in (
        ("POST", "/product", {"name": "x", "priceCents": 1}),
        ("PATCH", f"/product/{mug['id']}", {"quantity": 0}),
        ("DELETE", f"/product/{mug['id']}", None),
    ):
        assert server.request(method, path, json=body, headers=shopper).status_code == 403
        assert server.request(method, path, json=body).status_code == 401

    order_containing(mug["id"])
    archived = server.request("DELETE", f"/product/{mug['id']}", headers=admin)
    assert archived.status_code == 200
    assert archived.json()["message"] == "Product archived" and archived.json()["data"] is None
    assert server.request("GET", f"/product/{mug['id']}").status_code == 404
    assert listing(server)["meta"]["total"] == 11
    assert Product.get_by_id(mug["id"]).is_archived
    assert_ledger_holds()


def test_get_one_product_returns_the_product_alone(server, admin):
    mug = create(server, admin, name="Mug", quantity=3)
    response = server.request("GET", f"/product/{mug['id']}")
    assert response.status_code == 200
    assert response.json()["message"] == "Product retrieved successfully"
    assert response.json()["data"] == mug


def test_ids_are_checked(server):
    bad = server.request("GET", "/product/not-a-uuid")
    assert error_paths(bad) == {"id"}
    missing = server.request("GET", f"/product/{ANY_ID}")
    assert missing.status_code == 404 and missing.json()["success"] is False


# --- creating ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, path",
    [
        ({"priceCents": 100}, "name"),
        ({"name": "", "priceCents": 100}, "name"),
        ({"name": "   ", "priceCents": 100}, "name"),
        ({"name": "x" * 201, "priceCents": 100}, "name"),
        ({"name": "Nul\x00Byte", "priceCents": 100}, "name"),
        ({"name": 42, "priceCents": 100}, "name"),
        ({"name": "Mug", "priceCents": 100, "description": "d" * 1001}, "description"),
        ({"name": "Mug"}, "priceCents"),
        ({"name": "Mug", "price": "12.50", "priceCents": 1250}, "priceCents"),
        ({"name": "Mug", "price": "twelve"}, "price"),
        ({"name": "Mug", "price": "-1"}, "price"),
        ({"name": "Mug", "price": -1}, "price"),
        ({"name": "Mug", "price": True}, "price"),
        ({"name": "Mug", "price": "1e3"}, "price"),
        ({"name": "Mug", "price": "1000000"}, "price"),
        ({"name": "Mug", "priceCents": "1250"}, "priceCents"),
        ({"name": "Mug", "priceCents": 12.5}, "priceCents"),
        ({"name": "Mug", "priceCents": -5}, "priceCents"),
        ({"name": "Mug", "priceCents": 100, "quantity": -1}, "quantity"),
        ({"name": "Mug", "priceCents": 100, "quantity": True}, "quantity"),
        ({"name": "Mug", "priceCents": 100, "quantity": 2.5}, "quantity"),
        ({"name": "Mug", "priceCents": 100, "quantity": 2**31}, "quantity"),
        ({"name": "Mug", "priceCents": 100, "colour": "blue"}, "colour"),
    ],
)
def test_each_bad_field_is_a_400_and_nothing_is_created(server, admin, body, path):
    response = server.request("POST", "/product", json=body, headers=admin)
    assert path in error_paths(response)
    assert Product.select().count() == 0 and StockMovement.select().count() == 0


def test_a_body_that_is_not_an_object_is_refused(server, admin):
    assert error_paths(server.request("POST", "/product", json=[1], headers=admin)) == {"body"}


@pytest.mark.parametrize(
    "price, cents",
    [("12.505", 1251), (12.505, 1251), ("12.504", 1250), (19.99, 1999), ("0.5", 50), (3, 300)],
)
def test_decimal_prices_become_cents_half_up(server, admin, price, cents):
    assert create(server, admin, name="Mug", price=price)["priceCents"] == cents


def test_seed_style_data_wrapper_is_accepted(server, admin):
    body = {"data": '{"name": "Wrapped", "price": "2.00", "quantity": 1}'}
    response = server.request("POST", "/product", json=body, headers=admin)
    assert response.status_code == 201 and response.json()["data"]["priceCents"] == 200


def test_duplicate_names_are_a_409(server, admin):
    create(server, admin, name="Mug")
    again = server.request(
        "POST", "/product", json={"name": "Mug", "priceCents": 500}, headers=admin
    )
    assert again.status_code == 409
    assert again.json()["message"] == "Product name already exists"
    other = create(server, admin, name="Cup")
    rename = server.request("PATCH", f"/product/{other['id']}", json={"name": "Mug"}, headers=admin)
    assert rename.status_code == 409
    assert Product.select().count() == 2


def test_creating_with_stock_writes_an_initial_movement(server, admin):
    mug = create(server, admin, name="Mug", quantity=7)
    empty = create(server, admin, name="Cup", quantity=0)
    assert movements(mug["id"]) == [(7, "initial")]
    assert movements(empty["id"]) == []
    assert_ledger_holds()


# --- changing ----------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields_and_records_stock_changes(server, admin):
    mug = create(server, admin, name="Mug", description="Blue", priceCents=1250, quantity=10)
    response = server.request("PATCH", f"/product/{mug['id']}", json={"quantity": 4}, headers=admin)
    changed = response.json()["data"]
    assert (changed["name"], changed["description"], changed["priceCents"]) == ("Mug", "Blue", 1250)
    assert changed["quantity"] == 4
    assert movements(mug["id"]) == [(10, "initial"), (-6, "adjustment")]
    cleared = server.request(
        "PATCH", f"/product/{mug['id']}", json={"description": None}, headers=admin
    )
    assert cleared.json()["data"]["description"] is None
    assert_ledger_holds()


@pytest.mark.parametrize(
    "body, path",
    [
        ({}, "body"),
        ({"name": None}, "name"),
        ({"price": None}, "price"),
        ({"quantity": None}, "quantity"),
        ({"price": "1", "priceCents": 100}, "priceCents"),
        ({"quantity": -3}, "quantity"),
        ({"isArchived": True}, "isArchived"),
    ],
)
def test_bad_patches_change_nothing(server, admin, body, path):
    mug = create(server, admin, name="Mug", quantity=2)
    response = server.request("PATCH", f"/product/{mug['id']}", json=body, headers=admin)
    assert path in error_paths(response)
    assert server.request("GET", f"/product/{mug['id']}").json()["data"] == mug


def test_patch_and_delete_of_unknown_or_malformed_ids(server, admin):
    for method, body in (("PATCH", {"quantity": 1}), ("DELETE", None)):
        assert (
            server.request(method, f"/product/{ANY_ID}", json=body, headers=admin).status_code
            == 404
        )
        assert error_paths(server.request(method, "/product/42", json=body, headers=admin)) == {
            "id"
        }


def test_concurrent_stock_changes_keep_the_ledger(server, admin):
    mug = create(server, admin, name="Mug", quantity=50)

    def patch(quantity: int) -> int:
        return server.request(
            "PATCH", f"/product/{mug['id']}", json={"quantity": quantity}, headers=admin
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(patch, range(24)))
    assert statuses == [200] * 24
    assert len(movements(mug["id"])) >= 2
    assert_ledger_holds()


# --- deleting ----------------------------------------------------------------------------


def test_a_product_never_ordered_is_deleted_with_its_movements(server, admin):
    mug = create(server, admin, name="Mug", quantity=3)
    response = server.request("DELETE", f"/product/{mug['id']}", headers=admin)
    assert response.status_code == 200
    assert response.json() == {
        "statusCode": 200,
        "success": True,
        "message": "Product deleted successfully",
        "data": None,
    }
    assert Product.get_or_none(Product.id == mug["id"]) is None
    assert movements(mug["id"]) == []
    assert server.request("DELETE", f"/product/{mug['id']}", headers=admin).status_code == 404


def test_an_ordered_product_is_archived_and_its_order_keeps_it(server, admin):
    mug = create(server, admin, name="Mug", quantity=3)
    order_containing(mug["id"])
    assert (
        server.request("DELETE", f"/product/{mug['id']}", headers=admin).json()["message"]
        == "Product archived"
    )
    assert OrderItem.select().where(OrderItem.product == mug["id"]).count() == 1
    assert listing(server, search="Mug")["data"] == []
    for method, body in (("GET", None), ("PATCH", {"quantity": 1}), ("DELETE", None)):
        assert (
            server.request(method, f"/product/{mug['id']}", json=body, headers=admin).status_code
            == 404
        )
    assert_ledger_holds()


# --- listing -----------------------------------------------------------------------------


def test_an_empty_catalog_lists_nothing(server):
    body = listing(server)
    assert body["data"] == []
    assert body["meta"] == {"page": 1, "limit": 10, "total": 0, "totalPage": 0, "nextCursor": None}


def test_pages_walk_the_whole_catalog_without_overlap(server, admin):
    made = {create(server, admin, name=f"Item {index:02d}")["id"] for index in range(23)}
    seen = []
    for page in (1, 2, 3):
        body = listing(server, page=page, limit=10)
        meta = dict(body["meta"])
        assert (meta.pop("nextCursor") is None) == (page == 3)
        assert meta == {"page": page, "limit": 10, "total": 23, "totalPage": 3}
        seen += [product["id"] for product in body["data"]]
    assert len(seen) == 23 and set(seen) == made
    beyond = listing(server, page=4, limit=10)
    assert beyond["data"] == [] and beyond["meta"]["total"] == 23
    assert len(listing(server, limit=100)["data"]) == 23


@pytest.mark.parametrize(
    "params, path",
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": "2.5"}, "page"),
        ({"sortBy": "price"}, "sortBy"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"search": "x" * 201}, "search"),
        ({"searchTerm": "mug"}, "searchTerm"),
    ],
)
def test_bad_listing_parameters_are_a_400(server, params, path):
    response = server.request("GET", "/product", params=params)
    assert error_paths(response) == {path}


def test_search_is_case_insensitive_over_name_and_description_and_literal(server, admin):
    create(server, admin, name="Linen Apron", description="Washed LINEN")
    create(server, admin, name="Oak Board", description="cut from linen-coloured oak")
    create(server, admin, name="100% Cotton Towel")
    create(server, admin, name="Snake_case Mug")
    create(server, admin, name="Plain Mug")
    create(server, admin, name="Back\\slash Mug")
    assert {p["name"] for p in listing(server, search="linen")["data"]} == {
        "Linen Apron",
        "Oak Board",
    }
    assert [p["name"] for p in listing(server, search="%")["data"]] == ["100% Cotton Towel"]
    assert [p["name"] for p in listing(server, search="_")["data"]] == ["Snake_case Mug"]
    assert [p["name"] for p in listing(server, search="\\")["data"]] == ["Back\\slash Mug"]
    assert listing(server, search="  ")["meta"]["total"] == 6


def test_sorting(server, admin):
    create(server, admin, name="Banana", priceCents=300)
    create(server, admin, name="Cherry", priceCents=100)
    create(server, admin, name="Apple", priceCents=200)

    def names(**params):
        return [p["name"] for p in listing(server, **params)["data"]]

    assert names() == ["Apple", "Cherry", "Banana"]  # newest first
    assert names(sortBy="createdAt", sortOrder="asc") == ["Banana", "Cherry", "Apple"]
    assert names(sortBy="priceCents", sortOrder="asc") == ["Cherry", "Apple", "Banana"]
    assert names(sortBy="priceCents", sortOrder="DESC") == ["Banana", "Apple", "Cherry"]
    assert names(sortBy="name", sortOrder="asc") == ["Apple", "Banana", "Cherry"]


# --- currencies (the service, as the handler calls it) -----------------------------------


@pytest.mark.parametrize(
    "currency, price, cents",
    [("jpy", "1200", 1200), ("jpy", 1200.5, 1201), ("kwd", "1.2345", 1230)],
)
def test_prices_follow_the_currency_exponent(db, currency, price, cents):
    from shopctl.schemas import ProductCreate, validate
    from shopctl.services.catalog.products import create_product

    payload = validate(ProductCreate, {"name": "Tea", "price": price})
    product = create_product(payload, currency)
    assert (product["priceCents"], product["currency"]) == (cents, currency)
