"""How fast does `shopctl orders expire` clear a backlog, next to plain set-based SQL?

Builds a database with N overdue, reserved orders (bulk inserts), copies it three times
and times, each on its own copy:

* `shopctl orders expire`, the real command in a subprocess as cron runs it (batches,
  row locks, history rows, payment status, stock ledger), and its start-up alone;
* "plain SQL, same end state": one transaction of set-based statements leaving the
  database exactly as the command does (history and ledger rows included; checked);
* "plain SQL, bare": only the status change and the stock restore (orders, payments,
  product quantities) — no history, no ledger.

Each is timed `--repeat` times on fresh copies and the best time counts (other load on
the machine only ever slows a run down). Prints orders/s for each and the command's ratio
to both.

    python bench/expire_orders.py                       # SQLite and PostgreSQL, 100,000 orders
    python bench/expire_orders.py --backend sqlite --orders 20000 --batch 1000
    SHOPCTL_BENCH_PG=postgresql://postgres@127.0.0.1:5432/postgres python bench/expire_orders.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from shopctl import db
from shopctl.models import Product, User, new_id, utcnow

PG_SERVER = os.environ.get("SHOPCTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CHUNK = 2000
OVERDUE = """FROM "order" o WHERE o.status = 'UNPAID' AND o.expires_at < {now}"""
HOLDING = OVERDUE + " AND o.stock_released = {false}"

BARE_SQL = [
    f"""UPDATE product SET quantity = quantity + (
          SELECT SUM(i.quantity) FROM order_item i JOIN ({"SELECT o.id " + HOLDING}) h
          ON h.id = i.order_id WHERE i.product_id = product.id)
        WHERE id IN (SELECT i.product_id FROM order_item i JOIN ({"SELECT o.id " + HOLDING}) h
          ON h.id = i.order_id)""",
    f"""UPDATE payment SET status = 'EXPIRED', updated_at = {{now}}
        WHERE order_id IN (SELECT o.id {OVERDUE})""",
    """UPDATE "order" SET status = 'EXPIRED', stock_released = {true}, updated_at = {now}
        WHERE status = 'UNPAID' AND expires_at < {now}""",
]
LEDGER_SQL = [
    f"""INSERT INTO order_history (order_id, from_status, to_status, reason, actor, created_at)
        SELECT o.id, 'UNPAID', 'EXPIRED', 'reservation expired', 'cron', {{now}} {OVERDUE}""",
    f"""INSERT INTO stock_movement (product_id, delta, reason, order_id, created_at)
        SELECT i.product_id, i.quantity, 'expired', i.order_id, {{now}}
        FROM order_item i JOIN ({"SELECT o.id " + HOLDING}) h ON h.id = i.order_id""",
]
END_STATE = [
    """SELECT status, COUNT(*) FROM "order" GROUP BY status ORDER BY status""",
    """SELECT status, COUNT(*) FROM payment GROUP BY status ORDER BY status""",
    """SELECT COUNT(*), SUM(quantity) FROM product""",
    """SELECT reason, COUNT(*), SUM(delta) FROM stock_movement GROUP BY reason ORDER BY reason""",
    """SELECT to_status, actor, COUNT(*) FROM order_history GROUP BY to_status, actor""",
]


def bulk_insert(table: str, columns: str, rows: list[tuple]) -> None:
    """Rows straight through the driver: building 400,000 rows in peewee takes minutes."""
    names = ", ".join(f'"{name}"' for name in columns.split())
    if db.is_postgres():
        from psycopg2.extras import execute_values

        sql = f'INSERT INTO "{table}" ({names}) VALUES %s'
        execute_values(db.database.cursor(), sql, rows, page_size=CHUNK)
    else:
        marks = ", ".join("?" * len(columns.split()))
        db.database.cursor().executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)


def fill(url: str, orders: int, products: int) -> None:
    """`orders` overdue UNPAID orders of one item each, spread over `products` products,
    written in creation order as the shop would have written them."""
    db.init_database(url)
    db.migrate()
    past = utcnow() - timedelta(hours=1)
    with db.database.atomic():
        user = User.create(email="bench@example.com", password_hash="-", created_at=past)
        catalog = [
            Product.create(name=f"Product {n}", price_cents=500, quantity=orders, created_at=past)
            for n in range(products)
        ]
        order_ids = [new_id() for _ in range(orders)]
        bought = [catalog[n % products].id for n in range(orders)]
        pairs = list(zip(order_ids, bought, strict=True))
        bulk_insert(
            "order",
            "id user_id status amount_cents currency pay_later expires_at stock_released "
            "created_at updated_at",
            [
                (oid, user.id, "UNPAID", 500, "usd", False, past, False, past, past)
                for oid in order_ids
            ],
        )
        bulk_insert(
            "order_item",
            "id order_id product_id product_name quantity price_cents",
            [(new_id(), oid, pid, "Product", 1, 500) for oid, pid in pairs],
        )
        bulk_insert(
            "payment",
            "id order_id status amount_cents currency attempts refunded_cents created_at "
            "updated_at",
            [(new_id(), oid, "PENDING", 500, "usd", 0, 0, past, past) for oid in order_ids],
        )
        initial = [(p.id, orders, "initial", None, past) for p in catalog]
        bulk_insert(
            "stock_movement",
            "product_id delta reason order_id created_at",
            initial + [(pid, -1, "order", oid, past) for oid, pid in pairs],
        )
        for index, product in enumerate(catalog):
            sold = len(range(index, orders, products))
            Product.update(quantity=Product.quantity - sold).where(
                Product.id == product.id
            ).execute()
    if db.is_postgres():
        # What autovacuum would have done to a real backlog: statistics, hint bits set.
        db.database.execute_sql("VACUUM ANALYZE")
        db.database.close_all()
    else:
        db.database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.database.close()


def time_command(url: str, batch: int | None) -> tuple[float, dict]:
    env = {**os.environ, "DATABASE_URL": url}
    command = [sys.executable, "-m", "shopctl", "orders", "expire", "--json"]
    command += ["--batch", str(batch)] if batch else []
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(result.stdout)


def _literals(url: str) -> dict[str, str]:
    pg = url.startswith("postgres")
    now = utcnow().isoformat(sep=" ")
    return {"now": f"'{now}'", "true": "TRUE" if pg else "1", "false": "FALSE" if pg else "0"}


def time_plain_sql(url: str, statements: list[str]) -> float:
    database = db.open_database(url)
    values = _literals(url)
    database.connect()
    started = time.perf_counter()
    with database.atomic():
        for statement in statements:
            database.execute_sql(statement.format(**values))
    elapsed = time.perf_counter() - started
    database.close()
    return elapsed


def end_state(url: str) -> list[list[tuple]]:
    database = db.open_database(url)
    database.connect()
    state = [[tuple(row) for row in database.execute_sql(sql).fetchall()] for sql in END_STATE]
    database.close()
    return state


class Origin:
    """One filled database and throw-away copies of it, on SQLite or PostgreSQL."""

    def __init__(self, backend: str, orders: int, products: int, workdir: Path):
        self.backend, self.workdir, self.names = backend, workdir, []
        if backend == "sqlite":
            fill(f"sqlite:///{workdir / 'origin.db'}", orders, products)
            return
        self.origin = self._new_name()
        self._admin(f'CREATE DATABASE "{self.origin}"')
        fill(self._url(self.origin), orders, products)

    def copy(self) -> str:
        """The URL of a fresh copy of the origin."""
        name = self._new_name()
        if self.backend == "sqlite":
            shutil.copyfile(self.workdir / "origin.db", self.workdir / f"{name}.db")
            return f"sqlite:///{self.workdir / name}.db"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.origin}"')
        return self._url(name)

    def _new_name(self) -> str:
        self.names.append(f"shopctl_bench_{uuid.uuid4().hex[:10]}")
        return self.names[-1]

    @staticmethod
    def _url(name: str) -> str:
        return urlunparse(urlparse(PG_SERVER)._replace(path=f"/{name}"))

    @staticmethod
    def _admin(sql: str) -> None:
        import psycopg2

        admin = psycopg2.connect(PG_SERVER)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql)
        admin.close()

    def settle(self) -> None:
        """Flush what making copies left in flight, so no timing pays for it."""
        os.sync()
        if self.backend == "postgresql":
            self._admin("CHECKPOINT")

    def drop(self) -> None:
        if self.backend == "postgresql":
            for name in self.names:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure_once(origin: Origin, batch: int | None) -> dict[str, float]:
    """One timing of each contender, each on a fresh copy; checks they agree."""
    urls = {name: origin.copy() for name in ("command", "full", "bare")}
    origin.settle()
    times = {}
    times["command"], summary = time_command(urls["command"], batch)
    assert summary["failed"] == 0 and summary["expired"] > 0, summary
    for name, statements in (("full", LEDGER_SQL + BARE_SQL), ("bare", BARE_SQL)):
        origin.settle()
        times[name] = time_plain_sql(urls[name], statements)
    times["startup"], _ = time_command(urls["bare"], batch)  # nothing left to expire
    same = end_state(urls["command"]) == end_state(urls["full"])
    assert same, "the command and the plain SQL left different end states"
    return times


def run(backend: str, orders: int, products: int, batch: int | None, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        build = time.perf_counter()
        origin = Origin(backend, orders, products, Path(workdir))
        print(f"{backend}: built {orders:,} overdue orders in {time.perf_counter() - build:.1f}s")
        try:
            runs = [measure_once(origin, batch) for _ in range(repeat)]
        finally:
            origin.drop()
    # Best of the runs: noise (other load on the machine) only ever makes things slower.
    best = {name: min(run[name] for run in runs) for name in runs[0]}
    ours = orders / best["command"]
    print(
        f"{backend}: shopctl orders expire     {best['command']:6.2f}s {ours:8,.0f} orders/s"
        f"  (of which process start-up {best['startup']:.2f}s; best of {repeat})"
    )
    for label, name in (("same end state", "full"), ("bare UPDATEs", "bare")):
        plain = orders / best[name]
        print(
            f"{backend}: plain SQL, {label:<14} {best[name]:6.2f}s {plain:8,.0f} orders/s"
            f"  ratio {ours / plain:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--batch", type=int, help="--batch for the command (default: its own)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per contender; best wins")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args.orders, args.products, args.batch, args.repeat)


if __name__ == "__main__":
    main()
