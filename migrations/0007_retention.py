"""What `shopctl db prune` needs to find old rows without reading whole tables (issue 16).

* `login_throttle.expires_at`: when a counter stops mattering (its window and any
  lock-out over). The table now holds registration and order counters too, whose windows
  differ; each row says when it is spent. Existing rows are failed-login counters, whose
  window was fifteen minutes.
* `refresh_session.expires_at` indexed: sessions past their lifetime.
* `order.created_at` where a client idempotency key is set (a partial index): keys past
  Stripe's 24-hour window are cleared, and the index then forgets the order, so each
  prune reads only the keys it may clear.
"""

from peewee import DateTimeField, PostgresqlDatabase

INDEXES = (
    'CREATE INDEX "login_throttle_expires_at" ON "login_throttle" ("expires_at")',
    'CREATE INDEX "refresh_session_expires_at" ON "refresh_session" ("expires_at")',
    'CREATE INDEX "order_idempotency_key_created_at" ON "order" ("created_at") '
    'WHERE "idempotency_key" IS NOT NULL',
)
NAMES = (
    "login_throttle_expires_at",
    "refresh_session_expires_at",
    "order_idempotency_key_created_at",
)


def up(migrator, db):
    migrator.migrate(migrator.add_column("login_throttle", "expires_at", DateTimeField(null=True)))
    if isinstance(db, PostgresqlDatabase):
        spent = "\"window_started_at\" + interval '15 minutes'"
    else:
        spent = "strftime('%Y-%m-%d %H:%M:%f', \"window_started_at\", '+15 minutes')"
    db.execute_sql(f'UPDATE "login_throttle" SET "expires_at" = {spent}')
    for statement in INDEXES:
        db.execute_sql(statement)


def down(migrator, db):
    for name in NAMES:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    migrator.migrate(migrator.drop_column("login_throttle", "expires_at"))
