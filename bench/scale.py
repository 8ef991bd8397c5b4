"""`bench/run --scale`: does each request cost the same at a million products as at ten
thousand? For each size: a fresh database (`shopctl migrate`, then scale_data.build),
`shopctl serve` on it, every request measured with wrk (p99, and the CPU the workers and
PostgreSQL spent per request), then `orders expire` and each `doctor` check
(scale_jobs.py). The table sets each figure beside the smallest size's. See README.md.
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import batch
import dataset
import load
import payloads
import processes
import report
import scale_data
from scenarios import Context, timed

TARGET_RATIO = 1.5
DOCTOR_SECONDS = 5.0
BUYER_TOKENS = 200
SAMPLED_IDS = 10_000
DEEP_PAGES = 5_000
PAGE = 20
WEBHOOKS_PER_SECOND = 1500
NO_MATCH = ("zebra", "qqqxz")


def parse_sizes(text: str) -> list[int]:
    """Sizes as "10k,1m" or "10000,1000000": [10000, 1000000]."""
    scale = {"k": 1_000, "m": 1_000_000}
    sizes = []
    for part in text.lower().split(","):
        part = part.strip()
        factor = scale.get(part[-1:], 1)
        sizes.append(int(float(part.rstrip("km")) * factor))
    return sorted(sizes)


def token_for(env: dict[str, str], uid: str, email: str, role: str) -> str:
    from shopctl.config import Settings, parse_duration
    from shopctl.models import User
    from shopctl.services.accounts.tokens import issue_access_token

    settings = Settings(
        jwt_access_secret=env["JWT_ACCESS_SECRET"],
        jwt_access_expires=parse_duration(env["JWT_ACCESS_EXPIRES"]),
    )
    return issue_access_token(settings, User(id=uid, email=email, role=role))


def prepare(args, size: int, workdir: Path) -> tuple[Context, dict]:
    """A filled database of `size` products and the context the scenarios run in."""
    from harness import bench_env, password_hash

    name = dataset.unique_name(f"shopctl_scale_{size}")
    db_url = dataset.create_database(args.pg, name)
    secret = "whsec_bench_" + secrets.token_hex(16)
    env = bench_env(db_url, secret, processes.free_port())
    batch.shopctl(["migrate"], env, db_url)
    print(f"  building {size:,} products in {name}", flush=True)
    shape = scale_data.build(db_url, size, password_hash(4), dataset.utcnow(), log=print)
    shape["database"] = name
    buyers = shape["buyers"]
    picked = random.Random(size).sample(range(buyers), min(BUYER_TOKENS, buyers))
    users = [(str(uuid.UUID(_md5(f"u{k}"))), f"buyer{k}@scale.example") for k in picked]
    admin = str(uuid.uuid4())
    with dataset.connect(db_url) as cursor:
        cursor.execute(
            'INSERT INTO "user" (id, email, password_hash, name, role, is_deleted, created_at, '
            "updated_at) VALUES (%s, 'admin@scale.example', '-', 'Admin', 'ADMIN', false, "
            "now(), now())",
            (admin,),
        )
        cursor.execute("SELECT id, name FROM product ORDER BY random() LIMIT %s", (SAMPLED_IDS,))
        sampled = cursor.fetchall()
    catalog = [pid for pid, _ in sampled]
    stock = dataset.insert_stock_products(db_url)
    ctx = Context(
        args=args,
        workdir=workdir,
        server=args.pg,
        db_url=db_url,
        env=env,
        webhook_secret=secret,
        password="",
        users=users,
        tokens=[token_for(env, uid, email, "USER") for uid, email in users],
        catalog=catalog,
        sale=stock,
        wrk=load.WrkSettings(args.threads, args.connections, args.duration),
    )
    ctx.admin_token = token_for(env, admin, "admin@scale.example", "ADMIN")
    # Whole names match one product (or a few) at every size; "No. 42" would match more
    # the bigger the catalog.
    ctx.rare_searches = [name for _, name in sampled[:2]] + list(NO_MATCH)
    count = int(args.duration * WEBHOOKS_PER_SECOND)
    dataset.insert_orders(
        db_url, "webhook", count, [u for u, _ in users], stock, expires_in=timedelta(hours=3)
    )
    ctx.webhook_payments = dataset.open_payments(db_url, "webhook", count)
    dataset.vacuum_analyze(db_url)
    return ctx, shape


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def get_json(connection: http.client.HTTPConnection, path: str) -> dict:
    connection.request("GET", path)
    answer = connection.getresponse()
    body = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"GET {path}: {answer.status} {body[:300]!r}")
    return json.loads(body)


def deep_pages(ctx: Context, size: int) -> tuple[list[str], str]:
    """Request lines for pages DEEP_PAGES deep (or half-way through a smaller catalog):
    by cursor when the API offers one, else by `page` (OFFSET), marked pending."""
    depth = min(DEEP_PAGES, max(1, size // PAGE // 2))
    base = f"{payloads.API}/product?limit={PAGE}"
    connection = http.client.HTTPConnection(ctx.api.url.removeprefix("http://"), timeout=60)
    first = get_json(connection, base)
    if "nextCursor" not in first.get("meta", {}):
        pages = range(depth, depth + 20)
        lines = [payloads.line("GET", f"{base}&page={page}") for page in pages]
        return lines, f"page {depth:,} by OFFSET (cursor pending)"
    cursor, lines = first["meta"]["nextCursor"], []
    for page in range(2, depth + 20):
        path = f"{base}&{urlencode({'cursor': cursor})}"
        if page >= depth:
            lines.append(payloads.line("GET", path))
        cursor = get_json(connection, path)["meta"]["nextCursor"]
    connection.close()
    return lines, f"cursor page {depth:,}"


def requests(ctx: Context, size: int) -> list[tuple[str, str, list[str], load.WrkSettings]]:
    """(key, name, request lines, wrk settings) of every request measured."""
    deep, deep_name = deep_pages(ctx, size)
    buyers = [
        payloads.line("GET", f"{payloads.API}/order?limit=10", [f"Authorization: Bearer {t}"])
        for t in ctx.tokens
    ]
    admin = [f"Authorization: Bearer {ctx.admin_token}"]
    by_status = [
        payloads.line("GET", f"{payloads.API}/order?status={status}&limit=10", admin)
        for status in ("PAID", "UNPAID", "EXPIRED", "CANCELED")
    ]
    rare = [
        payloads.line("GET", f"{payloads.API}/product?{urlencode({'limit': PAGE, 'search': t})}")
        for t in ctx.rare_searches
    ]
    ids = list(ctx.catalog)
    ctx.rng.shuffle(ids)
    orders = payloads.orders("/order/pay-later", ctx.tokens, ctx.sale, 20000, ctx.rng)
    wrk = ctx.wrk
    return [
        ("product_id", "GET /product/:id", payloads.product_gets(ids), wrk),
        ("first_page", "GET /product?limit=20 (first page)", payloads.list_gets(pages=1), wrk),
        ("deep_page", f"GET /product, {deep_name}", deep, wrk),
        ("search", "GET /product?search= (common words)", payloads.search_gets(), wrk),
        ("search_rare", "GET /product?search= (few or no matches)", rare, wrk),
        ("buyer_orders", "GET /order (one buyer's list)", buyers, wrk),
        ("admin_orders", "GET /order?status= (admin)", by_status, wrk),
        ("webhook", "POST /payment/webhook", payloads.webhooks(ctx.webhook_secret,
                                                              ctx.webhook_payments), wrk),
        ("pay_later", "POST /order/pay-later", orders, wrk),
    ]  # fmt: skip


def serve_and_measure(ctx: Context, size: int) -> dict:
    port = processes.free_port()
    ctx.api = processes.shopctl_serve(ctx.env, ctx.workdir, port, ctx.args.workers)
    figures = {}
    try:
        warm = replace(ctx.wrk, duration=2)
        for key, name, lines, settings in requests(ctx, size):
            path = ctx.file(f"scale_{size}_{key}", lines)
            if key != "webhook":  # a replayed event is a cheap duplicate: each counts once
                load.run("warm-up", ctx.api.url, path, warm)
            result = timed(ctx, name, ctx.api, path, settings)
            figures[key] = result_figures(result)
            print(f"    {name}: p99 {result.p99_ms:.1f} ms, {result.rps:,.0f} req/s, "
                  f"CPU {figures[key]['cpuMs']:.2f} ms/req, {result.errors} errors",
                  flush=True)  # fmt: skip
    finally:
        ctx.api.stop()
        ctx.api = None
    return figures


def result_figures(result: load.Result) -> dict:
    return {
        "name": result.name,
        "p99Ms": result.p99_ms,
        "rps": round(result.rps, 1),
        "errors": result.errors,
        "statuses": result.statuses,
        "workerCpuMs": result.cpu_ms_per_request,
        "dbCpuMs": result.db_cpu_ms_per_request,
        "cpuMs": (result.cpu_ms_per_request or 0) + (result.db_cpu_ms_per_request or 0),
    }


def jobs(ctx: Context) -> dict:
    """`orders expire` and the doctor checks (scale_jobs.py), then `shopctl doctor` whole."""
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, str(here / "scale_jobs.py"), "--rounds", str(ctx.args.scale_rounds),
         "--users", ",".join(u for u, _ in ctx.users), "--products", ",".join(ctx.sale)],
        env=ctx.env, cwd=ctx.workdir, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"scale_jobs.py failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    figures = json.loads(done.stdout)
    started = time.perf_counter()
    doctor = subprocess.run(
        [sys.executable, "-m", "shopctl", "doctor", "--json"],
        env=ctx.env, cwd=ctx.workdir, capture_output=True, text=True,
    )  # fmt: skip
    figures["doctorCommand"] = {
        "seconds": time.perf_counter() - started,
        "ok": doctor.returncode == 0,
        "report": json.loads(doctor.stdout or "{}"),
    }
    figures["startupSeconds"] = batch.startup_seconds(ctx.env)
    return figures


def measure(args, size: int, workdir: Path) -> dict:
    ctx, shape = prepare(args, size, workdir)
    try:
        load_average = [round(x, 2) for x in __import__("os").getloadavg()]
        requests_figures = serve_and_measure(ctx, size)
        return {
            "shape": shape,
            "loadAverage": load_average,
            "requests": requests_figures,
            "jobs": jobs(ctx),
            "loadAverageEnd": [round(x, 2) for x in __import__("os").getloadavg()],
        }
    finally:
        if not args.keep:
            dataset.drop_database(args.pg, shape["database"])


def run(args, workdir: Path) -> int:
    sizes = parse_sizes(args.scale_sizes)
    results = {}
    for size in sizes:
        started = time.perf_counter()
        results[size] = measure(args, size, workdir)
        print(f"  {size:,} products measured in {time.perf_counter() - started:.0f}s", flush=True)
    import scale_report

    rows = scale_report.table(results, TARGET_RATIO, DOCTOR_SECONDS)
    render = report.markdown if args.markdown else report.plain
    print("\n" + render(rows))
    print("\n" + scale_report.shapes(results))
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2,
                                        default=str))  # fmt: skip
    return 0
