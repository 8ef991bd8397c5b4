"""The batch side of `bench/run --scale`, in one process: `orders expire` and every
`shopctl doctor` check, each timed with the CPU it cost here and in PostgreSQL.

Run by scale.py with the benchmark's environment (DATABASE_URL and the rest); prints one
JSON object. The functions are the ones `shopctl orders expire` and `shopctl doctor`
call, so the figures are theirs minus a process start-up (measured apart, `startup`).

    python bench/scale_jobs.py --due 1000 --rounds 3 --users ID,ID --products ID,ID
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dataset


def backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend of the database: the first field
    of /proc/PID/schedstat, in nanoseconds (/proc/PID/stat counts 10 ms ticks, too coarse
    for a check that takes a few)."""
    with dataset.connect(url) as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        pids = [pid for (pid,) in cursor.fetchall()]
    used = {}
    for pid in pids:
        try:
            used[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except OSError:
            continue
    return used


def timed(url: str, work) -> dict:
    """Wall seconds, our CPU and the backends' CPU of `work()`, and what it returned."""
    backends = backend_cpu(url)
    cpu, started = time.process_time(), time.perf_counter()
    result = work()
    wall, own = time.perf_counter() - started, time.process_time() - cpu
    after = backend_cpu(url)
    db = sum(used - backends.get(pid, 0.0) for pid, used in after.items())
    return {"seconds": wall, "cpuSeconds": own, "dbCpuSeconds": db, "result": result}


def doctor_round(url: str, settings) -> dict:
    from shopctl.services.common import Report
    from shopctl.services.system.doctor import data_checks

    figures = {}
    for name, check in data_checks(settings):
        report = Report()
        figure = timed(url, lambda check=check, report=report: check(report))
        figure["result"] = [[c.name, c.ok, c.detail] for c in report.checks]
        figures[name] = figure
    return figures


def expire(url: str, settings) -> dict:
    from shopctl.services.payments.sessions import expire_overdue

    figure = timed(url, lambda: expire_overdue(settings).as_json())
    return figure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", required=True, help="comma-separated buyer ids")
    parser.add_argument("--products", required=True, help="comma-separated in-stock ids")
    args = parser.parse_args()
    from shopctl import db
    from shopctl.commands.common import start_logging
    from shopctl.config import load_settings

    settings = load_settings()
    url = settings.database_url
    # One connection: the backends measured are this process's, and they live throughout.
    db.init_database(url, max_connections=1, create=False)
    start_logging(settings)  # the business log lines `orders expire` writes, as cron runs it
    users, products = args.users.split(","), args.products.split(",")
    out = {"doctorFirst": doctor_round(url, settings), "expireNone": [], "expireDue": []}
    for n in range(args.rounds):
        out["expireNone"].append(expire(url, settings))
        dataset.insert_orders(
            url, f"due{n}", args.due, users, products, expires_in=timedelta(minutes=-1)
        )
        out["expireDue"].append(expire(url, settings))
    out["doctor"] = [doctor_round(url, settings) for _ in range(args.rounds)]
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
