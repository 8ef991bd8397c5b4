"""The database: built from DATABASE_URL, shared by every model through one proxy.

SQLite gets WAL, a busy timeout and foreign keys; its write transactions start
with `BEGIN IMMEDIATE` so two writers queue on the lock instead of failing
half-way. PostgreSQL gets a connection pool. Peewee keeps one connection per
thread, so each executor thread of the API has its own.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote, unquote, urlparse
from weakref import WeakKeyDictionary

from peewee import (
    Database,
    DatabaseError,
    DatabaseProxy,
    InterfaceError,
    OperationalError,
    SqliteDatabase,
)
from playhouse.migrations import Migration, Runner
from playhouse.pool import PooledPostgresqlDatabase

from shopctl.errors import ConfigError, ShopError

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10_000,
    "foreign_keys": 1,
    "synchronous": "normal",
}

MIGRATION_TABLE = "schema_migration"
PING_AFTER_IDLE_SECONDS = 1.0


class PostgresPool(PooledPostgresqlDatabase):
    """Peewee's pool, without a round trip on every checkout.

    Peewee pings each idle connection it hands out (`SELECT 1`, under the pool lock): one
    more round trip per service call, serialised across the executor threads. Here a
    connection that went back to the pool less than a second ago is trusted (psycopg2
    still reports one it saw break); older ones are pinged, which catches a server
    restart during a quiet spell. A connection error closes the idle ones
    (`discard_connection`), so an outage under load leaves no dead ones behind either.
    """

    def __init__(self, *args, **kwargs):
        self._idle_since: dict[int, float] = {}
        super().__init__(*args, **kwargs)

    def _close(self, conn, close_conn=False):
        self._idle_since[self.conn_key(conn)] = time.monotonic()
        super()._close(conn, close_conn)

    def _close_raw(self, conn):
        self._idle_since.pop(self.conn_key(conn), None)
        super()._close_raw(conn)

    def _is_closed(self, conn):
        if conn.closed:
            return True
        idle_since = self._idle_since.get(self.conn_key(conn), 0.0)
        if time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return False
        return super()._is_closed(conn)


class NoSchema(ShopError):
    """The database is missing, or holds none of shopctl's tables."""

    status = 503
    code = "no_schema"


def sqlite_path(url: str) -> str:
    """The file of a sqlite:///path URL, as given (relative to the working directory)."""
    path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
    if not path:
        raise ConfigError(f"DATABASE_URL: give a file, e.g. sqlite:///shopctl.db (got {url!r})")
    return path


def open_database(url: str, *, max_connections: int = 32, create: bool = True) -> Database:
    """A peewee database for `url` (sqlite:///path or postgresql://user:pass@host:port/db).

    With `create=False` a SQLite file that does not exist stays so: every connection opens
    the file read-write without creating it (SQLite's `mode=rw`), so a command run in the
    wrong directory fails instead of leaving an empty database behind.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = sqlite_path(url)
        _check_sqlite_version()
        if not create and path != ":memory:":
            uri = f"file:{quote(path)}?mode=rw"
            return SqliteDatabase(uri, pragmas=SQLITE_PRAGMAS, timeout=10, uri=True)
        return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10)
    if parsed.scheme in ("postgresql", "postgres"):
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise ConfigError("DATABASE_URL: name the PostgreSQL database, e.g. .../shop")
        return PostgresPool(
            name,
            max_connections=max_connections,
            stale_timeout=300,
            timeout=10,
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            connect_timeout=5,
        )
    raise ConfigError(
        "DATABASE_URL must start with sqlite:/// or postgresql:// "
        f"(got a {parsed.scheme or 'schemeless'} URL)"
    )


def init_database(url: str, *, create: bool = True, **kwargs) -> Database:
    """Point every model at the database for `url` and return it (reused if already there)."""
    current = database.obj
    same = current is not None and getattr(current, "shopctl_url", None) == url
    if same and (current.shopctl_creates or not create):
        return current
    db = open_database(url, create=create, **kwargs)
    db.shopctl_url = url
    db.shopctl_creates = create
    database.initialize(db)
    return db


def detach() -> None:
    """Close every connection and let go of the database: the next `init_database` opens
    its own (the server's workers size their pool for their executor threads)."""
    db = database.obj
    if db is None:
        return
    with suppress(DatabaseError):
        db.close_all() if is_postgres() else db.close()
    database.initialize(None)


def current_url() -> str:
    return getattr(database.obj, "shopctl_url", "")


def describe(url: str) -> str:
    """Where `url` points, for messages: the SQLite file, or PostgreSQL's database and host."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return f"SQLite file {Path(sqlite_path(url)).resolve()}"
    name = unquote(parsed.path.lstrip("/"))
    return f"PostgreSQL database {name} on {parsed.hostname}:{parsed.port or 5432}"


def sqlite_file_missing(url: str) -> bool:
    if not url.startswith("sqlite:///") or sqlite_path(url) == ":memory:":
        return False
    return not Path(sqlite_path(url)).exists()


def require_schema(url: str) -> None:
    """NoSchema unless the database exists and holds shopctl's tables (`shopctl migrate`
    makes both); any other database error goes up as it is."""
    if sqlite_file_missing(url):
        raise NoSchema(f"no database at {describe(url)}; run `shopctl migrate` to create it")
    if not database.table_exists(MIGRATION_TABLE):
        raise NoSchema("this database has no shopctl tables; run `shopctl migrate`")


# Order placement takes stock with UPDATE … FROM … RETURNING (SQLite 3.35, March 2021).
SQLITE_MINIMUM = (3, 35)


def _check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < SQLITE_MINIMUM:
        raise ConfigError(
            f"shopctl needs SQLite {'.'.join(map(str, SQLITE_MINIMUM))} or newer; this Python"
            f" has {sqlite3.sqlite_version}: use PostgreSQL or a newer Python build"
        )


def is_sqlite() -> bool:
    return isinstance(database.obj, SqliteDatabase)


def is_postgres() -> bool:
    return isinstance(database.obj, PooledPostgresqlDatabase)


def write_transaction():
    """A transaction that will write: takes SQLite's write lock up front."""
    if is_sqlite():
        return database.atomic("IMMEDIATE")
    return database.atomic()


def release_connection() -> None:
    """Give this thread's connection back to the pool (PostgreSQL) or keep it (SQLite).

    A connection broken by a database outage is closed so the next call reconnects.
    """
    db = database.obj
    if db is None or db.is_closed() or db.in_transaction():
        return
    if is_postgres():
        db.close()


@contextmanager
def connection():
    """Run a block on this thread's connection and hand it back afterwards."""
    try:
        yield database
    finally:
        release_connection()


def migrations_dir() -> Path:
    """Migrations shipped in the wheel (shopctl/migrations) or, in a checkout, ./migrations."""
    packaged = Path(__file__).parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def migration_runner() -> Runner:
    return Runner(database.obj, directory=str(migrations_dir()), table_name=MIGRATION_TABLE)


def migration_status() -> list[tuple[str, object]]:
    """(name, applied-at or None) for every migration, in order (all pending when the
    SQLite file is yet to be created)."""
    if sqlite_file_missing(current_url()):
        return [(m.name, None) for m in Migration.load_directory(str(migrations_dir()))]
    return [(m.name, m.applied) for m in migration_runner().status()]


def migrate() -> list[str]:
    """Apply pending migrations; on PostgreSQL, one migrating process at a time."""
    runner = migration_runner()
    if not is_postgres():
        return runner.up()
    with database.connection_context():
        database.execute_sql("SELECT pg_advisory_lock(%s)", (0x5D0C7C71,))
        try:
            return runner.up()
        finally:
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (0x5D0C7C71,))


def discard_connection() -> None:
    """Drop this thread's connection after a database error; the next query reconnects."""
    db = database.obj
    if db is None or db.is_closed():
        return
    with suppress(DatabaseError):  # already broken: nothing left to close
        db.manual_close() if is_postgres() else db.close()
    if is_postgres():
        db.close_idle()  # the server probably cut those too


# Server-side prepared statements of each PostgreSQL connection: {sql: statement name}.
_prepared: WeakKeyDictionary = WeakKeyDictionary()
_statement_numbers = itertools.count()  # next() is atomic: threads may share it
_PLACEHOLDER = re.compile(r"%s")


def execute_prepared(sql: str, params: Sequence = ()):
    """`database.execute_sql`, but PostgreSQL parses and plans `sql` once per connection.

    For the statements every request runs (built once in Python too: prepared.py), the
    parse and plan are a good part of PostgreSQL's work. The statement is PREPAREd on
    first use on each connection (PREPARE outlives a rollback) and then EXECUTEd; its
    parameter types come from the columns they meet, so `sql` must give each one a
    typed context (a column comparison or an INSERT target, not a bare VALUES list).
    Prepared statements live in the session: a pooler in front of PostgreSQL must use
    session pooling, as migrations require anyway.
    """
    if not is_postgres() or "%%" in sql:
        return database.execute_sql(sql, params)
    names = _prepared.setdefault(database.connection(), {})
    name = names.get(sql)
    if name is None:
        name = f"shopctl_{next(_statement_numbers)}"
        numbered = iter(range(1, len(params) + 1))
        database.execute_sql(
            f"PREPARE {name} AS " + _PLACEHOLDER.sub(lambda _: f"${next(numbered)}", sql)
        )
        names[sql] = name
    if not params:
        return database.execute_sql(f"EXECUTE {name}")
    return database.execute_sql(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)


def ping() -> None:
    """Raise a DatabaseError unless the database answers."""
    try:
        database.execute_sql("SELECT 1").fetchone()
    except (OperationalError, InterfaceError):
        discard_connection()
        raise
