"""A shop of a given size for `bench/run --scale`, built set-based in a migrated database.

For N products: N products, 2N orders (one or two lines each) with their payments,
history and stock movements, N stored Stripe events, N/10 buyers (20 orders each at
every size, so one buyer's list is the same length at ten thousand and at a million).
Orders are 85% PAID, 10% EXPIRED, 5% CANCELED and 0.1% UNPAID (reserved, not yet due:
a reservation lasts minutes, so few of a year's orders are open at once);
each product's stock is its initial 1,000 units minus what holding orders took, and every
unit moved has its ledger row, so `shopctl doctor` passes on the result.

Fast because: the secondary indexes of the filled tables are dropped and rebuilt after
the load, two at a time (their definitions are read from pg_indexes, so a later
migration's indexes are rebuilt too); rows go in in primary-key order; row triggers
(foreign keys, the product count) are off for the load (`session_replication_role =
replica`; the data is consistent by construction and the product count is recounted);
and commits are asynchronous.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing

import psycopg2

INITIAL_STOCK = 1000
ORDERS_PER_PRODUCT = 2
ORDERS_PER_BUYER = 20
EVENTS_PER_PRODUCT = 1
FILLED = ("user", "product", "order", "order_item", "payment", "order_history",
          "stock_movement", "stripe_event")  # fmt: skip

# {n} products, {o} orders, {u} buyers, {e} events; `now` a naive UTC timestamp.
BUILD = [
    """CREATE TEMP TABLE scale_line AS
       SELECT n AS order_no, k AS line_no,
              1 + (n::bigint * 7919 + k * 104729) %% %(n)s AS product_no,
              CASE WHEN n %% 1000 = 0 THEN 'UNPAID' WHEN n %% 20 IN (1, 2) THEN 'EXPIRED'
                   WHEN n %% 20 = 3 THEN 'CANCELED' ELSE 'PAID' END AS status
       FROM generate_series(1, %(o)s) AS n, generate_series(1, 1 + n %% 2) AS k""",
    """CREATE TEMP TABLE scale_held AS SELECT product_no, count(*) AS units FROM scale_line
       WHERE status IN ('UNPAID', 'PAID') GROUP BY product_no""",
    """INSERT INTO "user" (id, email, password_hash, name, role, is_deleted, created_at,
         updated_at)
       SELECT md5('u' || u)::uuid::text, 'buyer' || u || '@scale.example', %(hash)s,
         'Buyer ' || u, 'USER', false, %(now)s - interval '400 days', %(now)s
       FROM generate_series(0, %(u)s - 1) AS u ORDER BY 1""",
    """INSERT INTO product (id, name, description, price_cents, currency, quantity,
         is_archived, created_at, updated_at)
       SELECT md5('p' || i)::uuid::text,
         (%(words)s::text[])[1 + i %% 20] || ' ' || (%(words)s::text[])[21 + i / 20 %% 30]
           || ' ' || (%(words)s::text[])[51 + i / 600 %% 25] || ' '
           || (%(words)s::text[])[76 + i / 15000 %% 20] || ' No. ' || i,
         'A ' || lower((%(words)s::text[])[21 + i / 20 %% 30]) || ' piece, made to last.',
         500 + i * 37 %% 20000, 'usd', %(stock)s - coalesce(h.units, 0), false,
         %(now)s - interval '400 days' * (%(n)s - i) / %(n)s, %(now)s
       FROM generate_series(1, %(n)s) AS i LEFT JOIN scale_held h ON h.product_no = i
       ORDER BY 1""",
    # Paid orders count as shipped (fulfillment_status only: the build writes no shipment
    # rows yet), so doctor's late-shipment check passes as in a shop that ships.
    """INSERT INTO "order" (id, user_id, status, amount_cents, currency, pay_later,
         expires_at, stock_released, created_at, updated_at, fulfillment_status)
       SELECT md5('o' || l.order_no)::uuid::text,
         md5('u' || l.order_no %% %(u)s)::uuid::text, min(l.status),
         sum(500 + l.product_no * 37 %% 20000), 'usd', l.order_no %% 3 = 0,
         CASE WHEN min(l.status) = 'UNPAID' THEN %(now)s + interval '1 hour'
              ELSE %(now)s - interval '365 days' * (%(o)s - l.order_no) / %(o)s END,
         min(l.status) IN ('EXPIRED', 'CANCELED'),
         %(now)s - interval '365 days' * (%(o)s - l.order_no) / %(o)s, %(now)s,
         CASE WHEN min(l.status) = 'PAID' THEN 'FULFILLED' ELSE 'UNFULFILLED' END
       FROM scale_line l GROUP BY l.order_no ORDER BY 1""",
    """INSERT INTO order_item (id, order_id, product_id, product_name, quantity, price_cents)
       SELECT md5('i' || order_no || '-' || line_no)::uuid::text,
         md5('o' || order_no)::uuid::text, md5('p' || product_no)::uuid::text,
         'Product No. ' || product_no, 1, 500 + product_no * 37 %% 20000
       FROM scale_line ORDER BY 1""",
    """INSERT INTO payment (id, order_id, status, amount_cents, currency, session_id,
         payment_intent_id, attempts, refunded_cents, paid_at, created_at, updated_at)
       SELECT md5('y' || o.id)::uuid::text, o.id,
         CASE WHEN o.status = 'UNPAID' THEN 'PENDING' ELSE o.status END, o.amount_cents, 'usd',
         CASE WHEN o.status = 'PAID' THEN 'cs_scale_' || md5(o.id) END,
         CASE WHEN o.status = 'PAID' THEN 'pi_scale_' || md5(o.id) END,
         CASE WHEN o.status = 'PAID' THEN 1 ELSE 0 END, 0,
         CASE WHEN o.status = 'PAID' THEN o.created_at + interval '2 minutes' END,
         o.created_at, o.updated_at
       FROM "order" o ORDER BY 1""",
    """INSERT INTO order_history (order_id, from_status, to_status, reason, actor, created_at)
       SELECT id, NULL, 'UNPAID', 'created', 'scale', created_at FROM "order"
       UNION ALL
       SELECT id, 'UNPAID', status, 'settled', 'scale', created_at + interval '2 minutes'
       FROM "order" WHERE status <> 'UNPAID'
       ORDER BY 6""",
    """INSERT INTO stock_movement (product_id, delta, reason, order_id, created_at)
       SELECT md5('p' || i)::uuid::text, %(stock)s, 'initial', NULL,
         %(now)s - interval '400 days' FROM generate_series(1, %(n)s) AS i
       UNION ALL
       SELECT md5('p' || product_no)::uuid::text, -1, 'order', md5('o' || order_no)::uuid::text,
         %(now)s - interval '365 days' * (%(o)s - order_no) / %(o)s FROM scale_line
       UNION ALL
       SELECT md5('p' || product_no)::uuid::text, 1, lower(status),
         md5('o' || order_no)::uuid::text,
         %(now)s - interval '365 days' * (%(o)s - order_no) / %(o)s + interval '2 minutes'
       FROM scale_line WHERE status IN ('EXPIRED', 'CANCELED')""",
    # The newest paid orders' completion events, received over the last 60 days (inside
    # the 90-day retention: nothing is prunable, so doctor's retention check passes).
    """INSERT INTO stripe_event (id, type, payload, status, source, attempts, payment_id,
         stripe_created_at, received_at, processed_at)
       SELECT 'evt_scale_' || md5(p.id), 'checkout.session.completed',
         '{"id": "evt_scale_' || md5(p.id) || '", "type": "checkout.session.completed", '
           || '"data": {"object": {"id": "' || p.session_id || '", "payment_status": "paid", '
           || '"amount_total": ' || p.amount_cents || '}}}',
         'PROCESSED', 'webhook', 1, p.id,
         %(now)s - interval '60 days' * r.rank / %(e)s,
         %(now)s - interval '60 days' * r.rank / %(e)s + interval '1 second',
         %(now)s - interval '60 days' * r.rank / %(e)s + interval '2 seconds'
       FROM (SELECT o.id AS order_id, row_number() OVER (ORDER BY o.created_at DESC) AS rank
             FROM "order" o WHERE o.status = 'PAID' ORDER BY o.created_at DESC LIMIT %(e)s) r
       JOIN payment p ON p.order_id = r.order_id ORDER BY 1""",
    "UPDATE product_count SET live = (SELECT count(*) FROM product WHERE NOT is_archived)",
]


def words() -> list[str]:
    """20 collections, 30 adjectives, 25 materials and 20 nouns of the catalog seed, in one
    array (BUILD indexes it so), so the searches the benchmark types find products."""
    from shopctl.services.catalog import seeding

    parts = (seeding.COLLECTIONS, seeding.ADJECTIVES, seeding.MATERIALS, list(seeding.NOUNS))
    sizes = (20, 30, 25, 20)
    if any(len(part) < size for part, size in zip(parts, sizes, strict=True)):
        raise RuntimeError("the seed's word lists shrank: update scale_data.BUILD")
    return [word for part, size in zip(parts, sizes, strict=True) for word in part[:size]]


def secondary_indexes(cursor) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the filled tables' indexes that back no constraint."""
    cursor.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        (list(FILLED),),
    )
    return cursor.fetchall()


def rebuild(url: str, definitions: list[str], builders: int = 2) -> None:
    """Run the CREATE INDEX statements on `builders` connections at once: a trigram (GIN)
    build uses one core, and there are two."""
    queue = sorted(definitions, key=lambda sql: "gin" not in sql)  # the slowest first
    lock, failures = threading.Lock(), []

    def work() -> None:
        with closing(psycopg2.connect(url)) as connection:
            connection.autocommit = True
            cursor = connection.cursor()
            cursor.execute("SET maintenance_work_mem = '256MB'")
            while True:
                with lock:
                    if not queue or failures:
                        return
                    sql = queue.pop(0)
                try:
                    cursor.execute(sql)
                except psycopg2.Error as exc:
                    failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(builders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def build(url: str, products: int, password_hash: str, now, log=print) -> dict:
    """Fill the migrated, empty database at `url`; returns the row counts and seconds."""
    params = {
        "n": products,
        "o": products * ORDERS_PER_PRODUCT,
        "u": max(1, products * ORDERS_PER_PRODUCT // ORDERS_PER_BUYER),
        "e": products * EVENTS_PER_PRODUCT,
        "hash": password_hash,
        "now": now,
        "stock": INITIAL_STOCK,
        "words": words(),
    }
    started = time.perf_counter()
    with closing(psycopg2.connect(url)) as connection:
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute("SET work_mem = '64MB'")
        indexes = secondary_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET session_replication_role = replica")
        for statement in BUILD:
            step = time.perf_counter()
            cursor.execute(statement, params)
            what = " ".join(statement.split()[:3])
            log(f"    {what}: {cursor.rowcount:,} rows, {time.perf_counter() - step:.1f}s")
        cursor.execute("SET session_replication_role = DEFAULT")
        step = time.perf_counter()
        rebuild(url, [definition for _, definition in indexes])
        log(f"    {len(indexes)} indexes rebuilt, {time.perf_counter() - step:.1f}s")
        step = time.perf_counter()
        cursor.execute("VACUUM ANALYZE")
        log(f"    VACUUM ANALYZE {time.perf_counter() - step:.1f}s")
        cursor.execute("SELECT pg_database_size(current_database())")
        (size,) = cursor.fetchone()
    return {
        "products": params["n"],
        "orders": params["o"],
        "buyers": params["u"],
        "events": params["e"],
        "seconds": round(time.perf_counter() - started, 1),
        "databaseMiB": round(size / 2**20),
    }
