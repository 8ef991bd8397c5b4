"""Issue 20: cursor pages of every listing, on both databases, over real HTTP and the CLI.

A walk follows `meta.nextCursor` to the end while rows are inserted and deleted between
its pages, on both sides of its position. Whatever happens, every row that existed
throughout appears exactly once, nothing appears twice, and the rows come in the order
asked for; OFFSET paging fails all three (an insert ahead repeats a row, a delete ahead
skips one). Bad cursors, a cursor with a page and pages past row 10,000 are 400s (exit 2).
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from shopctl import pagination
from shopctl.models import Order, Product, StripeEvent, User, utcnow
from tests.orders_support import bearer, make_user

SORTS = [(by, order) for by in ("createdAt", "priceCents", "name") for order in ("asc", "desc")]
SORT_COLUMN = {"createdAt": "created_at", "priceCents": "price_cents", "name": "name"}
EPOCH = datetime(2026, 1, 1, 12, 0, 0)
_numbers = itertools.count()


# --- rows, made directly so a walk can be disturbed between its pages ---------------------


def add_products(count: int, *, at: datetime | None = None, rng: random.Random) -> list[str]:
    """`count` products sharing a timestamp (`at`, else now) and a few prices: ties that
    only the id breaks."""
    stamp = at or utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "name": f"Walk product {next(_numbers):05d} {rng.choice(['mug', 'plate', 'bowl'])}",
            "price_cents": rng.choice([500, 700, 700, 900]),
            "quantity": 1,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for _ in range(count)
    ]
    Product.insert_many(rows).execute()
    return [row["id"] for row in rows]


def add_orders(user: User, count: int, *, at: datetime | None = None, status="UNPAID"):
    stamp = at or utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "user": user.id,
            "status": status,
            "amount_cents": 1000,
            "currency": "usd",
            "expires_at": stamp + timedelta(minutes=30),
            "created_at": stamp,
            "updated_at": stamp,
        }
        for _ in range(count)
    ]
    Order.insert_many(rows).execute()
    return [row["id"] for row in rows]


def add_events(count: int, *, at: datetime | None = None, status="PROCESSED") -> list[str]:
    stamp = at or utcnow()
    rows = [
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "checkout.session.completed",
            "payload": "{}",
            "status": status,
            "received_at": stamp,
        }
        for _ in range(count)
    ]
    StripeEvent.insert_many(rows).execute()
    return [row["id"] for row in rows]


# --- the walk -----------------------------------------------------------------------------


class Disturbance:
    """Between pages: rows inserted ahead of and behind the walk's position, and rows
    deleted that it has already shown and that it has not reached yet."""

    def __init__(self, model, initial: list[str], insert: Callable[[bool], list[str]], rng):
        self.model, self.insert, self.rng = model, insert, rng
        self.throughout = set(initial)  # rows that exist from the start to the end
        self.ever = set(initial)

    def __call__(self, seen: list[str]) -> None:
        for new in (self.insert(True), self.insert(False)):  # newest and oldest
            self.ever.update(new)
        shown = sorted(self.throughout & set(seen))
        ahead = sorted(self.throughout - set(seen))
        doomed = [self.rng.choice(rows) for rows in (shown, ahead) if rows]
        self.model.delete().where(self.model.id.in_(doomed)).execute()
        self.throughout -= set(doomed)


def walk(fetch: Callable[[str], tuple[list[str], str | None]], between) -> list[str]:
    """Every id a cursor walk shows, following nextCursor from an empty cursor."""
    seen: list[str] = []
    cursor: str | None = ""
    for _ in range(200):
        ids, cursor = fetch(cursor)
        seen += ids
        if cursor is None:
            return seen
        between(seen)
    raise AssertionError("the walk never ended")


def assert_walked(seen: list[str], disturbance: Disturbance) -> None:
    assert len(seen) == len(set(seen)), "a row was shown twice"
    assert disturbance.throughout <= set(seen), "a row that was there throughout was skipped"
    assert set(seen) <= disturbance.ever


def assert_in_order(model, seen: list[str], columns: tuple[str, ...], descending: bool):
    """The rows still there came in the order asked for, ties broken by id."""
    fields = [getattr(model, column) for column in columns]
    keys = dict(
        (row[-1], row[:-1])
        for row in model.select(*fields, model.id).where(model.id.in_(seen)).tuples()
    )
    walked = [(*keys[row], row) for row in seen if row in keys]
    assert walked == sorted(walked, reverse=descending)


def api_page(server, path: str, headers=None, **params) -> dict:
    response = server.request("GET", path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# --- products -----------------------------------------------------------------------------


@pytest.mark.parametrize(("sort_by", "sort_order"), SORTS)
def test_a_product_walk_shows_each_product_once_while_the_catalog_changes(
    server, sort_by, sort_order
):
    rng = random.Random(f"{sort_by}{sort_order}")
    initial = add_products(12, at=EPOCH, rng=rng) + add_products(12, rng=rng)

    def insert(newest: bool) -> list[str]:
        return add_products(1, at=None if newest else EPOCH - timedelta(days=1), rng=rng)

    disturbance = Disturbance(Product, initial, insert, rng)
    meta_seen = []

    def fetch(cursor: str):
        params = {"limit": 5, "cursor": cursor, "sortBy": sort_by, "sortOrder": sort_order}
        body = api_page(server, "/product", **params)
        meta_seen.append(body["meta"])
        return [product["id"] for product in body["data"]], body["meta"]["nextCursor"]

    seen = walk(fetch, disturbance)
    assert_walked(seen, disturbance)
    columns = (SORT_COLUMN[sort_by],) + (() if sort_by == "name" else ("id",))
    assert_in_order(Product, seen, columns, sort_order == "desc")
    # cursor pages are not counted; the last one says there is no next
    assert all(set(meta) == {"limit", "nextCursor"} for meta in meta_seen)
    assert meta_seen[-1]["nextCursor"] is None and len(meta_seen) >= 5


def test_a_search_walk_combines_the_filter_with_the_cursor(server):
    rng = random.Random(7)
    initial = add_products(30, at=EPOCH, rng=rng)
    mugs = {row.id for row in Product.select().where(Product.name.endswith(" mug"))}
    initial_mugs = [product for product in initial if product in mugs]

    def insert(newest: bool) -> list[str]:
        return add_products(2, at=None if newest else EPOCH - timedelta(days=1), rng=rng)

    disturbance = Disturbance(Product, initial_mugs, insert, rng)

    def fetch(cursor: str):
        body = api_page(server, "/product", limit=3, cursor=cursor, search="MUG")
        assert all(product["name"].endswith(" mug") for product in body["data"])
        return [product["id"] for product in body["data"]], body["meta"]["nextCursor"]

    seen = walk(fetch, disturbance)
    disturbance.ever |= {row.id for row in Product.select().where(Product.name.endswith(" mug"))}
    assert_walked(seen, disturbance)


def test_page_one_continues_by_cursor_and_the_last_page_has_no_next(server):
    rng = random.Random(3)
    made = add_products(9, rng=rng)
    first = api_page(server, "/product", limit=3)  # the Express API's paging, as before
    assert first["meta"]["page"] == 1 and first["meta"]["total"] == 9
    second = api_page(server, "/product", limit=3, cursor=first["meta"]["nextCursor"])
    assert second["data"] == api_page(server, "/product", limit=3, page=2)["data"]
    last = api_page(server, "/product", limit=3, cursor=second["meta"]["nextCursor"])
    assert last["meta"] == {"limit": 3, "nextCursor": None}  # exactly full, and the end
    shown = [p["id"] for body in (first, second, last) for p in body["data"]]
    assert sorted(shown) == sorted(made)
    assert api_page(server, "/product", limit=3, page=3)["meta"]["nextCursor"] is None
    empty = api_page(server, "/product", cursor="", search="nothing like this")
    assert empty["data"] == [] and empty["meta"] == {"limit": 10, "nextCursor": None}


# --- orders -------------------------------------------------------------------------------


def test_a_buyers_order_walk_shows_only_their_orders_once_each(server, settings):
    rng = random.Random(11)
    buyer, other = make_user("walker@example.com"), make_user("other@example.com")
    initial = add_orders(buyer, 8, at=EPOCH) + add_orders(buyer, 8)
    add_orders(other, 5)

    def insert(newest: bool) -> list[str]:
        at = None if newest else EPOCH - timedelta(days=1)
        add_orders(other, 1, at=at)
        return add_orders(buyer, 1, at=at)

    disturbance = Disturbance(Order, initial, insert, rng)
    headers = bearer(settings, buyer)

    def fetch(cursor: str):
        body = api_page(server, "/order", headers, limit=3, cursor=cursor)
        assert {order["userId"] for order in body["data"]} <= {buyer.id}
        return [order["id"] for order in body["data"]], body["meta"]["nextCursor"]

    seen = walk(fetch, disturbance)
    assert_walked(seen, disturbance)
    assert_in_order(Order, seen, ("created_at", "id"), descending=True)


def test_an_admins_walk_by_status_sees_every_buyer(server, settings):
    rng = random.Random(13)
    buyers = [make_user(f"buyer{n}@example.com") for n in range(3)]
    initial = []
    for buyer in buyers:
        initial += add_orders(buyer, 5, at=EPOCH, status="PAID")
        add_orders(buyer, 2, at=EPOCH, status="UNPAID")

    def insert(newest: bool) -> list[str]:
        at = None if newest else EPOCH - timedelta(days=1)
        return add_orders(rng.choice(buyers), 1, at=at, status="PAID")

    disturbance = Disturbance(Order, initial, insert, rng)
    headers = bearer(settings, make_user("admin@example.com", role="ADMIN"))

    def fetch(cursor: str):
        body = api_page(server, "/order", headers, limit=4, cursor=cursor, status="paid")
        assert {order["status"] for order in body["data"]} <= {"PAID"}
        return [order["id"] for order in body["data"]], body["meta"]["nextCursor"]

    seen = walk(fetch, disturbance)
    assert_walked(seen, disturbance)
    assert_in_order(Order, seen, ("created_at", "id"), descending=True)


# --- the CLI ------------------------------------------------------------------------------


def cli_page(cli, *args: str) -> dict:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_events_list_walks_by_cursor_while_events_arrive_and_are_pruned(cli):
    rng = random.Random(17)
    initial = add_events(7, at=EPOCH) + add_events(6) + add_events(2, status="FAILED")

    def insert(newest: bool) -> list[str]:
        return add_events(1, at=None if newest else EPOCH - timedelta(days=1))

    disturbance = Disturbance(StripeEvent, initial, insert, rng)

    def fetch(cursor: str):
        body = cli_page(cli, "events", "list", "--limit", "3", "--cursor", cursor)
        assert body["meta"]["limit"] == 3
        return [event["id"] for event in body["data"]], body["meta"]["nextCursor"]

    seen = walk(fetch, disturbance)
    assert_walked(seen, disturbance)
    assert_in_order(StripeEvent, seen, ("received_at", "id"), descending=True)
    StripeEvent.delete().where(StripeEvent.status == "FAILED").execute()
    add_events(3, status="FAILED")
    failed = cli_page(cli, "events", "list", "--status", "failed", "--limit", "2", "--cursor", "")
    rest = cli_page(
        cli, "events", "list", "--status", "FAILED", "--cursor", failed["meta"]["nextCursor"]
    )
    assert len(failed["data"]) + len(rest["data"]) == 3 and rest["meta"]["nextCursor"] is None


def test_orders_list_and_products_list_walk_by_cursor(cli):
    rng = random.Random(19)
    buyer = make_user("cli-walker@example.com")
    initial = add_orders(buyer, 4, at=EPOCH) + add_orders(buyer, 3)
    disturbance = Disturbance(
        Order, initial, lambda newest: add_orders(buyer, 1, at=None if newest else EPOCH), rng
    )

    def orders(cursor: str):
        body = cli_page(
            cli, "orders", "list", "--user", buyer.email, "--limit", "2", "--cursor", cursor
        )
        return [order["id"] for order in body["data"]], body["meta"]["nextCursor"]

    assert_walked(walk(orders, disturbance), disturbance)

    made = add_products(5, rng=rng)

    def products(cursor: str):
        body = cli_page(
            cli, "products", "list", "--limit", "2", "--sort", "name", "--cursor", cursor
        )
        return [product["id"] for product in body["data"]], body["meta"]["nextCursor"]

    assert sorted(walk(products, lambda seen: None)) == sorted(made)
    # without --cursor, --json prints the rows as it always did; a table says what is next
    assert len(cli_page(cli, "products", "list", "--limit", "2")) == 2
    table = cli("products", "list", "--limit", "2")
    assert table.exit_code == 0 and "next page: --cursor " in table.stdout
    token = table.stdout.split("next page: --cursor ")[1].split()[0]
    following = cli_page(cli, "products", "list", "--limit", "2", "--cursor", token)
    assert following["data"] == cli_page(cli, "products", "list", "--limit", "2", "--page", "2")


# --- refusals -----------------------------------------------------------------------------


def _forged(listing: str, sort: str, values: list, version: int = 1) -> str:
    """A cursor with a valid checksum (the key is no secret) and whatever inside."""
    document = {"v": version, "l": listing, "s": sort, "k": values}
    payload = json.dumps(document).encode()
    raw = pagination._checksum(payload) + payload
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _edited(cursor: str) -> str:
    """`cursor` with its position changed by hand and its checksum left as it was."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    checksum, document = raw[:8], json.loads(raw[8:])
    document["k"][-1] = "00000000-0000-0000-0000-000000000000"
    raw = checksum + json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def refusal(server, path: str, headers=None, **params) -> tuple[str, str, str]:
    response = server.request("GET", path, params=params, headers=headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["statusCode"] == 400
    (error,) = body["error"]
    return body["message"], error["path"], error["message"]


def test_bad_cursors_are_400s_that_say_what_to_do(server, settings):
    rng = random.Random(23)
    add_products(3, rng=rng)
    product_cursor = api_page(server, "/product", limit=1)["meta"]["nextCursor"]
    buyer = make_user("refused@example.com")
    add_orders(buyer, 3)
    headers = bearer(settings, buyer)
    order_cursor = api_page(server, "/order", headers, limit=1)["meta"]["nextCursor"]

    damaged = "not a cursor this listing gave out (damaged or edited)"
    by_name, by_price = {"sortBy": "name", "sortOrder": "asc"}, {"sortBy": "priceCents"}
    for bad, params in (
        ("garbage", {}),
        ("AAAA", {}),
        (product_cursor[:-3], {}),
        (_edited(product_cursor), {}),
        (_forged("products", "createdAt:desc", ["yesterday", "x"]), {}),
        (_forged("products", "createdAt:desc", ["2026-01-01T00:00:00+01:00", "x"]), {}),
        (_forged("products", "createdAt:desc", ["2026-01-01T00:00:00", 7]), {}),
        (_forged("products", "priceCents:desc", [True, "x"]), by_price),
        (_forged("products", "priceCents:desc", [2**64, "x"]), by_price),
        (_forged("products", "name:asc", ["\ud800"]), by_name),
        (_forged("products", "name:asc", ["a" * 201]), by_name),
        (_forged("products", "name:asc", []), by_name),
    ):
        message, path, detail = refusal(server, "/product", cursor=bad, **params)
        assert (message, path) == ("Validation Error", "cursor")
        assert detail.startswith(damaged) and "start again without cursor" in detail, bad

    _, _, detail = refusal(server, "/product", cursor=product_cursor, sortBy="name")
    assert "continues the order createdAt:desc, not name:desc" in detail
    _, _, detail = refusal(server, "/product", cursor=order_cursor)
    assert "a cursor of another listing, not of products" in detail
    _, _, detail = refusal(server, "/order", headers, cursor=product_cursor)
    assert "a cursor of another listing, not of orders" in detail
    version_two = _forged("products", "createdAt:desc", ["2026-01-01T00:00:00", "x"], 2)
    _, _, detail = refusal(server, "/product", cursor=version_two)
    assert "another version" in detail
    message, path, _ = refusal(server, "/product", cursor=product_cursor, page=1)
    assert (message, path) == ("Give cursor or page, not both", "page")
    assert refusal(server, "/order", headers, cursor="", page=2)[1] == "page"
    assert refusal(server, "/product", cursor="x" * 1201)[1] == "cursor"
    assert refusal(server, "/product", cursor="garbage!")[1] == "cursor"  # not base64
    assert "Traceback" not in server.output()


def test_pages_past_row_10000_point_to_the_cursor(server, settings):
    assert api_page(server, "/product", page=100, limit=100)["data"] == []  # row 10,000
    assert api_page(server, "/product", page=1000, limit=10)["data"] == []
    for params in ({"page": 101, "limit": 100}, {"page": 1001}, {"page": 1_000_000}):
        message, path, detail = refusal(server, "/product", **params)
        assert path == "page" and message.startswith("Page too deep") and "cursor" in message
        assert "use cursor (each page's meta.nextCursor)" in detail
    headers = bearer(settings, make_user("deep@example.com"))
    assert refusal(server, "/order", headers, page=501, limit=20)[1] == "page"


def test_the_cli_refuses_bad_cursors_and_deep_pages_with_exit_2(cli):
    add_events(2)
    event_cursor = cli_page(cli, "events", "list", "--limit", "1", "--cursor", "")
    next_event = event_cursor["meta"]["nextCursor"]
    for args in (
        ("products", "list", "--cursor", "garbage!"),
        ("products", "list", "--cursor", next_event),
        ("orders", "list", "--cursor", next_event),
        ("events", "list", "--cursor", _edited(next_event)),
        ("products", "list", "--page", "2", "--cursor", ""),
        ("products", "list", "--page", "501"),  # 501 pages of 20
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "cursor" in result.output and "Traceback" not in result.output
