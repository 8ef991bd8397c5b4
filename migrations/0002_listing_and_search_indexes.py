"""Indexes for the product listing and search (issue #9; bench/RESULTS.md, "Proposed changes" 1).

Both databases:

* `product (created_at, id)` and `product (price_cents, id)`: the listing orders by
  `<column> DESC, id DESC` (or both ASC) and the id breaks ties (seeded products share
  one `created_at`), so only a two-column index hands out a page without reading and
  sorting every product. The first makes the old single-column index on `created_at` a
  redundant prefix, so it goes. `sortBy=name` needs nothing: `name` is unique, so the
  unique index on it already gives the order and the id never has to break a tie.

PostgreSQL only:

* GIN trigram indexes on `name` and `description`, so search (`ILIKE '%term%'` on either)
  becomes two bitmap index scans instead of a scan of both columns of every row. They
  need the pg_trgm extension. It is trusted on PostgreSQL >= 13, so the database owner may
  create it; where it cannot be created (no privilege, contrib package missing) this
  migration fails with a message saying what to run, and changes nothing: it runs in one
  transaction with its bookkeeping row. We chose failing over quietly skipping the trigram
  indexes: skipping would leave installations with silently different schemas and no later
  migration that notices, while the fix is a single statement by a superuser.
  SQLite keeps scanning for search; LIKE '%…%' cannot use a b-tree.

The indexes are built with a plain CREATE INDEX inside the migration's transaction (not
CONCURRENTLY, which cannot run in one): writes to `product` wait for the build (3 s for
100,000 products on a busy test machine, mostly the trigram indexes); reads carry on.

`down` drops the indexes, restores the single-column one, and leaves pg_trgm installed:
other objects in the database may rely on it, and unused it costs nothing.
"""

from peewee import OperationalError, PostgresqlDatabase, ProgrammingError

LISTING_INDEXES = (
    ("product_listing_created", ("created_at", "id")),
    ("product_listing_price", ("price_cents", "id")),
)
TRIGRAM_INDEXES = (
    ("product_name_trgm", "name"),
    ("product_description_trgm", "description"),
)
OLD_CREATED_AT_INDEX = "product_created_at"

NO_TRIGRAMS = (
    "0002_listing_and_search_indexes needs the pg_trgm extension and could not create it "
    "({error}). Ask a superuser (or the database owner, PostgreSQL 13+) to run "
    '"CREATE EXTENSION pg_trgm;" in this database (the package is postgresql-contrib), '
    "then run shopctl migrate again. Nothing was changed."
)


def _create_trigram_extension(db):
    try:
        db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # No privilege is a ProgrammingError, no extension files an OperationalError; either
    # way the runner rolls the whole migration back once this propagates.
    except (ProgrammingError, OperationalError) as exc:
        error = str(exc).strip().splitlines()[0]
        raise ProgrammingError(NO_TRIGRAMS.format(error=error)) from exc


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    if postgres:
        _create_trigram_extension(db)
    migrator.migrate(
        *(migrator.add_index("product", columns, name=name) for name, columns in LISTING_INDEXES),
        migrator.drop_index("product", OLD_CREATED_AT_INDEX),
    )
    if postgres:
        for name, column in TRIGRAM_INDEXES:
            db.execute_sql(
                f'CREATE INDEX "{name}" ON "product" USING gin ("{column}" gin_trgm_ops)'
            )


def down(migrator, db):
    names = [name for name, _ in LISTING_INDEXES]
    if isinstance(db, PostgresqlDatabase):
        names += [name for name, _ in TRIGRAM_INDEXES]
    migrator.migrate(
        migrator.add_index("product", ("created_at",), name=OLD_CREATED_AT_INDEX),
        *(migrator.drop_index("product", name) for name in names),
    )
