"""Throwaway PostgreSQL databases and the data a run needs, written with plain SQL.

The catalog itself is seeded by `shopctl products seed` (what an operator runs); users,
stock for bulk orders and the orders themselves are inserted here set-based, so the
run's set-up takes seconds and never measures bcrypt or the API it is about to load.
Everything written keeps the stock ledger whole (stock = sum of movements), so
`shopctl doctor` can be run on the database afterwards.
"""

from __future__ import annotations

import os
import uuid
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import psycopg2
from psycopg2.extras import execute_values

STOCK_PRODUCTS = 200
STOCK_PER_PRODUCT = 1_000_000
# Bench-only products sort after the seeded catalog (newest first) and match no search.
STOCK_PRODUCT_CREATED = datetime(2000, 1, 1)


def utcnow() -> datetime:
    """Naive UTC, as shopctl stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def database_url(server: str, name: str) -> str:
    parts = urlparse(server)
    return urlunparse(parts._replace(path=f"/{name}"))


def unique_name(prefix: str = "shopctl_bench") -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@contextmanager
def admin(server: str):
    """An autocommit connection to the server's `postgres` database (CREATE/DROP DATABASE)."""
    with closing(psycopg2.connect(database_url(server, "postgres"))) as connection:
        connection.autocommit = True
        yield connection.cursor()


def create_database(server: str, name: str, template: str | None = None) -> str:
    with admin(server) as cursor:
        suffix = f' TEMPLATE "{template}"' if template else ""
        cursor.execute(f'CREATE DATABASE "{name}"{suffix}')
    return database_url(server, name)


def drop_database(server: str, name: str) -> None:
    with admin(server) as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def connect(url: str):
    """A connection whose block commits on success and rolls back on error."""
    with closing(psycopg2.connect(url)) as connection, connection:
        yield connection.cursor()


def vacuum_analyze(url: str) -> None:
    """Fresh planner statistics after bulk inserts (autovacuum may not have come by yet)."""
    with closing(psycopg2.connect(url)) as connection:
        connection.autocommit = True
        connection.cursor().execute("VACUUM ANALYZE")


def run_script(url: str, sql: str) -> None:
    """Run SQL statements outside a transaction (CREATE INDEX CONCURRENTLY, CREATE EXTENSION)."""
    with closing(psycopg2.connect(url)) as connection:
        connection.autocommit = True
        connection.cursor().execute(sql)


def insert_users(url: str, count: int, password_hash: str) -> list[tuple[str, str]]:
    """`count` buyers sharing one precomputed bcrypt hash: [(id, email)]."""
    now = utcnow()
    users = [(str(uuid.uuid4()), f"buyer{n:05d}@bench.example") for n in range(count)]
    rows = [
        (uid, email, password_hash, f"Buyer {n}", "USER", False, now, now)
        for n, (uid, email) in enumerate(users)
    ]
    with connect(url) as cursor:
        execute_values(
            cursor,
            'INSERT INTO "user" (id, email, password_hash, name, role, '
            "is_deleted, created_at, updated_at) VALUES %s",
            rows,
            page_size=1000,
        )
    return users


def insert_stock_products(url: str, count: int = STOCK_PRODUCTS) -> list[str]:
    """Products with deep stock for the orders inserted below, with their initial movements."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    stamp = STOCK_PRODUCT_CREATED
    products = [
        (
            pid,
            f"Bench stock item {n:04d}",
            None,
            1000 + n,
            "usd",
            STOCK_PER_PRODUCT,
            False,
            stamp,
            stamp,
        )
        for n, pid in enumerate(ids)
    ]
    with connect(url) as cursor:
        execute_values(
            cursor,
            "INSERT INTO product (id, name, description, price_cents, "
            "currency, quantity, is_archived, created_at, updated_at) VALUES %s",
            products,
        )
        execute_values(
            cursor,
            "INSERT INTO stock_movement (product_id, delta, reason, created_at) VALUES %s",
            [(pid, STOCK_PER_PRODUCT, "initial", stamp) for pid in ids],
        )
    return ids


# One order line of one unit each, spread over the given users and products; the same
# statements a real order writes (order, item, payment, ledger row, history row, stock).
_NEW_ORDERS = """
CREATE TEMP TABLE bench_new_order ON COMMIT DROP AS
SELECT md5(%(tag)s || '-o-' || n)::uuid::text AS order_id,
       md5(%(tag)s || '-i-' || n)::uuid::text AS item_id,
       md5(%(tag)s || '-p-' || n)::uuid::text AS payment_id,
       (%(users)s::text[])[1 + n %% cardinality(%(users)s::text[])] AS user_id,
       p.id AS product_id, p.name AS product_name, p.price_cents
FROM generate_series(1, %(count)s) AS n
JOIN product p ON p.id = (%(products)s::text[])[1 + n %% cardinality(%(products)s::text[])]
"""
_ORDER_STATEMENTS = [
    """INSERT INTO "order" (id, user_id, status, amount_cents, currency, pay_later, expires_at,
         stock_released, created_at, updated_at)
       SELECT order_id, user_id, 'UNPAID', price_cents, 'usd', true, %(expires)s, false,
         %(created)s, %(created)s FROM bench_new_order""",
    """INSERT INTO order_item (id, order_id, product_id, product_name, quantity, price_cents)
       SELECT item_id, order_id, product_id, product_name, 1, price_cents FROM bench_new_order""",
    """INSERT INTO payment (id, order_id, status, amount_cents, currency, attempts,
         refunded_cents, created_at, updated_at)
       SELECT payment_id, order_id, 'PENDING', price_cents, 'usd', 0, 0, %(created)s,
         %(created)s FROM bench_new_order""",
    """INSERT INTO stock_movement (product_id, delta, reason, order_id, created_at)
       SELECT product_id, -1, 'order', order_id, %(created)s FROM bench_new_order""",
    """INSERT INTO order_history (order_id, from_status, to_status, reason, actor, created_at)
       SELECT order_id, NULL, 'UNPAID', 'created', 'bench', %(created)s FROM bench_new_order""",
    """UPDATE product SET quantity = quantity - taken.units
       FROM (SELECT product_id, count(*) AS units FROM bench_new_order GROUP BY product_id)
         AS taken WHERE product.id = taken.product_id""",
]


def insert_orders(
    url: str,
    tag: str,
    count: int,
    user_ids: list[str],
    product_ids: list[str],
    *,
    expires_in: timedelta,
    created: datetime | None = None,
) -> None:
    """`count` UNPAID pay-later orders (one unit each), reserving stock like the API does."""
    created = created or utcnow()
    params = {
        "tag": tag,
        "count": count,
        "users": user_ids,
        "products": product_ids,
        "expires": created + expires_in,
        "created": created,
    }
    with connect(url) as cursor:
        cursor.execute(_NEW_ORDERS, params)
        for statement in _ORDER_STATEMENTS:
            cursor.execute(statement, params)


def open_payments(url: str, tag: str, count: int) -> list[tuple[str, str, int]]:
    """(payment id, order id, amount) of the orders `insert_orders(tag=…)` made, in order."""
    with connect(url) as cursor:
        cursor.execute(
            "SELECT p.id, p.order_id, p.amount_cents FROM generate_series(1, %(count)s) AS n "
            "JOIN payment p ON p.id = md5(%(tag)s || '-p-' || n)::uuid::text ORDER BY n",
            {"tag": tag, "count": count},
        )
        return cursor.fetchall()


def sale_products(url: str, min_stock: int, limit: int) -> list[tuple[str, int]]:
    """(id, quantity) of seeded products with at least `min_stock` units, for API orders."""
    with connect(url) as cursor:
        cursor.execute(
            "SELECT id, quantity FROM product WHERE quantity >= %s AND NOT is_archived "
            "AND name NOT LIKE 'Bench stock item%%' ORDER BY id LIMIT %s",
            (min_stock, limit),
        )
        return cursor.fetchall()


def restock(url: str, product_ids: list[str], units: int) -> None:
    """Give each product `units` more, through the ledger as an operator's adjustment, so a
    fast run does not sell out (409s) and `shopctl doctor` still finds every sum right."""
    with connect(url) as cursor:
        cursor.execute(
            "UPDATE product SET quantity = quantity + %s WHERE id = ANY(%s)", (units, product_ids)
        )
        cursor.execute(
            "INSERT INTO stock_movement (product_id, delta, reason, created_at) "
            "SELECT unnest(%s::varchar[]), %s, 'adjustment', now() AT TIME ZONE 'utc'",
            (product_ids, units),
        )


def catalog_ids(url: str) -> list[str]:
    with connect(url) as cursor:
        cursor.execute("SELECT id FROM product WHERE name NOT LIKE 'Bench stock item%' ORDER BY id")
        return [pid for (pid,) in cursor.fetchall()]


def stock_summary(url: str) -> dict:
    """Oversell evidence: negative stock rows and products whose ledger disagrees."""
    with connect(url) as cursor:
        cursor.execute("SELECT count(*) FROM product WHERE quantity < 0")
        (negative,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM product p LEFT JOIN (SELECT product_id, sum(delta) AS total "
            "FROM stock_movement GROUP BY product_id) m ON m.product_id = p.id "
            "WHERE p.quantity <> coalesce(m.total, 0)"
        )
        (mismatched,) = cursor.fetchone()
        cursor.execute('SELECT status, count(*) FROM "order" GROUP BY status ORDER BY status')
        statuses = dict(cursor.fetchall())
    return {"negativeStock": negative, "ledgerMismatches": mismatched, "orders": statuses}


def server_version(server: str) -> str:
    with admin(server) as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]
