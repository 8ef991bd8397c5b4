"""Health of the installation: configuration, database, migrations."""

from __future__ import annotations

from peewee import DatabaseError

from shopctl import db
from shopctl.config import Settings
from shopctl.services.common import Report


def database_ok() -> bool:
    try:
        db.ping()
    except DatabaseError:
        return False
    return True


def check_configuration(settings: Settings, report: Report) -> None:
    insecure = settings.insecure_settings()
    if problems := settings.safety_problems():
        report.add(
            "configuration",
            False,
            "; ".join(problems),
            "set them in the environment or .env",
        )
    elif insecure:
        report.add(
            "configuration",
            True,
            f"{settings.env}; development defaults for " + ", ".join(insecure),
        )
    else:
        report.add("configuration", True, f"{settings.env}; all secrets set")


def check_database(report: Report) -> bool:
    url = db.current_url()
    if db.sqlite_file_missing(url):
        report.add("database", False, f"no {db.describe(url)}", "run: shopctl migrate")
        return False
    try:
        db.ping()
    except DatabaseError as exc:
        report.add(
            "database",
            False,
            f"{db.describe(url)} unreachable ({type(exc).__name__})",
            "check DATABASE_URL and that the server is running",
        )
        return False
    kind = "PostgreSQL" if db.is_postgres() else "SQLite"
    report.add("database", True, f"{kind} reachable")
    pending = [name for name, applied in db.migration_status() if applied is None]
    if pending:
        report.add(
            "migrations",
            False,
            f"{len(pending)} pending: " + ", ".join(pending),
            "run: shopctl migrate",
        )
        return False
    report.add("migrations", True, "schema up to date")
    return True
