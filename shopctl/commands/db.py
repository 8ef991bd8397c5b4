"""`shopctl migrate`: apply or list the numbered migrations."""

from __future__ import annotations

import typer

from shopctl.commands.common import bootstrap, console, handle_errors, print_json


@handle_errors
def migrate(
    list_only: bool = typer.Option(False, "--list", help="Show applied and pending migrations."),
    as_json: bool = typer.Option(False, "--json", help="With --list: print JSON."),
) -> None:
    """Apply pending migrations (a second run does nothing).

    Example: DATABASE_URL=postgresql://shop@db/shop shopctl migrate
    """
    from shopctl import db

    bootstrap(create=not list_only, schema=False)
    if list_only:
        rows = [
            {"name": name, "applied": applied.isoformat() if applied else None}
            for name, applied in db.migration_status()
        ]
        if as_json:
            return print_json(rows)
        for row in rows:
            state = f"applied {row['applied'][:19]}" if row["applied"] else "pending"
            console().print(f"{row['name']:<40} {state}")
        return
    applied = db.migrate()
    if applied:
        console().print(f"Applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        console().print("Nothing to migrate: the schema is up to date.")
