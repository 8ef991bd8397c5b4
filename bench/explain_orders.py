"""Each statement of the admin's order list, by page and by cursor, with its timing.

Usage: .venv/bin/python bench/explain_orders.py DATABASE_URL STATUS [STATUS …]
(a shop built by `bench/run --scale`, or by scale_data.build). Each list is called five
times; the statements of one call are then run under EXPLAIN (ANALYZE, BUFFERS).
"""

from __future__ import annotations

import logging
import sys
import time

from shopctl import db as shop_db
from shopctl.models import User
from shopctl.schemas import OrderListQuery
from shopctl.services.orders import listing

CALLS = 5


class Statements(logging.Handler):
    """Every (sql, params) peewee sends, read from its debug log."""

    def __init__(self):
        super().__init__()
        self.sent: list[tuple[str, list]] = []

    def emit(self, record):
        if isinstance(record.msg, tuple):
            self.sent.append(record.msg)


def explain(database, sql: str, params) -> str:
    rows = database.execute_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
    return next(row[0] for row in rows if row[0].startswith("Execution Time"))


def measure(database, statements: Statements, admin: User, query: OrderListQuery) -> None:
    listing.list_orders(admin, query)  # warm: plans, caches
    statements.sent.clear()
    started = time.perf_counter()
    for _ in range(CALLS):
        listing.list_orders(admin, query)
    wall_ms = (time.perf_counter() - started) / CALLS * 1000
    one_call = statements.sent[: len(statements.sent) // CALLS]
    print(f"== status={query.status} cursor={query.cursor!r}: {wall_ms:.1f} ms a call")
    for sql, params in one_call:
        print(f"   {explain(database, sql, params):>28}  {sql[:90]}")


def main(url: str, statuses: list[str]) -> None:
    database = shop_db.init_database(url, create=False)
    statements = Statements()
    peewee_log = logging.getLogger("peewee")
    peewee_log.addHandler(statements)
    peewee_log.setLevel(logging.DEBUG)
    admin = User(id="00000000-0000-0000-0000-000000000000", email="admin@x", role="ADMIN")
    for status in statuses:
        measure(database, statements, admin, OrderListQuery(status=status, limit=10))
        measure(database, statements, admin, OrderListQuery(status=status, limit=10, cursor=""))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
