"""Issue #9: the listing and search indexes (migrations/0002) and the plans that use them;
the count of products for sale (migrations/0003) applied over an existing catalog.

Plans are read with sequential scans priced out (`SET LOCAL enable_seqscan = off`), so a
table of a few rows is planned as a big one would be: each assertion names an index that
only migration 0002 creates, and fails without it. The SQL is whatever the services send,
taken from peewee's debug log, so the tests follow the real code path.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from urllib.parse import urlparse, urlunparse

import pytest
from peewee import ProgrammingError
from playhouse.migrations import Runner

from shopctl import db as shop_db
from shopctl.models import Order, Product, User, utcnow
from shopctl.schemas import OrderSearch, ProductListQuery
from shopctl.services.catalog import products as catalog
from shopctl.services.orders import reports as order_reports
from tests.conftest import _pg_admin, _postgres_database

MIGRATION = "0002_listing_and_search_indexes"
COUNT_MIGRATION = "0003_product_count"
FILLFACTOR_MIGRATION = "0004_product_fillfactor"
LISTING_INDEX = {"createdAt": "product_listing_created", "priceCents": "product_listing_price"}
TRIGRAM_INDEXES = {"product_name_trgm", "product_description_trgm"}
OLD_INDEX = "product_created_at"


def runner_for(database) -> Runner:
    return Runner(
        database, directory=str(shop_db.migrations_dir()), table_name=shop_db.MIGRATION_TABLE
    )


def product_indexes(database) -> set[str]:
    return {index.name for index in database.get_indexes("product")}


def _pg_admin_of(url: str):
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=3)
    conn.autocommit = True
    return conn


def postgres_only(backend_url: str) -> None:
    if not backend_url.startswith("postgres"):
        pytest.skip("pg_trgm and enable_seqscan are PostgreSQL's")


@pytest.fixture
def fresh_database(backend_url, tmp_path):
    """A new, empty database of this run's backend, apart from the session's one."""
    if backend_url.startswith("sqlite"):
        database = shop_db.open_database(f"sqlite:///{tmp_path}/fresh.db")
        yield database
        database.close()
        return
    with _postgres_database() as url:
        database = shop_db.open_database(url, max_connections=2)
        try:
            yield database
        finally:
            database.close_all()


def test_migration_applies_rolls_back_and_applies_again(fresh_database, backend_url):
    runner = runner_for(fresh_database)
    assert runner.up(MIGRATION) == ["0001_initial", MIGRATION]
    applied = product_indexes(fresh_database)
    created = set(LISTING_INDEX.values())
    if backend_url.startswith("postgres"):
        created |= TRIGRAM_INDEXES
    assert created <= applied
    assert OLD_INDEX not in applied  # a prefix of product_listing_created

    assert runner.down() == [MIGRATION]
    assert product_indexes(fresh_database) == (applied - created) | {OLD_INDEX}
    assert runner.up(MIGRATION) == [MIGRATION]
    assert product_indexes(fresh_database) == applied
    assert [m.name for m in runner.status() if m.applied] == ["0001_initial", MIGRATION]


def test_the_product_count_starts_from_the_catalog_and_rolls_back(fresh_database):
    runner = runner_for(fresh_database)
    runner.up(MIGRATION)
    for n, archived in enumerate((False, False, True, False)):
        fresh_database.execute_sql(
            'INSERT INTO "product" (id, name, price_cents, currency, quantity, is_archived,'
            " created_at, updated_at) VALUES (?, ?, 100, 'usd', 1, ?, ?, ?)".replace(
                "?", "%s" if isinstance(fresh_database, shop_db.PostgresPool) else "?"
            ),
            (str(uuid.uuid4()), f"P{n}", archived, utcnow(), utcnow()),
        )
    live = 'SELECT "live" FROM "product_count"'
    assert runner.up(COUNT_MIGRATION) == [COUNT_MIGRATION]
    assert fresh_database.execute_sql(live).fetchone() == (3,)
    assert runner.down() == [COUNT_MIGRATION]
    assert "product_count" not in fresh_database.get_tables()
    assert runner.up(COUNT_MIGRATION) == [COUNT_MIGRATION]
    assert fresh_database.execute_sql(live).fetchone() == (3,)


def test_product_pages_keep_room_for_stock_changes(fresh_database, backend_url):
    postgres_only(backend_url)
    runner = runner_for(fresh_database)
    runner.up(FILLFACTOR_MIGRATION)
    options = "SELECT reloptions FROM pg_class WHERE relname = 'product'"
    assert fresh_database.execute_sql(options).fetchone() == (["fillfactor=80"],)
    assert runner.down() == [FILLFACTOR_MIGRATION]
    assert fresh_database.execute_sql(options).fetchone() == (None,)


def test_without_pg_trgm_the_migration_says_what_to_run_and_changes_nothing(backend_url):
    postgres_only(backend_url)
    role = f"shopctl_no_ext_{uuid.uuid4().hex[:8]}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        with _postgres_database() as url:
            # The role owns the schema, so 0001 can create tables, but not the database,
            # so PostgreSQL refuses it CREATE EXTENSION even for a trusted extension.
            owner = _pg_admin_of(url)
            with owner.cursor() as cur:
                cur.execute(f'ALTER SCHEMA public OWNER TO "{role}"')
            owner.close()
            parts = urlparse(url)
            as_role = urlunparse(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
            database = shop_db.open_database(as_role, max_connections=2)
            try:
                runner = runner_for(database)
                with pytest.raises(ProgrammingError) as failure:
                    runner.up()
                message = str(failure.value)
                assert 'run "CREATE EXTENSION pg_trgm;"' in message
                assert "permission denied" in message and "Nothing was changed" in message
                assert [m.name for m in runner.status() if m.applied] == ["0001_initial"]
                indexes = product_indexes(database)
                assert OLD_INDEX in indexes and not indexes & set(LISTING_INDEX.values())
            finally:
                database.close_all()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


# --- plans -------------------------------------------------------------------------------


@contextmanager
def sent_statements():
    """Every (sql, params) peewee sends meanwhile, read from its debug log."""
    sent: list[tuple[str, list]] = []

    class Capture(logging.Handler):
        def emit(self, record):
            if isinstance(record.msg, tuple):
                sent.append(record.msg)

    logger, handler = logging.getLogger("peewee"), Capture()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield sent
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_and_explain(database, call, *, sort: bool = True):
    """`call()`'s result and the plan of each SELECT it sent, with seq scans priced out.

    Statistics are gathered first (without them the planner guesses from the file size
    that `is_archived = false` is rare) and rolled back with the rest: ANALYZE is
    transactional, so no other test's plans depend on this one's rows.
    """
    with database.atomic() as transaction:
        database.execute_sql("SET LOCAL enable_seqscan = off")
        if not sort:  # on a few rows a sort is cheap enough to beat any index order
            database.execute_sql("SET LOCAL enable_sort = off")
        database.execute_sql("ANALYZE product")
        with sent_statements() as sent:
            result = call()
        plans = [
            "\n".join(row[0] for row in database.execute_sql("EXPLAIN " + sql, params))
            for sql, params in sent
            if sql.lstrip().upper().startswith(("SELECT", "EXECUTE"))  # prepared or not
        ]
        transaction.rollback()
    return result, plans


def add_products(count: int = 30) -> None:
    for n in range(count):
        Product.create(name=f"Product {n:02}", price_cents=100 * (n % 7), quantity=n)


@pytest.mark.parametrize("sort_order", ["asc", "desc"])
@pytest.mark.parametrize("sort_by", ["createdAt", "priceCents"])
def test_a_listing_page_is_read_from_its_two_column_index(db, backend_url, sort_by, sort_order):
    postgres_only(backend_url)  # SQLite too, but only once ANALYZE has told it the table is big
    add_products()
    params = ProductListQuery(limit=20, page=2, sortBy=sort_by, sortOrder=sort_order)
    (products, meta), plans = run_and_explain(db, lambda: catalog.list_products(params), sort=False)
    assert len(products) == 10 and meta["total"] == 30
    page = next(plan for plan in plans if "Aggregate" not in plan)  # not the count
    assert LISTING_INDEX[sort_by] in page
    assert "Sort" not in page  # not even an incremental one: the index has the whole order


def test_sorting_by_name_needs_no_index_of_its_own(db, backend_url):
    """The unique index on name gives the order; the id never has to break a tie."""
    postgres_only(backend_url)
    add_products()
    params = ProductListQuery(limit=20, sortBy="name", sortOrder="desc")
    (products, _), plans = run_and_explain(db, lambda: catalog.list_products(params))
    assert products[0]["name"] == "Product 29"
    assert "product_name" in plans[0]


def test_search_is_served_by_the_trigram_indexes_and_stays_literal(db, backend_url):
    postgres_only(backend_url)
    for name, description in [
        ("Linen Apron", "Washed LINEN"),
        ("Oak Board", "cut from linen-coloured oak"),
        ("100% Cotton Towel", None),
        ("Snake_case Mug", None),
        ("Plain Mug", "snakeXcase pattern"),
    ]:
        Product.create(name=name, description=description, price_cents=500)
    # Enough other products that the planner prefers an index to reading the whole table.
    filler = [
        {"name": f"Spoon {n}", "description": "Turned beech", "price_cents": 100}
        for n in range(2000)
    ]
    Product.insert_many(filler).execute()
    for index in TRIGRAM_INDEXES:  # what autovacuum does: GIN queues fresh entries at first
        db.execute_sql("SELECT gin_clean_pending_list(%s::regclass)", (index,))

    def found(term: str) -> tuple[set[str], list[str]]:
        query = ProductListQuery(limit=20, search=term)
        (products, meta), plans = run_and_explain(db, lambda: catalog.list_products(query))
        assert meta["total"] == len(products)
        return {p["name"] for p in products}, plans

    names, plans = found("lINEN")
    assert names == {"Linen Apron", "Oak Board"}
    assert all(index in "\n".join(plans) for index in TRIGRAM_INDEXES), plans
    assert "Seq Scan" not in "\n".join(plans)
    assert found("0% co")[0] == {"100% Cotton Towel"}
    assert found("e_c")[0] == {"Snake_case Mug"}  # not "snakeXcase"
    assert found("%")[0] == {"100% Cotton Towel"}
    assert found("_")[0] == {"Snake_case Mug"}


def test_orders_list_by_email_finds_the_buyer_through_the_unique_index(db, backend_url):
    postgres_only(backend_url)
    buyer = User.create(email="buyer@example.com", password_hash="x")
    Order.create(user=buyer, amount_cents=100, currency="usd", expires_at=utcnow())
    search = OrderSearch(user="Buyer@Example.com")
    (rows, _), plans = run_and_explain(db, lambda: order_reports.search_orders(search))
    assert [row["userEmail"] for row in rows] == ["buyer@example.com"]
    assert rows[0]["lines"] == 0
    assert "user_email" in plans[0]
