"""`shopctl events`: the stored Stripe event log; replay and sync."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from shopctl.commands.common import (
    CURSOR_HELP,
    bootstrap,
    console,
    handle_errors,
    print_json,
    print_next_page,
    print_page_json,
    usage_error,
)

app = typer.Typer(help="The Stripe event log: list, show, replay, sync.", no_args_is_help=True)


def _row_json(row) -> dict:
    from shopctl.services.common import iso

    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "source": row.source,
        "attempts": row.attempts,
        "lastError": row.last_error,
        "paymentId": row.payment_id,
        "stripeCreatedAt": iso(row.stripe_created_at),
        "receivedAt": iso(row.received_at),
        "processedAt": iso(row.processed_at),
    }


@app.command("list")
@handle_errors
def list_events(
    status: str = typer.Option(None, help="RECEIVED, PROCESSED, IGNORED or FAILED."),
    type: str = typer.Option(None, "--type", help="Event type, e.g. checkout.session.completed."),
    since: str = typer.Option(None, help="Received since: ISO date or a duration like 24h."),
    limit: int = typer.Option(50, min=1, max=10_000, help="At most this many, newest first."),
    cursor: str = typer.Option(None, "--cursor", help=CURSOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List stored Stripe events, newest first.

    \b
    Examples: shopctl events list --status FAILED --json
              shopctl events list --limit 1000 --cursor '' --json   (then meta.nextCursor)
    """
    from shopctl.schemas import EventSearch, validate
    from shopctl.services.payments.event_log import list_events as query

    filters = {"status": status and status.upper(), "type": type, "since": since}
    search = validate(EventSearch, filters | {"limit": limit, "cursor": cursor})
    bootstrap()
    events, next_cursor = query(search)
    rows = [_row_json(row) for row in events]
    if as_json:
        return print_page_json(rows, {"limit": search.limit, "nextCursor": next_cursor}, cursor)
    _print_table(rows)
    print_next_page(next_cursor)


def _print_table(rows: list[dict]) -> None:
    from shopctl.commands.tables import short_ids, table, text, when, whole, wrapped

    ids = short_ids([row["id"] for row in rows])
    listing = table(
        whole("id"),
        wrapped("type"),
        whole("status"),
        whole("source"),
        whole("tries", right=True),
        wrapped("received"),
        wrapped("error"),
    )
    for row in rows:
        listing.add_row(
            ids[row["id"]],
            text(row["type"]),
            row["status"],
            row["source"],
            str(row["attempts"]),
            when(row["receivedAt"]),
            text((row["lastError"] or "").split("\n")[0]),
        )
    out = console()
    out.print(listing)
    out.print(f"{len(rows)} event(s)")


@app.command("show")
@handle_errors
def show(
    event_id: str = typer.Argument(
        ...,
        metavar="EVENT_ID",
        help="The Stripe event's id (evt_…), or evt_ and its next 6+ characters.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one stored event: its processing outcome and the payload, pretty-printed.

    Example: shopctl events show evt_1NG8Du2e
    """
    from shopctl.services.payments.event_log import find_event_id
    from shopctl.services.payments.webhooks import get_event

    bootstrap()
    row = get_event(find_event_id(event_id))
    data = {**_row_json(row), "payload": json.loads(row.payload)}
    if as_json:
        return print_json(data)
    out = console()
    for key, value in data.items():
        if key != "payload":
            out.print(f"[bold]{key:>16}[/] {value if value is not None else '—'}")
    out.print_json(json.dumps(data["payload"]))


def _render_outcomes(outcomes, as_json: bool) -> None:
    rows = [
        {
            "eventId": o.event_id,
            "type": o.type,
            "result": o.result,
            "detail": o.detail,
            "changes": list(o.changes),
        }
        for o in outcomes
    ]
    if as_json:
        print_json(rows)
    else:
        out = console()
        for row in rows:
            colour = "red" if row["result"] == "failed" else "green"
            out.print(
                f"[{colour}]{row['result']:<9}[/] {row['eventId']} {row['type']} {row['detail']}"
            )
            for change in row["changes"]:
                out.print(f"          {change}")
    if any(row["result"] == "failed" for row in rows):
        raise typer.Exit(1)


@app.command("replay")
@handle_errors
def replay(
    event_ids: list[str] = typer.Argument(
        None, metavar="EVENT_ID", help="Stored events to re-run (ids or prefixes)."
    ),
    failed: bool = typer.Option(False, "--failed", help="Re-run every FAILED event."),
    file: Path = typer.Option(None, "--file", help="An exported Stripe event (JSON file)."),
    force: bool = typer.Option(False, "--force", help="Re-run events already processed."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would change."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-run events through the webhook logic (handlers are idempotent).

    \b
    Examples: shopctl events replay --failed
              shopctl events replay evt_1NG8Du2e --force
              shopctl events replay --file evt.json --dry-run
    """
    from shopctl.services.payments import webhooks
    from shopctl.services.payments.event_log import find_event_id

    if sum(bool(choice) for choice in (event_ids, failed, file)) != 1:
        usage_error("give event ids, --failed or --file (exactly one of them)")
    settings = bootstrap()
    if file:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            usage_error(f"cannot read {file}: {exc}")
        outcomes = [webhooks.replay_file(settings, text, force=force, dry_run=dry_run)]
    else:
        ids = webhooks.failed_event_ids() if failed else [find_event_id(i) for i in event_ids]
        outcomes = webhooks.replay(settings, ids, force=force, dry_run=dry_run)
    _render_outcomes(outcomes, as_json)


@app.command("sync")
@handle_errors
def sync(
    since: str = typer.Option(None, help="How far back, e.g. 24h or 7d (default: resume)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fetch events from Stripe and process the ones never received (missed webhooks).

    Resumes where the last run stopped.

    \b
    Example: shopctl events sync --since 3d
    """
    from datetime import timedelta

    from shopctl.config import parse_duration
    from shopctl.services.payments.sync import sync_events

    window = None
    if since:
        try:
            window = timedelta(seconds=parse_duration(since))
        except ValueError as exc:
            usage_error(f"--since: {exc}")
    summary = sync_events(bootstrap(), window)
    if as_json:
        print_json(summary.as_json())
    else:
        out = console()
        for warning in summary.warnings:
            out.print(f"[yellow]warning:[/] {warning}")
        out.print(
            f"seen {summary.seen} events since {summary.since:%Y-%m-%d %H:%M} UTC: "
            f"{summary.processed} processed, {summary.ignored} ignored, "
            f"{summary.already_known} already known, {summary.failed} failed"
        )
    if summary.failed:
        raise typer.Exit(1)
