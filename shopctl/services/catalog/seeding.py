"""Seeding the catalog: realistic generated products, or rows from a CSV / JSON file.

Generated products are deterministic for a given --seed and never collide with
names already in the database (a repeat run gets "… No. 2" names). File rows go
through the same schema as `POST /product`; every bad row is reported with its
line (CSV) or index (JSON) and nothing is inserted unless every row is good.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from shopctl.errors import InvalidInput
from shopctl.models import utcnow
from shopctl.money import Currency
from shopctl.money import currency as currency_rules
from shopctl.schemas import ProductCreate, validate
from shopctl.services.catalog import products as catalog

MAX_SEED_COUNT = 1_000_000
FILE_FIELDS = {
    "name": "name",
    "description": "description",
    "price": "price",
    "pricecents": "priceCents",
    "quantity": "quantity",
}
_INTEGER = re.compile(r"^[+-]?\d+$")


def _wordlist(text: str) -> tuple[str, ...]:
    return tuple(text.split())


COLLECTIONS = _wordlist(
    "Aurora Nordic Harbor Summit Meadow Coastal Urban Heritage Alpine Sierra Willow Granite "
    "Cedar Juniper Atlas Orchid Solstice Ember Tidewater Canyon"
)
ADJECTIVES = _wordlist(
    "Classic Rustic Modern Compact Deluxe Ergonomic Handcrafted Lightweight Premium Vintage "
    "Minimalist Sturdy Portable Elegant Essential Foldable Insulated Waterproof Adjustable "
    "Everyday Artisan Sleek Cozy Durable Refined Travel Organic Smart Signature Soft"
)
MATERIALS = _wordlist(
    "Oak Walnut Bamboo Steel Aluminum Ceramic Glass Linen Cotton Wool Leather Canvas Marble "
    "Copper Brass Cork Maple Stoneware Rattan Velvet Slate Titanium Porcelain Suede Birch"
)
# noun: (lowest, highest) price in major units of a two-decimal currency
NOUNS = {
    "Chair": (45, 400),
    "Desk Lamp": (25, 180),
    "Coffee Mug": (8, 35),
    "Backpack": (40, 220),
    "Water Bottle": (12, 45),
    "Notebook": (5, 30),
    "Throw Blanket": (30, 160),
    "Cutting Board": (15, 90),
    "Wall Clock": (20, 150),
    "Side Table": (60, 350),
    "Bookshelf": (90, 600),
    "Headphone Stand": (15, 70),
    "Plant Pot": (10, 80),
    "Serving Bowl": (14, 90),
    "Tote Bag": (12, 85),
    "Wallet": (20, 140),
    "Watch Strap": (15, 95),
    "Candle Holder": (9, 60),
    "Desk Organizer": (12, 75),
    "Picture Frame": (8, 60),
    "Pillow Cover": (12, 55),
    "Laptop Sleeve": (20, 90),
    "Bread Knife": (18, 120),
    "Teapot": (20, 130),
    "Stool": (35, 240),
    "Floor Lamp": (60, 420),
    "Rug": (50, 700),
    "Mirror": (40, 380),
    "Coat Rack": (35, 210),
    "Phone Case": (10, 60),
    "Fountain Pen": (15, 250),
    "Travel Mug": (14, 45),
    "Lunch Box": (12, 50),
    "Doormat": (15, 70),
    "Bath Towel": (12, 60),
    "Apron": (15, 65),
    "Salad Bowl": (18, 95),
    "Desk Mat": (15, 80),
    "Key Holder": (10, 55),
    "Wall Shelf": (25, 190),
}
NOUN_NAMES = tuple(NOUNS)
FEATURES = (
    "Built to last for years of daily use.",
    "Finished by hand in a small workshop.",
    "Easy to clean: a damp cloth is all it needs.",
    "Ships flat-packed and assembles in minutes.",
    "Pairs well with the rest of the collection.",
    "A thoughtful gift that never goes out of style.",
    "Backed by a two-year warranty.",
    "Made from responsibly sourced materials.",
    "Designed to save space without giving up comfort.",
    "Tested for everyday wear and tear.",
    "Its quiet colours suit any room.",
    "Light enough to take anywhere.",
)
ENDINGS = (99, 99, 95, 49, 0)
_PRICE_RANGES = {noun: (low, math.log(high / low)) for noun, (low, high) in NOUNS.items()}
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
COMBINATIONS = len(COLLECTIONS) * len(ADJECTIVES) * len(MATERIALS) * len(NOUN_NAMES)


# --- generated products ------------------------------------------------------------------


def _words(index: int) -> tuple[str, str, str, str]:
    index, noun = divmod(index, len(NOUN_NAMES))
    index, material = divmod(index, len(MATERIALS))
    collection, adjective = divmod(index, len(ADJECTIVES))
    return COLLECTIONS[collection], ADJECTIVES[adjective], MATERIALS[material], NOUN_NAMES[noun]


def _combinations(count: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    """(round, combination index): every combination once per round, in a shuffled order.

    i → (step·i + offset) mod COMBINATIONS visits each combination once when step is
    coprime with it; random.sample would draw each index in Python, several times slower.
    """
    step = rng.randrange(1, COMBINATIONS)
    while math.gcd(step, COMBINATIONS) != 1:
        step = rng.randrange(1, COMBINATIONS)
    offset = rng.randrange(COMBINATIONS)
    for position in range(count):
        round_, place = divmod(position, COMBINATIONS)
        yield round_, (step * place + offset) % COMBINATIONS


def random_ids(count: int) -> list[str]:
    """Random version-4 UUID strings drawn in one go (uuid.uuid4() per row is ~3x slower).

    They come from the OS, not from the seeded generator: a repeated run needs new ids.
    Sorted, so the product's primary key and the ledger's product index fill in order:
    that halves the cost of a bulk insert.
    """
    raw = os.urandom(16 * count).hex()
    ids = []
    for start in range(0, 32 * count, 32):
        h = raw[start : start + 32]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}")
    ids.sort()
    return ids


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name} No. {number}"
    taken.add(candidate)
    return candidate


def _price(rng: random.Random, noun: str, rules: Currency) -> int:
    """A price Stripe can charge: on the currency's step, at least its minimum."""
    low, spread = _PRICE_RANGES[noun]
    major = int(low * math.exp(spread * rng.random()))  # log-uniform: more cheap than dear
    if rules.exponent == 0:
        price = major * 100
    else:
        ending = ENDINGS[int(rng.random() * len(ENDINGS))]
        price = (major * 100 + ending) * 10 ** (rules.exponent - 2)
    return max(price - price % rules.step, rules.minimum)


def _quantity(rng: random.Random) -> int:
    if rng.random() < 0.06:
        return 0  # some of any real catalog is out of stock
    return min(int(rng.expovariate(1 / 80)) + 1, 5000)


def _generated_row(rng, round_, index, taken, currency, rules, product_key, stamp) -> tuple:
    collection, adjective, material, noun = _words(index)
    base = f"{collection} {adjective} {material} {noun}"
    name = _unique(f"{base} No. {round_ + 1}" if round_ else base, taken)
    feature = FEATURES[int(rng.random() * len(FEATURES))]
    description = (
        f"{adjective} {noun.lower()} in {material.lower()}, from our {collection} "
        f"collection. {feature}"
    )
    return catalog.new_product_row(
        name, description, _price(rng, noun, rules), currency, _quantity(rng), product_key, stamp
    )


def generate_products(count: int, seed: int | None, currency: str, taken: set[str]) -> list:
    """`count` product rows; the same seed and database give the same products."""
    if not 1 <= count <= MAX_SEED_COUNT:
        raise InvalidInput([{"path": "count", "message": f"must be 1 to {MAX_SEED_COUNT}"}])
    rng = random.Random(seed)
    stamp, rules = catalog.db_timestamp(utcnow()), currency_rules(currency)
    return [
        _generated_row(rng, round_, index, taken, currency, rules, key, stamp)
        for (round_, index), key in zip(_combinations(count, rng), random_ids(count), strict=True)
    ]


def seed_generated(
    count: int, seed: int | None, currency: str, progress: Callable[[int], None] | None = None
) -> int:
    """Insert `count` generated products (and their initial stock movements)."""
    rows = generate_products(count, seed, currency, catalog.existing_names())
    return catalog.insert_products(rows, progress)


# --- products from a file ----------------------------------------------------------------


def _bad_file(path: Path, message: str) -> InvalidInput:
    return InvalidInput(
        [{"path": path.name, "message": message}],
        message=f"{path.name} cannot be used; nothing was inserted",
    )


def _cell(field: str, text: str):
    """A CSV cell as JSON would give it: integers for the integer columns."""
    text = text.strip()
    if field in ("priceCents", "quantity") and _INTEGER.match(text):
        return int(text)
    return text


def _csv_header(path: Path, header: list[str]) -> list[str]:
    fields = [FILE_FIELDS.get(cell.strip().lower(), "") for cell in header]
    unknown = [cell for cell, field in zip(header, fields, strict=True) if not field]
    repeated = sorted({field for field in fields if field and fields.count(field) > 1})
    if unknown or repeated or "name" not in fields or not {"price", "priceCents"} & set(fields):
        problems = [f"unknown: {', '.join(unknown)}"] if unknown else []
        problems += [f"repeated: {', '.join(repeated)}"] if repeated else []
        raise _bad_file(
            path,
            "line 1 must name the columns: name, description, price or priceCents, quantity"
            + (f" ({'; '.join(problems)})" if problems else ""),
        )
    return fields


def _csv_rows(path: Path, reader) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each record; a record may span lines inside quotes."""
    line = reader.line_num
    try:
        for cells in reader:
            yield line + 1, cells
            line = reader.line_num
    except csv.Error as exc:
        raise _bad_file(path, f"line {reader.line_num}: {exc}") from None


def _csv_records(path: Path, text: str) -> Iterator[tuple[str, object]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _csv_header(path, next(reader, []))
    except csv.Error as exc:
        raise _bad_file(path, f"line 1: {exc}") from None
    for first_line, cells in _csv_rows(path, reader):
        label = f"line {first_line}"
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            yield label, f"has {len(cells)} fields; the header has {len(header)}"
            continue
        yield (
            label,
            {
                field: _cell(field, cell)
                for field, cell in zip(header, cells, strict=False)
                if cell.strip()
            },
        )


def _json_records(path: Path, text: str) -> Iterator[tuple[str, object]]:
    try:
        items = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _bad_file(path, f"not valid JSON ({exc})") from None
    if not isinstance(items, list):
        raise _bad_file(path, "expected a JSON array of product objects")
    for index, item in enumerate(items):
        yield f"[{index}]", item if isinstance(item, dict) else "expected an object"


def _records(path: Path) -> Iterator[tuple[str, object]]:
    kind = path.suffix.lower()
    if kind not in (".csv", ".json"):
        raise _bad_file(path, "use a .csv or .json file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_file(path, f"cannot read it ({exc})") from None
    return _csv_records(path, text) if kind == ".csv" else _json_records(path, text)


def _where(label: str, path: str) -> str:
    if not path:
        return label
    return f"{label}: {path}" if label.startswith("line") else f"{label}.{path}"


def _product(record: object, currency: str) -> tuple[ProductCreate | None, int, list[dict]]:
    """The row as the API would take it: (product, price in minor units, problems)."""
    if isinstance(record, str):
        return None, 0, [{"path": "", "message": record}]
    try:
        product = validate(ProductCreate, record)
        cents = catalog.price_cents(product.price, product.priceCents, currency)
    except InvalidInput as exc:
        return None, 0, exc.errors
    return product, cents, []


def _name_clash(record: object, label: str, seen: dict[str, str], taken: set[str]) -> list:
    name = record.get("name") if isinstance(record, dict) else None
    if not isinstance(name, str) or not name.strip():
        return []
    name = name.strip()
    if name in seen:
        return [{"path": "name", "message": f"duplicate name {name!r}, first on {seen[name]}"}]
    seen[name] = label
    if name in taken:
        return [{"path": "name", "message": f"a product named {name!r} already exists"}]
    return []


def read_product_file(path: Path, currency: str) -> list:
    """Every row of a CSV or JSON file as product rows, or InvalidInput listing every bad row.

    Error paths say where: `line 7: price` (CSV lines count from 1, the header included)
    or `[3].price` (JSON array index).
    """
    taken, seen, good, errors, bad_rows = catalog.existing_names(), {}, [], [], 0
    for label, record in _records(path):
        product, cents, problems = _product(record, currency)
        problems += _name_clash(record, label, seen, taken)
        if problems:
            bad_rows += 1
            errors += [
                {"path": _where(label, p["path"]), "message": p["message"]} for p in problems
            ]
        else:
            good.append((product, cents))
    if errors:
        raise InvalidInput(
            errors, message=f"{bad_rows} bad row(s) in {path.name}; nothing was inserted"
        )
    if not good:
        raise _bad_file(path, "it holds no products")
    stamp = catalog.db_timestamp(utcnow())
    return [
        catalog.new_product_row(p.name, p.description, cents, currency, p.quantity, key, stamp)
        for (p, cents), key in zip(good, random_ids(len(good)), strict=True)
    ]
