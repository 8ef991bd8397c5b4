"""Room on product's pages for stock changes (PostgreSQL; issue #9).

Every order, cancel and expiry rewrites a product row (its quantity). When the new
version fits on the row's page and no indexed column changed, PostgreSQL writes it
without touching any index (a HOT update). A page filled to the brim forces the new
version onto another page, and then every index of the table gets an entry: seven of
them, among them the two trigram indexes, whose pending list every search then has to
scan. Keeping a fifth of each page free lets stock changes stay HOT; a mixed load (reads,
search, orders, webhooks) served 1.7 times as many requests with it (bench/RESULTS.md).

The setting applies to pages written from now on: a catalog migrated before it is seeded
gets it everywhere; an existing one as its pages turn over, or at once with
`VACUUM FULL product` (which locks the table while it rewrites it) at a quiet moment.
SQLite has no such setting.
"""

from peewee import PostgresqlDatabase

FILLFACTOR = 80


def up(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql(f'ALTER TABLE "product" SET (fillfactor = {FILLFACTOR})')


def down(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql('ALTER TABLE "product" RESET (fillfactor)')
