"""Data retention (`shopctl db prune`): delete what no longer serves a purpose.

* `login_throttle`: rate-limit counters whose window (and any lock-out) is over.
* `refresh_session`: sessions past their lifetime, spent (rotated, revoked) or not; a
  spent one is kept until then because reuse detection compares against it.
* `idempotency_key`: the clients' `Idempotency-Key` of orders older than Stripe's
  24-hour window is cleared (the order stays; a retry after that is a new request).
* `stripe_event`: PROCESSED and IGNORED events older than EVENT_RETENTION_DAYS; FAILED
  and RECEIVED ones stay until they are settled. With an archive file, each event is
  written there (JSON lines) before it is deleted.

Work goes in batches of BATCH rows, one short transaction each, so no lock is held for
long. On PostgreSQL each batch claims its rows with `FOR UPDATE SKIP LOCKED`: several
hosts pruning at once split the rows instead of waiting for each other, and each row is
deleted (and archived) by one of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from peewee import Expression, Model, fn

from shopctl.config import Settings
from shopctl.db import is_postgres, write_transaction
from shopctl.models import LoginThrottle, Order, RefreshSession, StripeEvent, SyncCursor, utcnow
from shopctl.services.common import Report, iso

BATCH = 500
IDEMPOTENCY_WINDOW = timedelta(hours=24)  # Stripe keeps an idempotency key 24 hours
LAST_PRUNE = "db_prune"  # the sync_cursor row that says when pruning last ran
SETTLED_EVENTS = ("PROCESSED", "IGNORED")


@dataclass(frozen=True)
class Target:
    name: str
    model: type[Model]
    key: Any  # the column that identifies a row
    age: Any  # the column that says how old a row is
    prunable: Callable[[Settings, datetime], Expression]
    live: Callable[[], Expression] | None = None  # rows the table counts at all
    clear: dict | None = None  # UPDATE these columns instead of deleting the row
    archived: bool = False  # written to the archive file, if there is one, first


TARGETS = (
    Target(
        "login_throttle",
        LoginThrottle,
        LoginThrottle.key,
        LoginThrottle.window_started_at,
        lambda settings, now: LoginThrottle.expires_at <= now,
    ),
    Target(
        "refresh_session",
        RefreshSession,
        RefreshSession.id,
        RefreshSession.created_at,
        lambda settings, now: RefreshSession.expires_at <= now,
    ),
    Target(
        "idempotency_key",
        Order,
        Order.id,
        Order.created_at,
        lambda settings, now: (
            Order.idempotency_key.is_null(False) & (Order.created_at <= now - IDEMPOTENCY_WINDOW)
        ),
        live=lambda: Order.idempotency_key.is_null(False),
        clear={Order.idempotency_key: None, Order.request_hash: None},
    ),
    Target(
        "stripe_event",
        StripeEvent,
        StripeEvent.id,
        StripeEvent.received_at,
        lambda settings, now: (
            StripeEvent.status.in_(SETTLED_EVENTS)
            & (StripeEvent.received_at <= now - timedelta(days=settings.event_retention_days))
        ),
        archived=True,
    ),
)


def prune(
    settings: Settings,
    *,
    dry_run: bool = False,
    archive: Path | None = None,
    batch: int = BATCH,
    now: datetime | None = None,
) -> dict[str, int]:
    """Rows deleted (or, with `dry_run`, that would be) per table. `archive`: a JSON-lines
    file the Stripe events are appended to before they are deleted."""
    now = now or utcnow()
    if dry_run:
        return {target.name: _count(target, settings, now) for target in TARGETS}
    with _Archive(archive) as sink:
        counts = {
            target.name: _prune(target, settings, now, batch, sink if target.archived else None)
            for target in TARGETS
        }
    _record_run(now)
    return counts


def _eligible(target: Target, settings: Settings, now: datetime):
    return target.model.select().where(target.prunable(settings, now))


def _count(target: Target, settings: Settings, now: datetime) -> int:
    return _eligible(target, settings, now).count()


def _prune(target, settings, now, batch: int, sink: _Archive | None) -> int:
    done = 0
    while True:
        with write_transaction():
            query = _eligible(target, settings, now).order_by(target.age).limit(batch)
            if sink is None:
                query = query.select(target.key)
            if is_postgres():
                query = query.for_update("FOR UPDATE SKIP LOCKED")
            rows = list(query)
            if not rows:
                return done
            keys = [getattr(row, target.key.name) for row in rows]
            if sink is not None:
                sink.write(rows)  # before the delete commits: never deleted unarchived
            where = target.key.in_(keys) & target.prunable(settings, now)
            if target.clear:
                done += target.model.update(target.clear).where(where).execute()
            else:
                done += target.model.delete().where(where).execute()
        if len(rows) < batch:
            return done


class _Archive:
    """Appends events as JSON lines, each once: ids already in the file are skipped (a run
    that wrote a batch and then failed to commit its delete is retried by the next)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.seen: set[str] = set()
        self.file = None

    def __enter__(self) -> _Archive:
        if self.path is None:
            return self
        if self.path.exists():
            with self.path.open(encoding="utf-8") as existing:
                for line in existing:
                    if line.strip():
                        self.seen.add(json.loads(line)["id"])
        self.file = self.path.open("a", encoding="utf-8")
        return self

    def write(self, events: list[StripeEvent]) -> None:
        if self.file is None:
            return
        for event in events:
            if event.id not in self.seen:
                self.file.write(json.dumps(event_record(event), sort_keys=True) + "\n")
                self.seen.add(event.id)
        self.file.flush()
        os.fsync(self.file.fileno())

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()


def event_record(event: StripeEvent) -> dict:
    """A stored event as the archive keeps it: our columns, and Stripe's payload as JSON."""
    try:
        payload = json.loads(event.payload)
    except ValueError:
        payload = event.payload
    return {
        "id": event.id,
        "type": event.type,
        "status": event.status,
        "source": event.source,
        "attempts": event.attempts,
        "lastError": event.last_error,
        "paymentId": event.payment_id,
        "stripeCreatedAt": iso(event.stripe_created_at),
        "receivedAt": iso(event.received_at),
        "processedAt": iso(event.processed_at),
        "payload": payload,
    }


def _record_run(now: datetime) -> None:
    with write_transaction():
        SyncCursor.insert(name=LAST_PRUNE, value=iso(now), updated_at=now).on_conflict(
            conflict_target=[SyncCursor.name],
            update={SyncCursor.value: iso(now), SyncCursor.updated_at: now},
        ).execute()


def last_run() -> datetime | None:
    row = SyncCursor.get_or_none(SyncCursor.name == LAST_PRUNE)
    return row.updated_at if row else None


# --- what doctor shows -------------------------------------------------------------------

OVERDUE = timedelta(days=2)
COUNTED = 10_000  # rows doctor counts one by one; a bigger table is "over 10,000"


def table_summaries(settings: Settings, now: datetime | None = None) -> list[dict]:
    """Per table: rows, the oldest row's age column, rows prunable now."""
    now = now or utcnow()
    summaries = []
    for target in TARGETS:
        rows = target.model.select()
        if target.live is not None:
            rows = rows.where(target.live())
        # Counting a million Stripe events took longer than every other check together: the
        # count stops at COUNTED, and the oldest row comes from the age column's index.
        count = rows.select(target.key).limit(COUNTED + 1).count()
        oldest = rows.select(fn.MIN(target.age)).scalar()
        summaries.append(
            {
                "table": target.name,
                "rows": f"{count:,}" if count <= COUNTED else f"over {COUNTED:,}",
                "oldest": _moment(oldest),
                "prunable": _count(target, settings, now),
                "overdue": _count(target, settings, now - OVERDUE),
            }
        )
    return summaries


def _moment(value) -> str | None:
    if value is None or isinstance(value, datetime):
        return iso(value)
    return iso(datetime.fromisoformat(str(value)))


def check_retention(settings: Settings, report: Report) -> None:
    """Rows and oldest row of each pruned table; fails when `db prune` has not run for
    two days while rows have been waiting for it longer than that."""
    summaries = table_summaries(settings)
    for summary in summaries:
        report.add(
            f"{summary['table']} rows",
            True,
            f"{summary['rows']} rows, oldest {summary['oldest'] or '-'}, "
            f"{summary['prunable']} prunable",
        )
    last = last_run()
    overdue = sum(summary["overdue"] for summary in summaries)
    stale = last is None or last < utcnow() - OVERDUE
    detail = f"last prune {iso(last) if last else 'never'}"
    if stale and overdue:
        detail += f"; {overdue} rows prunable for more than {OVERDUE.days} days"
    report.add(
        "retention", not (stale and overdue), detail, "run shopctl db prune daily (README: Cron)"
    )
