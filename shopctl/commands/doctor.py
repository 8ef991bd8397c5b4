"""`shopctl doctor`: is this installation healthy?"""

from __future__ import annotations

from pathlib import Path

import typer

from shopctl.commands.common import console, fail, handle_errors, print_json


@handle_errors
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    prometheus: Path = typer.Option(
        None,
        "--prometheus",
        metavar="FILE",
        help="Also write every check as a gauge to FILE (node_exporter's textfile collector).",
    ),
    full: bool = typer.Option(
        False,
        "--full",
        help="Check every product's and order's stock, not only what changed since the last "
        "clean run and the next slice of the sweep.",
    ),
) -> None:
    """Check configuration, database, migrations, the stock ledger and stuck orders.

    Exits 1 when anything is wrong; a warning (e.g. an open dispute) is shown, exit 0.
    The stock checks read what changed since the last clean run and the next 10,000
    products and orders of a sweep over the whole shop (a small shop is checked whole
    every run); --full reads everything.

    \b
    Examples: shopctl doctor --json;
    shopctl doctor --prometheus /var/lib/node_exporter/textfile/shopctl.prom (cron)
    """
    from shopctl.config import load_settings
    from shopctl.db import init_database
    from shopctl.services.system.doctor import run_checks, write_prometheus

    settings = load_settings()
    init_database(settings.database_url, max_connections=4, create=False)
    report = run_checks(settings, full)
    if prometheus is not None:
        try:
            write_prometheus(report, str(prometheus))
        except OSError as exc:
            fail(f"cannot write {prometheus}: {exc.strerror or exc}")
    if as_json:
        print_json({"ok": report.ok, "checks": [vars(check) for check in report.checks]})
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report) -> None:
    """One line per check; a long detail or hint wraps under its own column."""
    from rich.table import Table

    from shopctl.commands.tables import text

    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for check in report.checks:
        mark = "[green]ok[/]" if check.ok else "[red]FAIL[/]"
        if check.ok and check.warning:
            mark = "[yellow]warn[/]"
        grid.add_row(mark, check.name, text(check.detail))
        if check.hint and (check.warning or not check.ok):
            grid.add_row("", "", text(f"→ {check.hint}"))
    console().print(grid)
