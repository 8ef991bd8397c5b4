"""Reading the stored Stripe event log (operators' views and doctor's webhook health)."""

from __future__ import annotations

from datetime import timedelta

from shopctl import pagination
from shopctl.models import StripeEvent, utcnow
from shopctl.pagination import Keyset
from shopctl.schemas import EventSearch
from shopctl.services.common import Report, resolve_id

STALE_RECEIVED = timedelta(minutes=5)
NEWEST_FIRST = Keyset(
    "events", "receivedAt:desc", (StripeEvent.received_at, StripeEvent.id), descending=True
)


def find_event_id(text: str) -> str:
    """The id of the stored event `text` names: its whole id or a unique prefix
    (`evt_` and 6+ characters)."""
    return resolve_id(StripeEvent, text, "event", is_uuid=False)


def list_events(search: EventSearch) -> tuple[list[StripeEvent], str | None]:
    """Newest received first, after `search.cursor` if given: (events, the next page's
    cursor or None), read from the index that leads with the filter (migrations/0011)."""
    window = pagination.window(NEWEST_FIRST, limit=search.limit, cursor=search.cursor)
    query = StripeEvent.select()
    if search.status:
        query = query.where(StripeEvent.status == search.status)
    if search.type:
        query = query.where(StripeEvent.type == search.type)
    if search.since:
        query = query.where(StripeEvent.received_at >= search.since)
    return window.page_of(list(window.select(query)))


def check_webhooks(report: Report) -> None:
    """FAILED events, events stored but never processed, and the processing lag."""
    failed = StripeEvent.select().where(StripeEvent.status == "FAILED").count()
    report.add(
        "webhooks",
        failed == 0,
        f"{failed} FAILED event(s)" if failed else "no failures",
        "shopctl events replay --failed",
    )
    cutoff = utcnow() - STALE_RECEIVED
    stuck = (
        StripeEvent.select()
        .where((StripeEvent.status == "RECEIVED") & (StripeEvent.received_at < cutoff))
        .count()
    )
    report.add(
        "webhook queue",
        stuck == 0,
        f"{stuck} event(s) stored but never processed" if stuck else "nothing stuck",
        "shopctl events replay <id> for each (see events list --status RECEIVED)",
    )
    lags = processing_lags()
    if lags:
        worst, typical = max(lags), sorted(lags)[len(lags) // 2]
        report.add(
            "webhook lag",
            True,
            f"median {typical:.1f}s, worst {worst:.1f}s "
            f"from Stripe's creation to processed (last {len(lags)} events)",
        )


def processing_lags(sample: int = 500) -> list[float]:
    """Seconds from an event's creation at Stripe to our processing, for the latest events
    received (by the indexed received_at: ordering a million events by processed_at, which
    has no index, read them all)."""
    query = (
        StripeEvent.select(StripeEvent.stripe_created_at, StripeEvent.processed_at)
        .where(
            StripeEvent.processed_at.is_null(False) & StripeEvent.stripe_created_at.is_null(False)
        )
        .order_by(StripeEvent.received_at.desc())
        .limit(sample)
    )
    return [max(0.0, (done - created).total_seconds()) for created, done in query.tuples()]
