"""The safety net for missed webhooks, `events sync`: list events from Stripe's API and
ingest the ones never received, through the same function as the webhook; it remembers
where it stopped. `reconcile` (its sibling module) compares payments with Stripe."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.models import StripeEvent, SyncCursor, utcnow
from shopctl.services.payments import gateway
from shopctl.services.payments.handlers import HANDLERS
from shopctl.services.payments.webhooks import IGNORED, PROCESSED, ProcessingFailed, ingest

CURSOR = "events-sync"
RETENTION = timedelta(days=30)
RETENTION_WARNING = timedelta(days=25)
DEFAULT_WINDOW = timedelta(hours=24)


@dataclass
class SyncSummary:
    since: datetime
    seen: int = 0
    already_known: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "since": self.since.isoformat() + "Z",
            "seen": self.seen,
            "alreadyKnown": self.already_known,
            "processed": self.processed,
            "ignored": self.ignored,
            "failed": self.failed,
            "warnings": self.warnings,
        }


def _sync_start(since: timedelta | None, now: datetime) -> datetime:
    if since is not None:
        return now - since
    cursor = SyncCursor.get_or_none(SyncCursor.name == CURSOR)
    return datetime.fromisoformat(cursor.value) if cursor else now - DEFAULT_WINDOW


def _fetch(settings: Settings, start: datetime) -> list[dict]:
    import stripe

    params = {
        "created": {"gte": int(start.replace(tzinfo=UTC).timestamp())},
        "limit": 100,
        "types": sorted(HANDLERS),
    }
    try:
        events = gateway.list_all_events(settings, params)
    except stripe.StripeError as exc:
        raise gateway.provider_error(exc) from None
    return sorted(events, key=lambda event: (event.get("created", 0), event["id"]))


def sync_events(settings: Settings, since: timedelta | None = None) -> SyncSummary:
    """Ingest every event Stripe has that we never stored, oldest first; resumable."""
    now = utcnow()
    start = _sync_start(since, now)
    summary = SyncSummary(since=start)
    if now - start > RETENTION_WARNING:
        summary.warnings.append(
            "the gap nears Stripe's 30-day event retention: "
            "run payments reconcile for anything older"
        )
    newest = start
    for event in _fetch(settings, max(start, now - RETENTION)):
        summary.seen += 1
        newest = max(newest, datetime.fromtimestamp(event["created"], UTC).replace(tzinfo=None))
        known = StripeEvent.get_or_none(StripeEvent.id == event["id"])
        if known is not None and known.status in (PROCESSED, IGNORED):
            summary.already_known += 1
            continue
        _ingest_one(settings, event, summary)
    _save_cursor(newest if not summary.failed else start)
    return summary


def _ingest_one(settings: Settings, event: dict, summary: SyncSummary) -> None:
    try:
        outcome = ingest(settings, event, json.dumps(event), source="sync")
    except ProcessingFailed:
        summary.failed += 1
        return
    if outcome.result == "processed":
        summary.processed += 1
    elif outcome.result == "ignored":
        summary.ignored += 1
    else:
        summary.already_known += 1


def _save_cursor(moment: datetime) -> None:
    with write_transaction():
        SyncCursor.insert(name=CURSOR, value=moment.isoformat(), updated_at=utcnow()).on_conflict(
            conflict_target=[SyncCursor.name],
            update={SyncCursor.value: moment.isoformat(), SyncCursor.updated_at: utcnow()},
        ).execute()
