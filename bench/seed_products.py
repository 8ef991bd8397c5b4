"""How fast does `shopctl products seed --count N` insert, next to a plain executemany?

For the database in DATABASE_URL (or --database-url), each round:

1. baseline: the same kind of rows (made by the command's own generator beforehand) go
   into a scratch copy of the product table, with its indexes and constraints,
   through the bare driver: sqlite3's or psycopg2's `executemany`, one transaction;
2. seed: `seeding.seed_generated(N)` end to end, as the command runs it: reading
   existing names, generating the products, inserting them and their initial stock
   movements in one transaction.

It prints rows/s for both and the ratio seed / baseline (the goal is >= 0.5), and
empties the product tables after each round, so it refuses a database that already
holds products. Use a scratch database:

    DATABASE_URL=sqlite:////tmp/bench.db python bench/seed_products.py --count 100000
    createdb -h 127.0.0.1 -U postgres shop_bench
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/shop_bench \\
        python bench/seed_products.py --count 100000
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from urllib.parse import unquote

from shopctl import db
from shopctl.models import Product, StockMovement
from shopctl.services.catalog import products as catalog
from shopctl.services.catalog import seeding

SCRATCH = "bench_product_copy"


def _scratch_sqlite(connection: sqlite3.Connection) -> None:
    connection.execute(f'DROP TABLE IF EXISTS "{SCRATCH}"')
    schema = connection.execute(
        "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'product' AND sql IS NOT NULL"
    ).fetchall()
    # the table first, then its indexes, renamed so they do not clash with product's
    for _, sql in sorted(schema, key=lambda row: row[0] != "table"):
        sql = sql.replace('"product"', f'"{SCRATCH}"').replace('INDEX "', f'INDEX "{SCRATCH}_')
        connection.execute(sql)


def _baseline_sqlite(url: str, rows: list[tuple]) -> float:
    connection = sqlite3.connect(unquote(url[len("sqlite:///") :]), isolation_level=None)
    for name, value in db.SQLITE_PRAGMAS.items():
        connection.execute(f"PRAGMA {name} = {value}")
    _scratch_sqlite(connection)
    marks = ", ".join("?" * len(catalog.PRODUCT_COLUMNS))
    sql = f'INSERT INTO "{SCRATCH}" ({", ".join(catalog.PRODUCT_COLUMNS)}) VALUES ({marks})'
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(sql, rows)
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.execute(f'DROP TABLE "{SCRATCH}"')
    connection.close()
    return elapsed


def _baseline_postgres(url: str, rows: list[tuple]) -> float:
    import psycopg2

    connection = psycopg2.connect(url)
    with connection, connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{SCRATCH}"')
        cursor.execute(f'CREATE TABLE "{SCRATCH}" (LIKE product INCLUDING ALL)')
    marks = ", ".join(["%s"] * len(catalog.PRODUCT_COLUMNS))
    sql = f'INSERT INTO "{SCRATCH}" ({", ".join(catalog.PRODUCT_COLUMNS)}) VALUES ({marks})'
    started = time.perf_counter()
    with connection, connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    elapsed = time.perf_counter() - started
    with connection, connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{SCRATCH}"')
    connection.close()
    return elapsed


def _empty_catalog() -> None:
    with db.write_transaction():
        StockMovement.delete().execute()
        Product.delete().execute()


def run_round(url: str, count: int, currency: str) -> tuple[float, float]:
    """Wall seconds for the baseline and for the seed, `count` rows each."""
    rows = seeding.generate_products(count, 1, currency, set())
    baseline = _baseline_postgres if db.is_postgres() else _baseline_sqlite
    cpu = time.process_time()
    baseline_seconds = baseline(url, rows)
    baseline_cpu, cpu = time.process_time() - cpu, time.process_time()
    started = time.perf_counter()
    seeding.seed_generated(count, 2, currency)
    seed_seconds = time.perf_counter() - started
    seed_cpu = time.process_time() - cpu
    _empty_catalog()
    if not db.is_postgres():
        # SQLite works inside this process, so CPU seconds compare the two fairly even
        # when other processes share the machine; PostgreSQL's work is in its server.
        print(
            f"  CPU seconds: executemany {baseline_cpu:.2f}, seed {seed_cpu:.2f}, "
            f"ratio {baseline_cpu / seed_cpu:.2f}"
        )
    return baseline_seconds, seed_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    db.init_database(args.database_url)
    db.migrate()
    if Product.select().exists():
        print("refusing: this database already holds products; use a scratch one")
        return 1
    kind = "PostgreSQL" if db.is_postgres() else "SQLite"
    print(f"{kind}, {args.count:,} rows per run")
    ratios = []
    for number in range(1, args.rounds + 1):
        base, seed = run_round(args.database_url, args.count, "usd")
        ratios.append(base / seed)
        print(
            f"round {number}: plain executemany {args.count / base:>10,.0f} rows/s   "
            f"products seed {args.count / seed:>10,.0f} rows/s   ratio {base / seed:.2f}"
        )
    print(f"median ratio {statistics.median(ratios):.2f} (goal: at least 0.50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
