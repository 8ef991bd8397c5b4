"""`shopctl doctor`: every health check, one report."""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.services.catalog.ledger import check_ledger
from shopctl.services.common import Report
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
    check_webhooks(report)
    check_reviews(report)
    check_retention(settings, report)
    return report
