"""Prometheus metrics for every worker: HTTP, order transitions, webhooks, Stripe, refunds,
logins, stock-outs, and gauges read from the database when scraped.

Counters and histograms are prometheus-client's; with `PROMETHEUS_MULTIPROC_DIR` set
(`shopctl serve` creates and removes that directory) each worker writes its values to
its own files there and any worker's `/metrics` reads them all, so a scrape sees the sum
over every worker. The lower layers never import this module: `install()` registers
hooks at their registration points once per process (orders.lifecycle.on_transition,
gateway.on_call, webhooks.on_outcome, auth.on_throttled, placement.on_stock_out,
refunds.on_refund). Hooks run inside the business code, some inside its transaction, so
every hook here swallows its own errors: a metric must never undo an order's move.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
import time
from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shopctl.config import Settings
from shopctl.services.system.hooks import never_raises

log = logging.getLogger("shopctl.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600)
GAUGE_CACHE_SECONDS = 5.0
UNMATCHED_ROUTE = "unmatched"  # every request no route answered (404s, 405s)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ACTORS = frozenset({"api", "cli", "cron"})
CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter(
    "shopctl_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "shopctl_http_request_duration_seconds",
    "Time from a request's arrival to its response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
TRANSITIONS = Counter(
    "shopctl_order_transitions",
    "Order status changes; actor is api, cli, cron, webhook or other.",
    ["from_status", "to_status", "actor"],
)
WEBHOOK_EVENTS = Counter(
    "shopctl_webhook_events",
    "Stripe events settled (webhook, replay or sync), by type and outcome.",
    ["type", "outcome"],
)
WEBHOOK_LAG = Histogram(
    "shopctl_webhook_lag_seconds",
    "From Stripe's `created` to processed, for webhook deliveries.",
    buckets=LAG_BUCKETS,
)
STRIPE_REQUESTS = Counter(
    "shopctl_stripe_requests",
    "Calls to the Stripe API, by operation and outcome (ok or the error's class).",
    ["operation", "outcome"],
)
STRIPE_DURATION = Histogram(
    "shopctl_stripe_request_duration_seconds",
    "Duration of calls to the Stripe API, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
REFUNDS = Counter(
    "shopctl_refunds", "Refunds asked of Stripe, by the status it answered.", ["status"]
)
LOGIN_THROTTLED = Counter("shopctl_login_throttled", "Logins refused by the failed-login limit.")
STOCK_OUTS = Counter("shopctl_stock_outs", "Orders refused because a product's stock was short.")


# --- HTTP ---------------------------------------------------------------------------------
# Every request is tallied in this worker's memory (a dict update and a bisect, on the
# event loop's thread only) and added to the shared series by `flush()`: a second after
# the first request of a batch, before this worker answers a scrape, and when it stops.
# prometheus-client's multiprocess values take a lock and write to a memory-mapped file
# per change: three per request unbatched, about ten times the cost of the tally.

_BOUNDS = (*LATENCY_BUCKETS, float("inf"))
_pending: dict[tuple[str, str, int], list] = {}
FLUSH_SECONDS = 1.0


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request; `route` is the route's template, never the raw path."""
    key = (method, route, status)
    tally = _pending.get(key)
    if tally is None:
        if len(_pending) >= 10_000:  # templates and statuses are few; stay bounded
            flush()
        tally = _pending[key] = [0, 0.0, [0] * len(_BOUNDS)]
    tally[0] += 1
    tally[1] += seconds
    tally[2][bisect.bisect_left(_BOUNDS, seconds)] += 1
    if not _flush_scheduled[0]:
        _schedule_flush()


def flush() -> None:
    """Add this worker's tallies to the shared series (call on the event loop's thread)."""
    global _pending
    pending, _pending = _pending, {}
    for (method, route, status), (count, total, buckets) in pending.items():
        label = method if method in METHODS else "other"
        HTTP_REQUESTS.labels(label, route, str(status)).inc(count)
        _observe_many(HTTP_DURATION.labels(label, route), total, buckets)


def _observe_many(child, total: float, buckets: list[int]) -> None:
    """`observe` for many samples at once: the histogram's own per-bucket values (what
    `observe` increments, one at a time), or, should they ever change, one observation
    per sample at its bucket's upper bound."""
    values = getattr(child, "_buckets", None)
    if values is None or len(values) != len(buckets) or not hasattr(child, "_sum"):
        for bound, count in zip(_BOUNDS, buckets, strict=True):
            for _ in range(count):
                child.observe(min(bound, total))
        return
    child._sum.inc(total)
    for value, count in zip(values, buckets, strict=True):
        if count:
            value.inc(count)


def _schedule_flush() -> None:
    """A flush FLUSH_SECONDS from now on this thread's event loop, once per batch: an idle
    worker has nothing pending and no timer."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on a loop (a script): flushed when scraped
        return
    _flush_scheduled[0] = True
    loop.call_later(FLUSH_SECONDS, _scheduled_flush)


def _scheduled_flush() -> None:
    _flush_scheduled[0] = False
    flush()


_flush_scheduled = [False]


# --- business hooks -----------------------------------------------------------------------


def actor_label(actor: str) -> str:
    if actor in ACTORS:
        return actor
    return "webhook" if actor.startswith("evt_") else "other"


@never_raises
def _transition(order_ids: Sequence[str], from_status: str, to_status: str, actor: str) -> None:
    TRANSITIONS.labels(from_status, to_status, actor_label(actor)).inc(len(order_ids))


@never_raises
def _stripe_call(operation: str, outcome: str, started: float, seconds: float) -> None:
    STRIPE_REQUESTS.labels(operation, outcome).inc()
    STRIPE_DURATION.labels(operation).observe(seconds)


@never_raises
def _webhook(outcome, source: str, lag: float | None) -> None:
    WEBHOOK_EVENTS.labels(outcome.type, outcome.result).inc()
    if lag is not None and source == "webhook" and outcome.result in ("processed", "ignored"):
        WEBHOOK_LAG.observe(max(0.0, lag))


@never_raises
def _throttled(kinds: list[str]) -> None:
    LOGIN_THROTTLED.inc()


@never_raises
def _stock_out(product_ids: list[str]) -> None:
    STOCK_OUTS.inc()


@never_raises
def _refund(order_id: str, payment_id: str, amount: int | None, status: str) -> None:
    REFUNDS.labels(status).inc()


_installed = threading.Lock()
_done: list[bool] = []


def install(settings: Settings) -> None:
    """Register every hook, once per process (every worker's app factory calls this)."""
    from shopctl.services.accounts import throttle
    from shopctl.services.orders import lifecycle
    from shopctl.services.payments import gateway, outcomes, refunds

    with _installed:
        if _done:
            return
        lifecycle.on_transition(_transition)
        gateway.on_call(_stripe_call)
        outcomes.on_outcome(_webhook)
        throttle.on_throttled(_throttled)
        lifecycle.on_stock_out(_stock_out)
        refunds.on_refund(_refund)
        if not settings.metrics_dir:  # one process: its own registry is the whole truth
            REGISTRY.register(DATABASE_GAUGES)
        _done.append(True)


# --- gauges from the database, at most every few seconds ------------------------------------


class DatabaseGauges:
    """Reserved units, unpaid, stuck and overdue orders, failed events: read when scraped,
    cached for GAUGE_CACHE_SECONDS so a burst of scrapes costs one set of queries."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cached: tuple[float, list] = (0.0, [])

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """The names, for the registry's duplicate check, without reading the database."""
        return [GaugeMetricFamily(name, name) for name in GAUGE_NAMES]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            at, families = self._cached
            if time.monotonic() - at > GAUGE_CACHE_SECONDS:
                families = _read_gauges()
                self._cached = (time.monotonic(), families)
        return list(families)


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _read_gauges() -> list[GaugeMetricFamily]:
    from peewee import fn

    from shopctl.db import connection
    from shopctl.models import Order, OrderItem, StripeEvent, utcnow
    from shopctl.services.catalog.ledger import STUCK_AFTER

    try:
        with connection():
            now = utcnow()
            holding = (Order.status.in_(("UNPAID", "PROCESSING"))) & (~Order.stock_released)
            reserved = (
                OrderItem.select(fn.COALESCE(fn.SUM(OrderItem.quantity), 0))
                .join(Order)
                .where(holding)
                .scalar()
            )
            unpaid = Order.select().where(Order.status == "UNPAID").count()
            overdue = Order.status == "UNPAID"
            stuck = Order.select().where(overdue & (Order.expires_at < now - STUCK_AFTER)).count()
            oldest = Order.select(fn.MIN(Order.expires_at)).where(overdue).scalar()
            failed = StripeEvent.select().where(StripeEvent.status == "FAILED").count()
    except Exception:  # a scrape during an outage still answers: say the database is down
        log.warning("reading the metrics gauges failed", exc_info=True)
        return [_gauge("shopctl_database_up", "1 when the gauges could be read.", 0)]
    overdue_seconds = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    return [
        _gauge("shopctl_database_up", "1 when the gauges could be read.", 1),
        _gauge("shopctl_reserved_units", "Units held by UNPAID/PROCESSING orders.", reserved),
        _gauge("shopctl_unpaid_orders", "Orders waiting for payment.", unpaid),
        _gauge("shopctl_failed_events", "Stripe events stored as FAILED.", failed),
        _gauge("shopctl_stuck_orders", "UNPAID orders over an hour past expiry.", stuck),
        _gauge(
            "shopctl_oldest_overdue_seconds",
            "How long the oldest UNPAID order has been past its reservation (0: none); "
            "stays under a minute while `orders expire` runs every minute.",
            overdue_seconds,
        ),
    ]


GAUGE_NAMES = (
    "shopctl_database_up",
    "shopctl_reserved_units",
    "shopctl_unpaid_orders",
    "shopctl_failed_events",
    "shopctl_stuck_orders",
    "shopctl_oldest_overdue_seconds",
)
DATABASE_GAUGES = DatabaseGauges()


def exposition(settings: Settings) -> bytes:
    """Every series in Prometheus' text format, summed over all workers when multiprocess."""
    if not settings.metrics_dir:
        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=settings.metrics_dir)
    registry.register(DATABASE_GAUGES)
    return generate_latest(registry)


def token_matches(settings: Settings, header: str) -> bool:
    """`Authorization: Bearer <METRICS_TOKEN>`, compared in constant time."""
    import hmac

    scheme, _, given = header.partition(" ")
    expected = settings.metrics_token or ""
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())
