"""Batch jobs beside plain SQL doing the same work on an identical copy of the database.

* `shopctl orders expire` over N overdue orders, against one transaction of set-based
  SQL that writes the same rows: order and payment status, history, ledger, stock.
* `shopctl products seed --count N`, against the same rows (made by the seed's own
  generator beforehand, not timed) inserted by the bare driver in one transaction.

The commands run as an operator or cron runs them: a subprocess, timed wall-clock,
Python start-up included (reported separately so it can be taken out).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

import dataset
from psycopg2.extras import execute_values


@dataclass
class BatchResult:
    name: str
    rows: int
    command_seconds: float
    plain_seconds: float
    plain_label: str
    detail: dict

    @property
    def command_rate(self) -> float:
        return self.rows / self.command_seconds

    @property
    def plain_rate(self) -> float:
        return self.rows / self.plain_seconds

    @property
    def ratio(self) -> float:
        return self.command_rate / self.plain_rate

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "rows": self.rows,
            "commandSeconds": round(self.command_seconds, 3),
            "plainSeconds": round(self.plain_seconds, 3),
            "plain": self.plain_label,
            "commandRowsPerSecond": round(self.command_rate),
            "plainRowsPerSecond": round(self.plain_rate),
            "ratio": round(self.ratio, 3),
            "detail": self.detail,
        }


def shopctl(args: list[str], env: dict[str, str], url: str) -> tuple[float, str]:
    """Run `shopctl ARGS` against `url`: (wall seconds, stdout); raises on failure."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "shopctl", *args],
        env=env | {"DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"shopctl {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return seconds, done.stdout


def startup_seconds(env: dict[str, str]) -> float:
    """What a `shopctl` process costs before it does anything (`shopctl --version`)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "shopctl", "--version"], env=env, capture_output=True, check=True
    )
    return time.perf_counter() - started


def _migrated_pair(server: str, env: dict[str, str], prefix: str) -> tuple[str, str, str]:
    """(template name, its url, copy url): a migrated database (filled later) and its twin."""
    template = dataset.unique_name(prefix)
    url = dataset.create_database(server, template)
    shopctl(["migrate"], env, url)
    return template, url, dataset.database_url(server, template + "_copy")


# --- orders expire ---------------------------------------------------------------------

PLAIN_EXPIRE = [
    """CREATE TEMP TABLE due ON COMMIT DROP AS SELECT id, stock_released FROM "order"
       WHERE status = 'UNPAID' AND expires_at < %(now)s""",
    """UPDATE "order" SET status = 'EXPIRED', stock_released = true, updated_at = %(now)s
       WHERE id IN (SELECT id FROM due)""",
    """UPDATE payment SET status = 'EXPIRED', updated_at = %(now)s
       WHERE order_id IN (SELECT id FROM due)""",
    """INSERT INTO order_history (order_id, from_status, to_status, reason, actor, created_at)
       SELECT id, 'UNPAID', 'EXPIRED', 'reservation expired', 'cron', %(now)s FROM due""",
    """INSERT INTO stock_movement (product_id, delta, reason, order_id, created_at)
       SELECT i.product_id, i.quantity, 'expired', i.order_id, %(now)s
       FROM order_item i JOIN due ON due.id = i.order_id WHERE NOT due.stock_released""",
    """UPDATE product SET quantity = quantity + back.units, updated_at = %(now)s
       FROM (SELECT i.product_id, sum(i.quantity) AS units FROM order_item i
             JOIN due ON due.id = i.order_id WHERE NOT due.stock_released
             GROUP BY i.product_id) AS back
       WHERE product.id = back.product_id""",
]


def plain_expire(url: str) -> float:
    started = time.perf_counter()
    with dataset.connect(url) as cursor:
        for statement in PLAIN_EXPIRE:
            cursor.execute(statement, {"now": dataset.utcnow()})
    return time.perf_counter() - started


def expire_state(url: str) -> dict:
    with dataset.connect(url) as cursor:
        cursor.execute('SELECT status, count(*) FROM "order" GROUP BY status')
        statuses = dict(cursor.fetchall())
        cursor.execute("SELECT sum(quantity) FROM product")
        (stock,) = cursor.fetchone()
        cursor.execute("SELECT count(*), coalesce(sum(delta), 0) FROM stock_movement")
        movements, ledger = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM order_history")
        (history,) = cursor.fetchone()
    return {
        "orders": statuses,
        "stock": int(stock),
        "ledgerRows": movements,
        "ledgerSum": int(ledger),
        "historyRows": history,
    }


def fill_overdue(url: str, orders: int, products: int) -> None:
    users = [uid for uid, _ in dataset.insert_users(url, 100, "-")]
    product_ids = dataset.insert_stock_products(url, products)
    past = dataset.utcnow() - timedelta(hours=2)
    dataset.insert_orders(
        url, "overdue", orders, users, product_ids, expires_in=timedelta(minutes=30), created=past
    )
    dataset.vacuum_analyze(url)


def expire_benchmark(
    server: str, env: dict[str, str], orders: int, products: int = 1000, batch: int | None = None
) -> BatchResult:
    template, url, copy_url = _migrated_pair(server, env, "shopctl_bench_expire")
    copy = template + "_copy"
    try:
        fill_overdue(url, orders, products)
        dataset.create_database(server, copy, template=template)
        args = ["orders", "expire", "--json"] + (["--batch", str(batch)] if batch else [])
        command_seconds, output = shopctl(args, env, url)
        plain_seconds = plain_expire(copy_url)
        summary = json.loads(output)
        command_state, plain_state = expire_state(url), expire_state(copy_url)
        if summary.get("expired") != orders or command_state != plain_state:
            raise RuntimeError(
                f"orders expire and the plain SQL disagree: {summary} "
                f"{command_state} vs {plain_state}"
            )
        detail = {
            "summary": summary,
            "state": command_state,
            "batch": batch or "command default",
            "products": products,
        }
        return BatchResult(
            "orders expire",
            orders,
            command_seconds,
            plain_seconds,
            "set-based SQL, one transaction",
            detail,
        )
    finally:
        dataset.drop_database(server, copy)
        dataset.drop_database(server, template)


# --- products seed ---------------------------------------------------------------------

PRODUCT_INSERT = (
    "INSERT INTO product (id, name, description, price_cents, currency, quantity, "
    "is_archived, created_at, updated_at) VALUES "
)
MOVEMENT_INSERT = "INSERT INTO stock_movement (product_id, delta, reason, created_at) VALUES "


def generated_rows(url: str, count: int, seed: int) -> list[tuple]:
    """The rows `products seed --count N --seed S` inserts, made by its own generator."""
    from shopctl import db
    from shopctl.services.catalog import seeding

    db.init_database(url, max_connections=1)
    try:
        return seeding.generate_products(count, seed, "usd", set())
    finally:
        db.database.close()


def plain_insert(url: str, rows: list[tuple], *, batched: bool) -> float:
    """Products and their initial movements, one transaction: executemany or execute_values."""
    movements = [(row[0], row[5], "initial", row[7]) for row in rows if row[5]]
    started = time.perf_counter()
    with dataset.connect(url) as cursor:
        if batched:
            execute_values(cursor, PRODUCT_INSERT + "%s", rows, page_size=1000)
            execute_values(cursor, MOVEMENT_INSERT + "%s", movements, page_size=1000)
        else:
            cursor.executemany(PRODUCT_INSERT + "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
            cursor.executemany(MOVEMENT_INSERT + "(%s, %s, %s, %s)", movements)
    return time.perf_counter() - started


def seed_benchmark(server: str, env: dict[str, str], count: int, seed: int = 7) -> BatchResult:
    template, _, _ = _migrated_pair(server, env, "shopctl_bench_seed")
    copies = [f"{template}_{kind}" for kind in ("command", "many", "values")]
    try:
        urls = [dataset.create_database(server, name, template=template) for name in copies]
        command_seconds, output = shopctl(
            ["products", "seed", "--count", str(count), "--seed", str(seed), "--json"], env, urls[0]
        )
        rows = generated_rows(urls[1], count, seed)
        many = plain_insert(urls[1], rows, batched=False)
        values = plain_insert(urls[2], rows, batched=True)
        # The stronger of the two plain baselines is the one the target is held against.
        plain_seconds, label = min(
            (many, "psycopg2 executemany"), (values, "psycopg2 execute_values")
        )
        detail = {
            "command": json.loads(output),
            "executemanySeconds": round(many, 3),
            "executeValuesSeconds": round(values, 3),
        }
        return BatchResult(
            "products seed",
            count,
            command_seconds,
            plain_seconds,
            f"{label}, one transaction",
            detail,
        )
    finally:
        for name in [*copies, template]:
            dataset.drop_database(server, name)
