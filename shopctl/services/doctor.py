"""`shopctl doctor`: every health check, one report."""

from __future__ import annotations

from shopctl.config import Settings
from shopctl.services.system import Report, check_configuration, check_database


def run_checks(settings: Settings) -> Report:
    report = Report()
    check_configuration(settings, report)
    if not check_database(report):
        return report
    return report
