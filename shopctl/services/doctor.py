"""`shopctl doctor`: every health check, one report."""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.services.event_log import check_webhooks
from shopctl.services.ledger import check_ledger
from shopctl.services.system import Report, check_configuration, check_database


def run_checks(settings: Settings) -> Report:
    report = Report()
    check_configuration(settings, report)
    if not check_database(report):
        return report
    check_ledger(report)
    check_webhooks(report)
    return report
