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
from shopctl.models import Order, Product, StripeEvent, User, utcnow
from shopctl.schemas import EventSearch, OrderListQuery, OrderSearch, ProductListQuery
from shopctl.services.catalog import products as catalog
from shopctl.services.orders import listing as order_listing
from shopctl.services.orders import reports as order_reports
from shopctl.services.payments import event_log
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

    Statistics of the tables listings read are gathered first (without them the planner
    guesses from the file size, or from what earlier tests left in the statistics) and
    rolled back with the rest: ANALYZE is transactional, so no other test's plans depend
    on this one's rows.
    """
    with database.atomic() as transaction:
        database.execute_sql("SET LOCAL enable_seqscan = off")
        if not sort:  # on a few rows a sort is cheap enough to beat any index order
            database.execute_sql("SET LOCAL enable_sort = off")
        database.execute_sql('ANALYZE product, "order", "user", stripe_event')
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


def add_other_buyers(
    database, buyers: int = 500, orders_each: int = 4, status: str = "EXPIRED", due_in: int = 0
) -> None:
    """Other buyers with EXPIRED orders, made set-based: with statistics (run_and_explain
    gathers them), the planner seeks one buyer's, or one status's, orders as it would in
    a real shop, instead of reading a few rows any way at all."""
    database.execute_sql(
        'INSERT INTO "user" (id, email, password_hash, role, is_deleted, created_at, updated_at)'
        " SELECT md5(n::text)::uuid::text, 'other' || n || '@example.com', 'x', 'USER', false,"
        " now(), now() FROM generate_series(1, %s) AS n",
        (buyers,),
    )
    database.execute_sql(
        'INSERT INTO "order" (id, user_id, status, amount_cents, currency, pay_later,'
        " expires_at, stock_released, created_at, updated_at, fulfillment_status, disputed)"
        " SELECT md5(u.id || n)::uuid::text, u.id, %s, 100, 'usd', false,"
        " now() + %s * interval '1 minute', true, now(), now(), 'UNFULFILLED', false"
        " FROM \"user\" AS u, generate_series(1, %s) AS n WHERE u.email LIKE 'other%%'",
        (status, due_in, orders_each),
    )


def test_orders_list_by_email_finds_the_buyer_through_the_unique_index(db, backend_url):
    postgres_only(backend_url)
    buyer = User.create(email="buyer@example.com", password_hash="x")
    Order.create(user=buyer, amount_cents=100, currency="usd", expires_at=utcnow())
    add_other_buyers(db)
    search = OrderSearch(user="Buyer@Example.com")
    (rows, _), plans = run_and_explain(db, lambda: order_reports.search_orders(search))
    assert [row["userEmail"] for row in rows] == ["buyer@example.com"]
    assert rows[0]["lines"] == 0
    assert "user_email" in plans[0]


# --- issue 20: searches planned with their term, and the cursor pages' seek indexes ----

SEEK_MIGRATION = "0011_cursor_indexes"
RARE_NAME = "Quokka"


def add_spoons(database, count: int) -> None:
    """`count` products that all match "spoon", made set-based, newest first; the three
    oldest alone also match RARE_NAME, so a walk of the sort order finds them last."""
    database.execute_sql(
        'INSERT INTO "product" (id, name, description, price_cents, currency, quantity,'
        " is_archived, created_at, updated_at)"
        " SELECT md5(n::text)::uuid::text, CASE WHEN n > %s - 3 THEN %s ELSE 'Oak' END"
        " || ' Spoon ' || n, 'Turned beech, batch ' || n %% 100, 100 + n %% 500, 'usd', 1,"
        " false, now() - n * interval '1 second', now() FROM generate_series(1, %s) AS n",
        (count, RARE_NAME, count),
    )
    database.execute_sql("ANALYZE product")
    for index in TRIGRAM_INDEXES:  # what autovacuum does: GIN queues fresh entries at first
        database.execute_sql("SELECT gin_clean_pending_list(%s::regclass)", (index,))


def search_plan(database, term: str) -> str:
    """The plan PostgreSQL runs the page query of a search for `term` with."""
    query = ProductListQuery(limit=20, search=term, cursor="")
    with sent_statements() as sent:
        catalog.list_products(query)
    sql, params = sent[-1]
    rows = database.execute_sql("EXPLAIN " + sql, params)
    return "\n".join(row[0] for row in rows)


def test_each_search_is_planned_for_its_term(db, backend_url):
    """Issue 20: a search matching none of 200,000 products served 6 requests/s. Its
    statement was PREPAREd, and PostgreSQL runs a prepared statement with one generic
    plan once it judges that cheaper (after five runs; sooner while the trigram indexes'
    pending lists inflate every planned cost): a plan that cannot see the term, so one
    plan for "matches nothing" and "matches everything", and it walked the sort index
    filtering every row. Forced to generic plans here, the search must still be planned
    for its term: rare or empty, read from the trigram indexes; broad, from the sort index,
    which finds a page at once (rather than reading every match and sorting them)."""
    postgres_only(backend_url)
    with db.atomic() as transaction:
        add_spoons(db, 20_000)
        db.execute_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        for term in (RARE_NAME.lower(), "no such thing"):
            plan = search_plan(db, term)
            assert all(index in plan for index in TRIGRAM_INDEXES), plan
            assert "product_listing_created" not in plan, plan
        broad = search_plan(db, "SPOON")
        assert "product_listing_created" in broad and "Bitmap" not in broad, broad
        assert "Sort" not in broad, broad
        transaction.rollback()


def page_plan(database, backend_url: str, call) -> str:
    """The plan of the first SELECT `call()` sends (a listing's page), on either database:
    PostgreSQL's with sequential scans and sorts priced out, SQLite's as it would run."""
    if backend_url.startswith("postgres"):
        return run_and_explain(database, call, sort=False)[1][0]
    with sent_statements() as sent:
        call()
    sql, params = next((sql, params) for sql, params in sent if sql.startswith("SELECT"))
    return "\n".join(row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params))


def assert_seeks(plan: str, index: str) -> None:
    """The page is read from `index` in its order: nothing is sorted or read beside it."""
    assert index in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan  # PostgreSQL's, SQLite's


def second_page(listing, make_query, **filters):
    """A call of `listing` for the page after the first (by the first page's cursor)."""
    _, first = listing(make_query(cursor="", **filters))
    next_cursor = first["nextCursor"] if isinstance(first, dict) else first
    assert next_cursor
    return lambda: listing(make_query(cursor=next_cursor, **filters))


SORT_INDEX = {"createdAt": "product_listing_created", "priceCents": "product_listing_price"}


@pytest.mark.parametrize("sort_order", ["asc", "desc"])
@pytest.mark.parametrize("sort_by", ["createdAt", "priceCents", "name"])
def test_a_product_cursor_page_seeks_in_its_sort_index(db, backend_url, sort_by, sort_order):
    add_products(5)
    page = second_page(
        catalog.list_products, ProductListQuery, limit=2, sortBy=sort_by, sortOrder=sort_order
    )
    assert_seeks(page_plan(db, backend_url, page), SORT_INDEX.get(sort_by, "product_name"))


@pytest.mark.parametrize(
    ("who", "status", "index"),
    [
        ("ADMIN", None, "order_created_at_id"),
        ("ADMIN", "PAID", "order_status_created_at_id"),
        ("USER", None, "order_user_id_created_at_id"),
    ],
)
def test_an_order_cursor_page_seeks_in_the_index_of_its_filter(db, backend_url, who, status, index):
    buyer = User.create(email="buyer@example.com", password_hash="x", role=who)
    for state in ("PAID", "PAID", "PAID", "UNPAID"):
        Order.create(
            user=buyer, status=state, amount_cents=100, currency="usd", expires_at=utcnow()
        )
    if backend_url.startswith("postgres"):
        add_other_buyers(db)
    page = second_page(
        lambda query: order_listing.list_orders(buyer, query),
        OrderListQuery,
        limit=2,
        **({"status": status} if status else {}),
    )
    assert_seeks(page_plan(db, backend_url, page), index)


@pytest.mark.parametrize(
    ("narrowed", "index"),
    [
        ({}, "stripe_event_received_at_id"),
        ({"status": "FAILED"}, "stripe_event_status_received_at_id"),
        ({"type": "refund.updated"}, "stripe_event_type_received_at_id"),
    ],
)
def test_an_event_cursor_page_seeks_in_the_index_of_its_filter(db, backend_url, narrowed, index):
    for n in range(4):
        StripeEvent.create(id=f"evt_{n}", type="refund.updated", payload="{}", status="FAILED")
    if backend_url.startswith("postgres"):  # other events, so that a filter is worth seeking
        db.execute_sql(
            'INSERT INTO "stripe_event" (id, type, payload, status, source, attempts,'
            " received_at) SELECT 'evt_other_' || n, 'checkout.session.completed', '{}',"
            " 'PROCESSED', 'webhook', 1, now() - n * interval '1 second'"
            " FROM generate_series(1, 2000) AS n"
        )
    page = second_page(event_log.list_events, EventSearch, limit=2, **narrowed)
    assert_seeks(page_plan(db, backend_url, page), index)


def test_the_seek_indexes_replace_their_prefixes_and_roll_back(fresh_database):
    runner = runner_for(fresh_database)
    runner.up(SEEK_MIGRATION)
    indexes = {
        table: {index.name for index in fresh_database.get_indexes(table)}
        for table in ("order", "stripe_event", "product")
    }
    assert {"order_created_at_id", "order_status_created_at_id"} <= indexes["order"]
    assert not {"order_created_at", "order_status", "order_user_id_created_at"} & indexes["order"]
    assert "stripe_event_type_received_at_id" in indexes["stripe_event"]
    assert "product_is_archived" not in indexes["product"]
    assert runner.down() == [SEEK_MIGRATION]
    assert "order_status" in {index.name for index in fresh_database.get_indexes("order")}
    assert "product_is_archived" in product_indexes(fresh_database)
    assert runner.up(SEEK_MIGRATION) == [SEEK_MIGRATION]


OVERDUE_MIGRATION = "0014_overdue_orders_index"


def _overdue_lookups(settings):
    from shopctl.services.catalog.ledger import check_stuck_orders
    from shopctl.services.common import Report
    from shopctl.services.orders.expiry import expire_overdue

    return {
        "orders expire": lambda: expire_overdue(settings),
        "doctor's stuck orders": lambda: check_stuck_orders(Report()),
    }


@pytest.mark.parametrize("job", ["orders expire", "doctor's stuck orders"])
def test_overdue_orders_are_found_through_the_status_expiry_index(db, settings, backend_url, job):
    """Paid orders' reservations ended long ago too: the overdue unpaid ones are sought by
    (status, expires_at), not found among every order whose time is past."""
    buyer = User.create(email="buyer@example.com", password_hash="x")
    for state in ("PAID", "PAID", "PAID", "UNPAID"):
        Order.create(
            user=buyer, status=state, amount_cents=100, currency="usd", expires_at=utcnow()
        )
    if backend_url.startswith("postgres"):  # reservations still running: not to be read
        add_other_buyers(db, status="UNPAID", due_in=30)
    plan = page_plan(db, backend_url, _overdue_lookups(settings)[job])
    assert "order_status_expires_at" in plan, plan


def test_the_overdue_index_replaces_the_expiry_index_and_rolls_back(fresh_database):
    runner = runner_for(fresh_database)
    runner.up(OVERDUE_MIGRATION)
    indexes = {index.name for index in fresh_database.get_indexes("order")}
    assert "order_status_expires_at" in indexes and "order_expires_at" not in indexes
    assert runner.down() == [OVERDUE_MIGRATION]
    indexes = {index.name for index in fresh_database.get_indexes("order")}
    assert "order_expires_at" in indexes and "order_status_expires_at" not in indexes
    assert runner.up(OVERDUE_MIGRATION) == [OVERDUE_MIGRATION]
