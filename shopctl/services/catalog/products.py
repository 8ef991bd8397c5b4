"""The catalog: products, their listing, stock set by hand, and bulk inserts for seeding.

Every stock change writes a StockMovement in the same transaction, so a product's
quantity always equals the sum of its movements (what `shopctl doctor` checks).
A product that was ever ordered is archived instead of deleted: its order items
keep pointing at it, and it disappears from listings and from new orders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache

from peewee import OP, SQL, Expression, IntegrityError, NodeList, Value, fn

# peewee turns driver errors into its own classes only inside execute_sql; the bulk
# path below talks to the driver's cursor directly, so it borrows the same translator.
from peewee import __exception_wrapper__ as translate_driver_errors

from shopctl import pagination
from shopctl.db import database, is_postgres, write_transaction
from shopctl.errors import Conflict, InvalidInput, NotFound
from shopctl.models import OrderItem, Product, ProductCount, StockMovement, utcnow
from shopctl.money import check_chargeable, to_minor_units
from shopctl.pagination import Keyset
from shopctl.prepared import Params, PreparedSelect
from shopctl.schemas import (
    ProductCreate,
    ProductListQuery,
    ProductRef,
    ProductUpdate,
    StockLevel,
    validate,
)
from shopctl.services.catalog.stock import check_room
from shopctl.services.common import escape_like, iso, resolve_id

DUPLICATE_NAME = "Product name already exists"
PRODUCT_COLUMNS = (
    "id",
    "name",
    "description",
    "price_cents",
    "currency",
    "quantity",
    "is_archived",
    "created_at",
    "updated_at",
)
MOVEMENT_COLUMNS = ("product_id", "delta", "reason", "created_at")
INSERT_CHUNK = 5000
# Each order the listing offers, with the index it is read from (migrations/0002): the
# id breaks ties, except for the unique name.
_SORT_COLUMNS = {
    "createdAt": (Product.created_at, Product.id),
    "priceCents": (Product.price_cents, Product.id),
    "name": (Product.name,),
}
KEYSETS = {
    (sort_by, order): Keyset("products", f"{sort_by}:{order}", columns, order == "desc")
    for sort_by, columns in _SORT_COLUMNS.items()
    for order in ("asc", "desc")
}


def product_dict(product: Product) -> dict:
    return _wire([getattr(product, name) for name in PRODUCT_COLUMNS])


def _wire(values) -> dict:
    """A product as the API sends it, from its values in PRODUCT_COLUMNS order (a listed
    row's total, after them, is not the product's)."""
    pid, name, description, cents, currency, quantity, archived, created, updated, *_ = values
    return {
        "id": pid,
        "name": name,
        "description": description,
        "priceCents": cents,
        "currency": currency,
        "quantity": quantity,
        "isArchived": archived,
        "createdAt": iso(created),
        "updatedAt": iso(updated),
    }


def product_id(value: str) -> str:
    """The canonical form of a product id, or InvalidInput (path `id`) if it is no UUID."""
    return str(validate(ProductRef, {"id": value}).id)


def find_product_id(text: str) -> str:
    """The id of the product `text` names: its whole id or a unique prefix (6+ characters)."""
    return resolve_id(Product, text, "product")


def price_cents(price: Decimal | None, cents: int | None, currency: str) -> int | None:
    """The price in minor units (`cents` as given, or `price` converted for `currency`),
    refused unless Stripe can charge it: at least its minimum, on its step (money.py)."""
    path = "priceCents" if price is None else "price"
    try:
        minor = cents if price is None else to_minor_units(price, currency)
        return None if minor is None else check_chargeable(minor, currency)
    except ValueError as exc:
        raise InvalidInput([{"path": path, "message": str(exc)}]) from None


def _live_product(value: str, *, lock: bool = False) -> Product:
    """A product that is not archived, or NotFound; `lock` holds its row until commit."""
    query = Product.select().where(
        (Product.id == product_id(value)) & (Product.is_archived == False)  # noqa: E712
    )
    # SQLite has no row locks: write_transaction() already holds its single write lock.
    if lock and is_postgres():
        query = query.for_update()
    product = query.first()
    if product is None:
        raise NotFound("Product not found")
    return product


def _record_movement(product: Product, delta: int, reason: str) -> None:
    if delta:
        StockMovement.create(product=product.id, delta=delta, reason=reason)


_LIVE_PRODUCT = PreparedSelect(
    lambda params: Product.select().where(
        (Product.id == params.id) & (Product.is_archived == False)  # noqa: E712
    )
)


def get_product(value: str) -> dict:
    """A product for the public; archived ones are gone (404), as if deleted."""
    product = _LIVE_PRODUCT.first(id=product_id(value))
    if product is None:
        raise NotFound("Product not found")
    return product_dict(product)


def create_product(payload: ProductCreate, currency: str) -> dict:
    """A new product priced in `currency`; its initial stock enters the ledger."""
    cents = price_cents(payload.price, payload.priceCents, currency)
    try:
        with write_transaction():
            product = Product.create(
                name=payload.name,
                description=payload.description,
                price_cents=cents,
                currency=currency,
                quantity=payload.quantity,
            )
            _record_movement(product, product.quantity, "initial")
    except IntegrityError:
        raise Conflict(DUPLICATE_NAME) from None
    return product_dict(product)


def _apply_update(product: Product, payload: ProductUpdate) -> None:
    given = payload.model_fields_set
    if "name" in given:
        product.name = payload.name
    if "description" in given:
        product.description = payload.description
    if given & {"price", "priceCents"}:
        product.price_cents = price_cents(payload.price, payload.priceCents, product.currency)
    if "quantity" in given:
        check_room(product.id, payload.quantity)
        _record_movement(product, payload.quantity - product.quantity, "adjustment")
        product.quantity = payload.quantity
    product.updated_at = utcnow()


def update_product(value: str, payload: ProductUpdate) -> dict:
    """Change the given fields; a new quantity is recorded as an adjustment movement."""
    if not payload.model_fields_set:
        raise InvalidInput([{"path": "body", "message": "give at least one field to change"}])
    try:
        with write_transaction():
            product = _live_product(value, lock=True)
            _apply_update(product, payload)
            product.save()
    except IntegrityError:
        raise Conflict(DUPLICATE_NAME) from None
    return product_dict(product)


def delete_product(value: str) -> str:
    """Delete a product never ordered ("deleted"), else archive it ("archived")."""
    with write_transaction():
        product = _live_product(value, lock=True)
        if OrderItem.select().where(OrderItem.product == product.id).exists():
            Product.update(is_archived=True, updated_at=utcnow()).where(
                Product.id == product.id
            ).execute()
            return "archived"
        StockMovement.delete().where(StockMovement.product == product.id).execute()
        product.delete_instance()
        return "deleted"


def set_stock(value: str, quantity: int, reason: str = "set-stock") -> tuple[dict, int]:
    """Set a product's stock; returns the product and the movement's delta."""
    quantity = validate(StockLevel, {"quantity": quantity}).quantity
    with write_transaction():
        product = _live_product(value, lock=True)
        check_room(product.id, quantity)
        delta = quantity - product.quantity
        _record_movement(product, delta, reason)
        product.quantity = quantity
        product.updated_at = utcnow()
        product.save()
    return product_dict(product), delta


def _matching(query, params: Params, search: bool, low_stock: bool, include_archived: bool):
    conditions = []
    if not include_archived:
        conditions.append(Product.is_archived == False)  # noqa: E712
    if search:
        # ILIKE on PostgreSQL, LIKE on SQLite (whose case folding covers ASCII only);
        # the pattern comes from `_like_pattern`, so % and _ in a search are literal.
        pattern = NodeList((params.pattern, SQL("ESCAPE"), Value("\\", converter=False)))
        conditions.append(
            Expression(Product.name, OP.ILIKE, pattern)
            | Expression(Product.description, OP.ILIKE, pattern)
        )
    if low_stock:
        conditions.append(Product.quantity <= params.low_stock)
    return query.where(*conditions) if conditions else query


def _like_pattern(search: str) -> str:
    return f"%{escape_like(search)}%"


def _seeking(query, params: Params, keyset: Keyset, after: bool):
    if after:
        query = query.where(keyset.after_params(params))
    return query.order_by(*keyset.order_by()).limit(params.limit).offset(params.offset)


_LISTED = [Product._meta.fields[name] for name in PRODUCT_COLUMNS]


def _page_query(params: Params, shape: tuple, keyset: Keyset, after: bool, total):
    """The page's products, then (in page-number mode) its total as one more column: one
    round trip, and the total read in the page's own snapshot."""
    columns = _LISTED if total is None else [*_LISTED, total.alias("total")]
    query = _matching(Product.select(*columns), params, *shape)
    return _seeking(query, params, keyset, after)


@cache
def _listing(
    search: bool,
    low_stock: bool,
    include_archived: bool,
    keyset: Keyset,
    after: bool,
    counted: bool,
):
    """The page and count queries for one shape of listing, compiled once. When
    `counted`, the page's rows carry the total (the count query is then only run for a
    page past the end, which has no rows to carry it).

    A search is planned with its pattern each time (not PREPAREd): PostgreSQL's generic
    plan cannot tell a term that matches nothing from one that matches everything, and
    for both it walked the sort index filtering every row (a search matching none of
    200,000 products took 350 ms). Planned with the pattern, a rare or empty term is read
    from the trigram indexes and a common one from the sort index, which soon finds a page.
    """
    shape = (search, low_stock, include_archived)

    def count_query(params: Params):
        if not any(shape):
            return ProductCount.select(ProductCount.live)
        return _matching(Product.select(fn.COUNT(SQL("*"))), params, *shape)

    def page_query(params: Params):
        total = count_query(params) if counted else None
        return _page_query(params, shape, keyset, after, total)

    page = PreparedSelect(page_query, plan_each_time=search)
    count = PreparedSelect(count_query, plan_each_time=search)
    return page, count


def list_products(
    params: ProductListQuery, *, low_stock: int | None = None, include_archived: bool = False
) -> tuple[list[dict], dict]:
    """One page of products and its meta: by page number (and then counted: the products
    for sale are a single row that triggers keep current) or after a cursor (not counted)."""
    keyset = KEYSETS[params.sortBy, params.sortOrder]
    given_page = params.page if "page" in params.model_fields_set else None
    window = pagination.window(keyset, limit=params.limit, cursor=params.cursor, page=given_page)
    counted = window.page is not None
    page_query, count_query = _listing(
        bool(params.search),
        low_stock is not None,
        include_archived,
        keyset,
        window.position is not None,
        counted,
    )
    filters = {"low_stock": low_stock}
    if params.search:
        filters["pattern"] = _like_pattern(params.search)
    rows = page_query.rows(**filters, **window.params())
    shown, next_cursor = window.page_of(rows, position=_as_product)

    def total() -> int:
        return rows[0][-1] if rows else count_query.scalar(**filters)

    return [_wire(row) for row in shown], window.meta(next_cursor, total)


def _as_product(row: tuple) -> Product:
    """A listed row as a model (for its cursor): its first columns are PRODUCT_COLUMNS."""
    product = Product(__no_default__=True)
    product.__data__ = dict(zip(PRODUCT_COLUMNS, row, strict=False))  # not the total
    return product


def existing_names() -> set[str]:
    """Every product name in the database, archived ones included (names stay unique)."""
    return {name for (name,) in Product.select(Product.name).tuples()}


def new_product_row(
    name: str,
    description: str | None,
    cents: int,
    currency: str,
    quantity: int,
    product_key: str,
    stamp,
) -> tuple:
    """A product row in PRODUCT_COLUMNS order, ready for `insert_products`."""
    return (product_key, name, description, cents, currency, quantity, False, stamp, stamp)


def db_timestamp(moment: datetime):
    """`moment` as the driver stores it: SQLite keeps text, as peewee writes it."""
    return moment if is_postgres() else moment.isoformat(" ")


def _bulk_insert(table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    names = ", ".join(f'"{column}"' for column in columns)
    with translate_driver_errors:
        cursor = database.cursor()
        if is_postgres():
            from psycopg2.extras import execute_values

            sql = f'INSERT INTO "{table}" ({names}) VALUES %s'
            execute_values(cursor, sql, rows, page_size=1000)
        else:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)


def insert_products(rows: Sequence[tuple], progress: Callable[[int], None] | None = None) -> int:
    """Insert valid product rows and their initial movements, all or nothing.

    Rows come from `new_product_row`; the driver's executemany (SQLite) or
    execute_values (PostgreSQL) does the work, as peewee's per-value SQL building
    would be several times slower. `progress(done)` is called after each chunk.
    """
    movement_table = StockMovement._meta.table_name
    try:
        with write_transaction():
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                _bulk_insert(Product._meta.table_name, PRODUCT_COLUMNS, chunk)
                movements = [(row[0], row[5], "initial", row[7]) for row in chunk if row[5]]
                _bulk_insert(movement_table, MOVEMENT_COLUMNS, movements)
                if progress:
                    progress(start + len(chunk))
    except IntegrityError:
        raise Conflict(
            "a product with one of these names was created meanwhile; nothing was inserted"
        ) from None
    return len(rows)
