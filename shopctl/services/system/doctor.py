"""`shopctl doctor`: every health check, one report."""

from __future__ import annotations

from collections.abc import Callable

from shopctl.config import Settings
from shopctl.services.catalog.ledger import ledger_checks
from shopctl.services.common import Report
from shopctl.services.fulfilment.checks import check_fulfilment
from shopctl.services.payments.dispute_views import check_disputes, check_fraud_warnings
from shopctl.services.payments.event_log import check_webhooks
from shopctl.services.payments.verification import check_reviews
from shopctl.services.system.checks import check_configuration, check_database
from shopctl.services.system.retention import check_retention


def data_checks(settings: Settings, full: bool = False) -> list[tuple[str, Callable]]:
    """The checks that read the shop's data, by name, in the order doctor runs them once
    the database answers (bench/run --scale times each). The ledger checks read what
    changed since the last clean run and a slice of a sweep, or with `full` every row."""
    return [
        *ledger_checks(full),
        ("fulfilment", lambda report: check_fulfilment(settings, report)),
        ("webhooks", check_webhooks),
        ("payment checks", check_reviews),
        ("disputes", check_disputes),
        ("fraud warnings", check_fraud_warnings),
        ("retention", lambda report: check_retention(settings, report)),
    ]


def run_checks(settings: Settings, full: bool = False) -> Report:
    report = Report()
    check_configuration(settings, report)
    if not check_database(report):
        return report
    for _, check in data_checks(settings, full):
        check(report)
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
