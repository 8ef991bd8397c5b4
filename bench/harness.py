"""The benchmark run behind `bench/run`: set up, load every scenario, print the table.

A run creates its own PostgreSQL database (dropped at the end), seeds it, starts
`shopctl serve`, the Stripe sandbox and the ceiling app on free ports, drives each
scenario with wrk, then times the batch jobs beside plain SQL. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import batch
import dataset
import load
import observability
import processes
import report
import scenarios

PASSWORD = "Bench-Passw0rd!"
USERS = 1000
WEBHOOKS_PER_SECOND = 1500  # bodies prepared per second of the webhook scenario
MIXED_WEBHOOKS_PER_SECOND = 200
SALE_STOCK = 10_000  # units added to each product the order scenarios buy
ALL = (
    "reads",
    "metrics",
    "login",
    "pay-later",
    "pay-later-one",
    "webhook",
    "pay-now",
    "memory",
    "expire",
    "seed",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--duration", type=float, default=8.0, help="seconds per wrk scenario (default 8)")
    add("--connections", type=int, default=32, help="wrk -c (default 32)")
    add("--threads", type=int, default=2, help="wrk -t (default 2)")
    add("--workers", type=int, default=2, help="shopctl serve --workers (default 2)")
    add(
        "--soak",
        type=float,
        default=30.0,
        help="seconds of mixed load for the memory check (default 30; RESULTS.md uses 300)",
    )
    add("--expire-orders", type=int, default=100_000, help="overdue orders for `orders expire`")
    add("--seed-count", type=int, default=100_000, help="products for `products seed`")
    add("--products", type=int, default=10_000, help="catalog size for the load scenarios")
    add("--only", default=",".join(ALL), help=f"comma-separated subset of: {', '.join(ALL)}")
    add(
        "--pg",
        default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server (trust auth); a database is created there and dropped",
    )
    add("--json", type=Path, help="also write every figure to this JSON file")
    add("--markdown", action="store_true", help="print the tables as Markdown")
    add(
        "--keep",
        action="store_true",
        help="keep the work directory (logs, request files); with --scale, the databases too",
    )
    add(
        "--setup-sql",
        type=Path,
        action="append",
        default=[],
        help="SQL file run on the database after migrating (e.g. an index to try); repeatable",
    )
    add(
        "--scale",
        action="store_true",
        help="instead of the scenarios: build a shop at each --scale-sizes and measure how "
        "each request's and job's cost grows with it (bench/scale.py)",
    )
    add(
        "--scale-sizes",
        default="10k,1m",
        help="catalog sizes for --scale, comma-separated (default 10k,1m; e.g. 10k,50k)",
    )
    add("--scale-rounds", type=int, default=3, help="rounds of each job for --scale")
    add(
        "--hold",
        action="store_true",
        help="set up, start the servers, write the request files, print wrk commands and "
        "wait for Ctrl-C instead of measuring (for profiling with py-spy)",
    )
    args = parser.parse_args(argv)
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    # The run changes directory: paths given relative to the caller's.
    args.json = args.json.resolve() if args.json else None
    args.setup_sql = [path.resolve() for path in args.setup_sql]
    if unknown := args.only - set(ALL):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def bench_env(db_url: str, webhook_secret: str, sandbox_port: int) -> dict[str, str]:
    """What `shopctl` sees: production settings, our secrets, the sandbox as Stripe."""
    return os.environ | {
        "DATABASE_URL": db_url,
        "SHOPCTL_ENV": "production",
        "JWT_ACCESS_SECRET": "bench-access-" + secrets.token_hex(16),
        "JWT_REFRESH_SECRET": "bench-refresh-" + secrets.token_hex(16),
        "JWT_ACCESS_EXPIRES": "6h",  # tokens minted before the run outlive a long soak
        "BCRYPT_SALT_ROUNDS": "12",  # the production default, so login is measured as it is
        "STRIPE_SECRET_KEY": "sk_test_bench_" + secrets.token_hex(8),
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_API_BASE": f"http://127.0.0.1:{sandbox_port}",
        "FRONTEND_URL": "http://localhost:3000",
        "SANIC_PROXIES_COUNT": "1",  # behind one proxy: login scenario's X-Forwarded-For
        # The load is 1,000 buyers placing 20,000 orders as fast as they can: throughput is
        # measured here, not the per-buyer limits (tests/test_abuse_orders.py holds those).
        "MAX_OPEN_ORDERS": "0",
        "ORDER_RATE_LIMIT": "off",
        "PYTHONUNBUFFERED": "1",
    }


def mint_tokens(env: dict[str, str], users: list[tuple[str, str]]) -> list[str]:
    """Access tokens as a login would issue them, minus the bcrypt (one per buyer)."""
    from shopctl.config import Settings, parse_duration
    from shopctl.models import User
    from shopctl.services.accounts.tokens import issue_access_token

    settings = Settings(
        jwt_access_secret=env["JWT_ACCESS_SECRET"],
        jwt_access_expires=parse_duration(env["JWT_ACCESS_EXPIRES"]),
    )
    return [
        issue_access_token(settings, User(id=uid, email=email, role="USER")) for uid, email in users
    ]


def password_hash(rounds: int) -> str:
    import bcrypt

    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds)).decode()


def setup(args, workdir: Path, db_name: str) -> scenarios.Context:
    db_url = dataset.create_database(args.pg, db_name)
    secret = "whsec_bench_" + secrets.token_hex(16)
    env = bench_env(db_url, secret, processes.free_port())
    started = time.perf_counter()
    batch.shopctl(["migrate"], env, db_url)
    for script in args.setup_sql:
        dataset.run_script(db_url, script.read_text())
    batch.shopctl(["products", "seed", "--count", str(args.products), "--seed", "1"], env, db_url)
    users = dataset.insert_users(db_url, USERS, password_hash(int(env["BCRYPT_SALT_ROUNDS"])))
    catalog = dataset.catalog_ids(db_url)
    sale = [pid for pid, _ in dataset.sale_products(db_url, 50, 5000)]
    dataset.restock(db_url, sale, SALE_STOCK)
    print(
        f"  database {db_name}: {len(catalog):,} products, {len(users):,} buyers "
        f"({time.perf_counter() - started:.1f}s)",
        flush=True,
    )
    return scenarios.Context(
        args=args,
        workdir=workdir,
        server=args.pg,
        db_url=db_url,
        env=env,
        webhook_secret=secret,
        password=PASSWORD,
        users=users,
        tokens=mint_tokens(env, users),
        catalog=catalog,
        sale=sale,
        wrk=load.WrkSettings(args.threads, args.connections, args.duration),
        sandbox_port=int(env["STRIPE_API_BASE"].rsplit(":", 1)[1]),
    )


def webhook_orders(ctx: scenarios.Context, counts: dict[str, int]) -> dict[str, list]:
    """Pay-later orders made in SQL for the webhook bodies: one payment per body."""
    user_ids = [uid for uid, _ in ctx.users]
    stock = dataset.insert_stock_products(ctx.db_url)
    payments = {}
    for tag, count in counts.items():
        dataset.insert_orders(
            ctx.db_url, tag, count, user_ids, stock, expires_in=timedelta(hours=3)
        )
        payments[tag] = dataset.open_payments(ctx.db_url, tag, count)
    return payments


def start_services(ctx: scenarios.Context) -> None:
    api_port = processes.free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    ctx.sandbox = processes.sandbox(
        ctx.env,
        ctx.workdir,
        ctx.sandbox_port,
        f"{api_url}/api/v1/payment/webhook",
        ctx.webhook_secret,
        0,
    )
    ctx.api = processes.shopctl_serve(ctx.env, ctx.workdir, api_port, ctx.args.workers)
    bodies = scenarios.capture_bodies(ctx)
    ctx.ceiling = processes.ceiling(
        ctx.env, ctx.workdir, processes.free_port(), ctx.args.workers, bodies
    )


def stop_services(ctx: scenarios.Context) -> None:
    for service in (ctx.ceiling, ctx.api, ctx.sandbox):
        if service is not None:
            service.stop()
    ctx.ceiling = ctx.api = ctx.sandbox = None


def load_scenarios(ctx: scenarios.Context, only: set[str]) -> None:
    counts = {"webhook": int(ctx.wrk.duration * WEBHOOKS_PER_SECOND)} if "webhook" in only else {}
    rounds = scenarios.round_sizes(ctx.args.soak, MIXED_WEBHOOKS_PER_SECOND)
    if "memory" in only:
        counts |= {f"mixed{n}": size for n, size in enumerate(rounds, 1)}
    payments = webhook_orders(ctx, counts) if counts else {}
    # Planner statistics as autovacuum would have them in steady state, before any load.
    dataset.vacuum_analyze(ctx.db_url)
    start_services(ctx)
    if ctx.args.hold:
        scenarios.hold(ctx, payments.get("webhook", []))
        return
    cold = processes.rss_mib(ctx.api.workers())
    print(
        f"  serving on {ctx.api.url} ({ctx.args.workers} workers), ceiling on "
        f"{ctx.ceiling.url}; cold worker RSS {cold}",
        flush=True,
    )
    scenarios.warm_up(ctx)
    scenarios.measure_ceiling(ctx, 1)
    steps = [
        ("reads", scenarios.reads),
        ("metrics", observability.metrics_cost),
        ("login", scenarios.login),
        ("pay-later", scenarios.pay_later),
        ("pay-later-one", scenarios.pay_later_one_product),
        ("webhook", lambda c: scenarios.webhooks(c, payments["webhook"])),
        ("pay-now", scenarios.pay_now),
    ]
    for name, step in steps:
        if name in only:
            step(ctx)
    scenarios.measure_ceiling(ctx, 2)
    if "memory" in only:
        mixed = [payments[f"mixed{n}"] for n in range(1, len(rounds) + 1)]
        scenarios.memory(ctx, cold, mixed, ctx.args.soak)


def batch_jobs(ctx: scenarios.Context, only: set[str]) -> None:
    env = {key: value for key, value in ctx.env.items() if key != "STRIPE_API_BASE"}
    if "expire" in only:
        ctx.run.batches["expire"] = result = batch.expire_benchmark(
            ctx.server, env, ctx.args.expire_orders
        )
        print(
            f"  orders expire: {result.command_rate:,.0f} rows/s vs plain "
            f"{result.plain_rate:,.0f} rows/s",
            flush=True,
        )
    if "seed" in only:
        ctx.run.batches["seed"] = result = batch.seed_benchmark(
            ctx.server, env, ctx.args.seed_count
        )
        print(
            f"  products seed: {result.command_rate:,.0f} rows/s vs plain "
            f"{result.plain_rate:,.0f} rows/s",
            flush=True,
        )
    ctx.run.checks["startupSeconds"] = round(batch.startup_seconds(env), 3)


def resolve_ceilings(ctx: scenarios.Context) -> None:
    """Every row against the faster of the two ceiling measurements with the same bytes."""
    best = {kind: max(results, key=lambda r: r.rps) for kind, results in ctx.ceilings.items()}
    for key, kind in ctx.ceiling_kind.items():
        ctx.run.rows[key].ceiling = best.get(kind)
        ctx.run.rows[key].ceiling_kind = kind


def machine() -> dict:
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().split("\n")
        if line.startswith("MemTotal")
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "memoryGiB": round(memory_kib / 2**20, 1),
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
    }


def print_report(ctx: scenarios.Context, info: dict, markdown: bool) -> None:
    render = report.markdown if markdown else report.plain
    print("\n" + render(report.table(ctx.run)))
    if ctx.run.batches:
        print("\n" + render(report.batch_table(ctx.run)))
    if ctx.run.memory:
        print("\n" + render(report.memory_table(ctx.run)))
    print("\n" + render(report.targets(ctx.run)))
    print(
        f"\nmachine: {info['cpus']} CPUs, {info['memoryGiB']} GiB, PostgreSQL "
        f"{info['postgres']}, Python {info['python']}, commit {info['commit']}; load average "
        f"{info['loadAverage']} at start, {info['loadAverageEnd']} at end"
    )


def dump(path: Path, ctx: scenarios.Context, info: dict) -> None:
    data = {
        "machine": info,
        "wrk": ctx.wrk.describe(),
        "args": {**vars(ctx.args), "only": sorted(ctx.args.only), "json": str(ctx.args.json)},
        "rows": {
            key: {
                **row.result.as_json(),
                "ceiling": row.ceiling.name if row.ceiling else None,
                "fraction": row.fraction,
                "cpuFraction": row.cpu_fraction,
            }
            for key, row in ctx.run.rows.items()
        },
        "batches": {key: b.as_json() for key, b in ctx.run.batches.items()},
        "memory": ctx.run.memory,
        "checks": ctx.run.checks,
        "targets": report.targets(ctx.run),
    }
    path.write_text(json.dumps(data, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` still stops the servers and drops the database (the finally below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load.require_wrk()
    info = machine() | {"postgres": dataset.server_version(args.pg)}
    workdir = Path(tempfile.mkdtemp(prefix="shopctl-bench-"))
    # Every `shopctl` we start runs here: a checkout's ./shopctl or ./.env must not shadow
    # the package on PYTHONPATH (how a patch is measured) or the run's settings.
    os.chdir(workdir)
    db_name = dataset.unique_name()
    print(f"shopctl bench: work directory {workdir}", flush=True)
    if args.scale:
        import scale

        try:
            return scale.run(args, workdir)
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    ctx, keep = None, args.keep
    try:
        ctx = setup(args, workdir, db_name)
        load_scenarios(ctx, args.only)
        if args.hold:
            return 0
        stop_services(ctx)
        batch_jobs(ctx, args.only)
        resolve_ceilings(ctx)
        ctx.run.checks["doctorEnd"] = scenarios.shopctl_json(ctx, "doctor").get("ok")
    except Exception:
        keep = True  # the logs of the servers say why
        print(f"shopctl bench failed; logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        if ctx is not None:
            stop_services(ctx)
        dataset.drop_database(args.pg, db_name)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    info["loadAverageEnd"] = [round(x, 2) for x in os.getloadavg()]
    print_report(ctx, info, args.markdown)
    if args.json:
        dump(args.json, ctx, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
