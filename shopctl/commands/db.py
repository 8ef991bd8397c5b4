"""`shopctl migrate` (apply or list the numbered migrations) and `shopctl db prune`."""

from __future__ import annotations

from pathlib import Path

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


app = typer.Typer(help="Database housekeeping.", no_args_is_help=True)


@app.command("prune")
@handle_errors
def prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; change nothing."),
    as_json: bool = typer.Option(False, "--json", help='Print {"tables": {name: count}}.'),
    archive: Path = typer.Option(
        None,
        "--archive",
        help="Append each Stripe event to this JSON-lines file before deleting it.",
        dir_okay=False,
        writable=True,
    ),
) -> None:
    """Delete what no longer serves a purpose: spent rate-limit counters, refresh sessions
    past their lifetime, idempotency keys past 24 hours, and processed or ignored Stripe
    events older than EVENT_RETENTION_DAYS. In bounded batches; safe on several hosts.
    Run it daily from cron.

    \b
    Example: shopctl db prune --archive /var/lib/shop/events.jsonl
    """
    from shopctl.services.system.retention import prune as prune_tables

    settings = bootstrap()
    counts = prune_tables(settings, dry_run=dry_run, archive=archive)
    if as_json:
        return print_json({"tables": counts})
    verb = "would delete" if dry_run else "deleted"
    for name, count in counts.items():
        console().print(f"{name:<16} {verb} {count}")
