"""`shopctl doctor`: every health check, one report."""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.services.catalog.ledger import check_ledger
from shopctl.services.common import Report
from shopctl.services.fulfilment.checks import check_fulfilment
from shopctl.services.payments.dispute_views import check_disputes, check_fraud_warnings
from shopctl.services.payments.event_log import check_webhooks
from shopctl.services.payments.verification import check_reviews
from shopctl.services.system.checks import check_configuration, check_database
from shopctl.services.system.retention import check_retention


def run_checks(settings: Settings) -> Report:
    report = Report()
    check_configuration(settings, report)
    if not check_database(report):
        return report
    check_ledger(report)
    check_fulfilment(settings, report)
    check_webhooks(report)
    check_reviews(report)
    check_disputes(report)
    check_fraud_warnings(report)
    check_retention(settings, report)
    return report


def write_prometheus(report: Report, path: str) -> None:
    """Every check as a gauge in a file for node_exporter's textfile collector (cron):
    written to a temporary file and renamed, so a scrape never reads half of it."""
    import time

    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    checks = Gauge(
        "shopctl_doctor_check_ok",
        "1 when the `shopctl doctor` check passed, 0 when it failed.",
        ["check"],
        registry=registry,
    )
    for check in report.checks:
        checks.labels(check.name).set(1 if check.ok else 0)
    Gauge("shopctl_doctor_ok", "1 when every doctor check passed.", registry=registry).set(
        1 if report.ok else 0
    )
    Gauge(
        "shopctl_doctor_last_run_timestamp_seconds",
        "When `shopctl doctor` last wrote this file (Unix time).",
        registry=registry,
    ).set(time.time())
    write_to_textfile(path, registry)
