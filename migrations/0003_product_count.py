"""A running count of the products for sale, kept by triggers (issue #9).

Every `GET /product` page tells the total of its listing. Counting the products for
sale reads every one of them (0.8 ms of PostgreSQL CPU for 10,000, the larger part of
what a page costs); one row kept current by triggers costs a primary-key read. Filtered
listings (search, low stock, archived included) still count their matches.

The triggers fire on the only changes that move the count: a product inserted, deleted
or (un)archived (and a TRUNCATE on PostgreSQL). Stock changes do not touch
`is_archived`, so orders never queue on the counter's row. PostgreSQL counts a whole
statement's rows at once (transition tables), so a bulk insert updates the row once per
statement; SQLite, which has row triggers only, once per row.
"""

from peewee import PostgresqlDatabase

CREATE_TABLE = (
    'CREATE TABLE "product_count" ('
    '"id" SMALLINT NOT NULL PRIMARY KEY CHECK ("id" = 1), '
    '"live" BIGINT NOT NULL CHECK ("live" >= 0))'
)
FILL = (
    'INSERT INTO "product_count" ("id", "live") '
    'SELECT 1, COUNT(*) FROM "product" WHERE NOT "is_archived"'
)

POSTGRES_TRIGGERS = (
    """CREATE FUNCTION product_count_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE product_count SET live = live + changed.n
        FROM (SELECT COUNT(*) AS n FROM changed_rows WHERE NOT is_archived) AS changed
        WHERE changed.n > 0;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION product_count_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE product_count SET live = live - changed.n
        FROM (SELECT COUNT(*) AS n FROM changed_rows WHERE NOT is_archived) AS changed
        WHERE changed.n > 0;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION product_count_after_archive() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE product_count SET live = live + CASE WHEN NEW.is_archived THEN -1 ELSE 1 END;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION product_count_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE product_count SET live = 0;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER product_count_insert AFTER INSERT ON product
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION product_count_after_insert()""",
    """CREATE TRIGGER product_count_delete AFTER DELETE ON product
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION product_count_after_delete()""",
    """CREATE TRIGGER product_count_archive AFTER UPDATE OF is_archived ON product
    FOR EACH ROW WHEN (OLD.is_archived IS DISTINCT FROM NEW.is_archived)
    EXECUTE FUNCTION product_count_after_archive()""",
    """CREATE TRIGGER product_count_truncate AFTER TRUNCATE ON product
    FOR EACH STATEMENT EXECUTE FUNCTION product_count_after_truncate()""",
)
POSTGRES_FUNCTIONS = ("insert", "delete", "archive", "truncate")

SQLITE_TRIGGERS = (
    """CREATE TRIGGER product_count_insert AFTER INSERT ON product
    WHEN NOT NEW.is_archived
    BEGIN UPDATE product_count SET live = live + 1; END""",
    """CREATE TRIGGER product_count_delete AFTER DELETE ON product
    WHEN NOT OLD.is_archived
    BEGIN UPDATE product_count SET live = live - 1; END""",
    """CREATE TRIGGER product_count_archive AFTER UPDATE OF is_archived ON product
    WHEN OLD.is_archived IS NOT NEW.is_archived
    BEGIN
        UPDATE product_count SET live = live + CASE WHEN NEW.is_archived THEN -1 ELSE 1 END;
    END""",
)
SQLITE_TRIGGER_NAMES = ("product_count_insert", "product_count_delete", "product_count_archive")


def up(migrator, db):
    db.execute_sql(CREATE_TABLE)
    postgres = isinstance(db, PostgresqlDatabase)
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        db.execute_sql(statement)
    # Counted after the triggers exist: creating them locked product against writes
    # until this migration commits, so no product can slip between count and trigger.
    db.execute_sql(FILL)


def down(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        for event in POSTGRES_FUNCTIONS:
            db.execute_sql(f"DROP TRIGGER product_count_{event} ON product")
            db.execute_sql(f"DROP FUNCTION product_count_after_{event}()")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            db.execute_sql(f"DROP TRIGGER {name}")
    db.execute_sql('DROP TABLE "product_count"')
