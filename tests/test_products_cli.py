"""`shopctl products …` on both databases: seeding (generated, CSV, JSON), list, set-stock."""

from __future__ import annotations

import json

import pytest
from peewee import fn

from shopctl.models import Product, StockMovement
from tests.test_products_api import assert_ledger_holds, movements

GOOD_CSV = """name,description,price,priceCents,quantity
Linen Apron,"Washed linen, one size",24.50,,12
"Oak Board","Cut from ""white"" oak
finished with oil",,3900,0
Mug,,12.505,,
"""


def names() -> list[str]:
    return [p.name for p in Product.select().order_by(Product.name)]


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- generated products ------------------------------------------------------------------


def test_seed_generates_realistic_products_with_their_ledger(cli):
    result = cli("products", "seed", "--count", "40", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "Inserted 40 products" in result.output
    products = list(Product.select())
    assert len(products) == 40
    assert all(
        1 <= len(p.name) <= 200
        and p.description
        and p.price_cents > 0
        and p.quantity >= 0
        and p.currency == "usd"
        for p in products
    )
    assert len({p.price_cents for p in products}) > 10
    assert StockMovement.select().where(StockMovement.reason != "initial").count() == 0
    assert_ledger_holds()


def test_the_same_seed_gives_the_same_products_and_repeats_never_clash(cli):
    assert cli("products", "seed", "--count", "15", "--seed", "3").exit_code == 0
    first = {(p.name, p.price_cents, p.quantity) for p in Product.select()}
    StockMovement.delete().execute()
    Product.delete().execute()
    assert cli("products", "seed", "--count", "15", "--seed", "3").exit_code == 0
    assert {(p.name, p.price_cents, p.quantity) for p in Product.select()} == first
    assert cli("products", "seed", "--count", "15", "--seed", "3").exit_code == 0
    assert len(set(names())) == 30
    assert sum(name.endswith(" No. 2") for name in names()) == 15
    assert_ledger_holds()


def test_seed_json_output_and_bad_options(cli):
    result = cli("products", "seed", "-n", "3", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["inserted"] == 3
    assert cli("products", "seed", "--count", "0").exit_code == 2
    assert cli("products", "seed", "--count", "5", "--file", __file__).exit_code == 2
    assert Product.select().count() == 3


# --- products from files -----------------------------------------------------------------


def test_seed_from_a_good_csv(cli, tmp_path):
    result = cli("products", "seed", "--file", write(tmp_path, "products.csv", GOOD_CSV))
    assert result.exit_code == 0, result.output
    apron = Product.get(Product.name == "Linen Apron")
    board = Product.get(Product.name == "Oak Board")
    mug = Product.get(Product.name == "Mug")
    assert (apron.description, apron.price_cents, apron.quantity) == (
        "Washed linen, one size",
        2450,
        12,
    )
    assert board.description == 'Cut from "white" oak\nfinished with oil'
    assert (board.price_cents, board.quantity) == (3900, 0)
    assert (mug.description, mug.price_cents, mug.quantity) == (None, 1251, 0)
    assert movements(apron.id) == [(12, "initial")]
    assert_ledger_holds()


def test_a_csv_with_bad_rows_inserts_nothing_and_names_every_line(cli, tmp_path):
    cli(
        "products",
        "seed",
        "--file",
        write(tmp_path, "existing.json", '[{"name": "Kettle", "priceCents": 100}]'),
    )
    text = (
        "name,description,price,priceCents,quantity\n"
        "Good One,,1.00,,1\n"  # line 2: fine
        ',"a description\nover two lines",2.00,,\n'  # lines 3-4: no name
        "Cheap,,-1,,\n"  # line 5: negative price
        "Good One,,1.00,,1\n"  # line 6: duplicate of line 2
        "Kettle,,3.00,,\n"  # line 7: already in the database
        "Crate,,,,5\n"  # line 8: no price at all
        "Box,,1.00,,many\n"  # line 9: quantity not a number
        "Tin,,1.00,100,\n"  # line 10: both prices
        "Jar,,1.00,,1,extra\n"  # line 11: too many cells
    )
    result = cli("products", "seed", "--file", write(tmp_path, "products.csv", text))
    assert result.exit_code == 1
    output = result.output
    assert "8 bad row(s) in products.csv; nothing was inserted" in output
    for expected in (
        "line 3: name",
        "line 5: price",
        "line 6: name: duplicate name 'Good One', first on line 2",
        "line 7: name: a product named 'Kettle' already exists",
        "line 8: priceCents",
        "line 9: quantity",
        "line 10: priceCents",
        "line 11: has 6 fields",
    ):
        assert expected in output, expected
    assert "line 2" not in output.replace("first on line 2", "")
    assert names() == ["Kettle"]


@pytest.mark.parametrize(
    "header, message",
    [
        ("name,colour,price", "unknown: colour"),
        ("name,price,Name", "repeated: name"),
        ("description,price", "must name the columns"),
        ("name,quantity", "must name the columns"),
        ("", "must name the columns"),
    ],
)
def test_a_csv_with_a_bad_header_is_refused(cli, tmp_path, header, message):
    path = write(tmp_path, "products.csv", header + "\nMug,1.00,3\n")
    result = cli("products", "seed", "--file", path)
    assert result.exit_code == 1 and message in result.output
    assert Product.select().count() == 0


def test_seed_from_json_good_and_bad(cli, tmp_path):
    good = [
        {"name": "Teapot", "price": 35, "quantity": 4},
        {"name": "Cup", "priceCents": 850, "description": "Porcelain"},
    ]
    result = cli("products", "seed", "--file", write(tmp_path, "good.json", json.dumps(good)))
    assert result.exit_code == 0, result.output
    assert names() == ["Cup", "Teapot"]
    bad = [
        {"name": "Saucer", "priceCents": 400},
        {"name": "Spoon", "priceCents": "400", "quantity": 1.5},
        "not an object",
        {"name": "Cup", "priceCents": 1},
    ]
    result = cli("products", "seed", "--file", write(tmp_path, "bad.json", json.dumps(bad)))
    assert result.exit_code == 1
    for expected in (
        "[1].priceCents",
        "[1].quantity",
        "[2]: expected an object",
        "[3].name: a product named 'Cup' already exists",
    ):
        assert expected in result.output, expected
    assert names() == ["Cup", "Teapot"]
    assert_ledger_holds()


@pytest.mark.parametrize(
    "filename, text, message",
    [
        ("p.json", "{not json", "not valid JSON"),
        ("p.json", '{"name": "Mug"}', "JSON array"),
        ("p.json", "[]", "holds no products"),
        ("p.txt", "name\nMug\n", ".csv or .json"),
    ],
)
def test_unusable_files_are_refused(cli, tmp_path, filename, text, message):
    result = cli("products", "seed", "--file", write(tmp_path, filename, text))
    assert result.exit_code == 1 and message in result.output
    assert Product.select().count() == 0


# --- list and set-stock ------------------------------------------------------------------


def test_list_filters_and_prints_json(cli, tmp_path):
    cli("products", "seed", "--file", write(tmp_path, "p.csv", GOOD_CSV))
    result = cli("products", "list", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert {p["name"] for p in listed} == {"Linen Apron", "Oak Board", "Mug"}
    low = json.loads(cli("products", "list", "--low-stock", "5", "--json").output)
    assert {p["name"] for p in low} == {"Oak Board", "Mug"}
    found = json.loads(cli("products", "list", "--search", "OAK", "--json").output)
    assert [p["name"] for p in found] == ["Oak Board"]
    table = cli("products", "list", "--sort", "name", "--order", "asc")
    assert table.exit_code == 0 and "24.50 USD" in table.output and "3 product(s)" in table.output
    assert cli("products", "list", "--limit", "101").exit_code == 2
    assert cli("products", "list", "--sort", "colour").exit_code == 2


def test_set_stock_asks_first_and_writes_the_ledger(cli, tmp_path):
    cli("products", "seed", "--file", write(tmp_path, "p.csv", GOOD_CSV))
    apron = Product.get(Product.name == "Linen Apron")
    refused = cli("products", "set-stock", apron.id, "40")
    assert refused.exit_code == 1 and "--yes" in refused.output
    assert Product.get_by_id(apron.id).quantity == 12
    done = cli("products", "set-stock", apron.id, "40", "--yes")
    assert done.exit_code == 0, done.output
    assert "now 40 (movement +28)" in done.output
    as_json = cli("products", "set-stock", apron.id, "5", "--yes", "--json")
    assert json.loads(as_json.output)["quantity"] == 5
    assert movements(apron.id) == [(12, "initial"), (28, "set-stock"), (-35, "set-stock")]
    assert_ledger_holds()
    total = (
        StockMovement.select(fn.SUM(StockMovement.delta))
        .where(StockMovement.product == apron.id)
        .scalar()
    )
    assert total == 5


def test_set_stock_refuses_bad_ids_and_quantities(cli):
    assert cli("products", "set-stock", "nope", "3", "--yes").exit_code == 2
    missing = cli("products", "set-stock", "6f1f7d1c-0a55-4d3c-9a39-2b9f4a0a7c11", "3", "--yes")
    assert missing.exit_code == 1 and "Product not found" in missing.output
    assert (
        cli(
            "products", "set-stock", "6f1f7d1c-0a55-4d3c-9a39-2b9f4a0a7c11", "-1", "--yes"
        ).exit_code
        == 2
    )
    assert StockMovement.select().count() == 0
