"""The load scenarios: each writes its request file, runs wrk and records a row.

They share one `Context` (harness.py builds it): the running services, the database,
the buyers and their tokens, and the `report.Run` the rows go into.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import dataset
import load
import payloads
import processes
from report import Run

MIXED_WEIGHTS = {
    "product_id": 4,
    "product_list": 2,
    "product_search": 1,
    "pay_later": 2,
    "webhook": 1,
}
ONE_PRODUCT_STOCK = 200_000  # units the one-product scenario may sell
ROUND_SECONDS = 120  # webhook signatures stay inside Stripe's 5-minute tolerance
SAMPLE_EVERY = 2.0


@dataclass
class Context:
    args: object
    workdir: Path
    server: str
    db_url: str
    env: dict[str, str]
    webhook_secret: str
    password: str
    users: list[tuple[str, str]]
    tokens: list[str]
    catalog: list[str]
    sale: list[str]
    wrk: load.WrkSettings
    run: Run = field(default_factory=Run)
    api: processes.Service | None = None
    sandbox: processes.Service | None = None
    sandbox_port: int = 0
    ceiling: processes.Service | None = None
    ceiling_kind: dict[str, str] = field(default_factory=dict)
    ceilings: dict[str, list[load.Result]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(9))

    def file(self, name: str, lines: list[str]) -> Path:
        return payloads.write(self.workdir / f"{name}.tsv", lines)

    def measure(
        self,
        key: str,
        name: str,
        lines: list[str],
        *,
        kind: str | None = "id",
        quiet_first: bool = True,
        settings: load.WrkSettings | None = None,
    ) -> load.Result:
        """Run one scenario against the API and record it; `kind` names its ceiling."""
        requests = self.file(key, lines)
        result = timed(self, name, self.api, requests, settings or self.wrk, quiet_first)
        self.run.add(key, result)
        if kind:
            self.ceiling_kind[key] = kind
        print(
            f"  {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
            f"{result.errors} errors",
            flush=True,
        )
        return result


def backend_pids(ctx: Context) -> set[int]:
    """PostgreSQL server processes serving the run's database."""
    with dataset.connect(ctx.db_url) as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def timed(
    ctx: Context,
    name: str,
    service: processes.Service,
    requests: Path,
    settings: load.WrkSettings,
    quiet_first: bool = True,
) -> load.Result:
    """A wrk run, with the CPU time the service's workers (and, for the API, PostgreSQL)
    spent on it: figures that busy neighbours on the machine disturb far less than req/s."""
    workers = service.workers()
    if quiet_first:
        processes.settle(workers)
    database = service is ctx.api
    backends = processes.cpu_by_pid(backend_pids(ctx)) if database else {}
    cpu = processes.cpu_seconds(workers)
    result = load.run(name, service.url, requests, settings)
    result.cpu_seconds = processes.cpu_seconds(workers) - cpu
    if database:
        after = processes.cpu_by_pid(set(backends) | backend_pids(ctx))
        result.db_cpu_seconds = sum(used - backends.get(pid, 0.0) for pid, used in after.items())
    return result


def shopctl_json(ctx: Context, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "shopctl", *args, "--json"],
        env=ctx.env,
        cwd=ctx.workdir,
        capture_output=True,
        text=True,
    )
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"ok": False, "output": (done.stdout + done.stderr)[-2000:]}


# --- the ceiling -----------------------------------------------------------------------


def capture_bodies(ctx: Context) -> Path:
    """Real response bodies for the ceiling app to serve as static bytes."""
    import urllib.request

    bodies = ctx.workdir / "ceiling-bodies"
    bodies.mkdir(exist_ok=True)
    for name, path in (
        ("product.json", f"/api/v1/product/{ctx.catalog[0]}"),
        ("list.json", "/api/v1/product?limit=20&page=1"),
    ):
        with urllib.request.urlopen(ctx.api.url + path, timeout=10) as answer:
            (bodies / name).write_bytes(answer.read())
    return bodies


def measure_ceiling(ctx: Context, round_: int) -> None:
    for kind, name, lines in (
        ("id", "ceiling: GET /product/:id bytes", payloads.product_gets(ctx.catalog)),
        ("list", "ceiling: GET /product?limit=20 bytes", payloads.list_gets(pages=1)),
    ):
        result = timed(ctx, name, ctx.ceiling, ctx.file(f"ceiling_{kind}", lines), ctx.wrk)
        ctx.run.add(f"ceiling_{kind}_{round_}", result)
        ctx.ceilings.setdefault(kind, []).append(result)
        print(f"  {name} (round {round_}): {result.rps:,.0f} req/s", flush=True)


def warm_up(ctx: Context) -> None:
    """Fill pools and caches on both servers before anything is recorded."""
    quick = replace(ctx.wrk, duration=3)
    lines = payloads.product_gets(ctx.catalog) + payloads.list_gets()
    load.run("warm-up", ctx.api.url, ctx.file("warmup", lines), quick)
    load.run(
        "warm-up",
        ctx.ceiling.url,
        ctx.file("warmup_ceiling", payloads.product_gets(ctx.catalog)),
        quick,
    )


# --- the API ---------------------------------------------------------------------------


def reads(ctx: Context) -> None:
    ids = list(ctx.catalog)
    ctx.rng.shuffle(ids)
    ctx.measure("product_id", "GET /product/:id", payloads.product_gets(ids))
    ctx.measure("product_list", "GET /product?limit=20", payloads.list_gets(), kind="list")
    ctx.measure("product_search", "GET /product?search=…", payloads.search_gets(), kind="list")


LOGIN_SECONDS = 20.0


def login(ctx: Context) -> None:
    """Logins last a few hundred ms of CPU each and 32 are in flight: given at least 20 s,
    wrk sees many complete instead of a handful."""
    emails = [email for _, email in ctx.users]
    rounds = ctx.env["BCRYPT_SALT_ROUNDS"]
    settings = replace(ctx.wrk, duration=max(ctx.wrk.duration, LOGIN_SECONDS))
    lines = payloads.logins(emails, ctx.password)
    ctx.measure("login", f"POST /auth/login (bcrypt cost {rounds})", lines, settings=settings)


def order_lines(ctx: Context, endpoint: str, count: int) -> list[str]:
    return payloads.orders(endpoint, ctx.tokens, ctx.sale, count, ctx.rng)


def pay_later(ctx: Context) -> None:
    ctx.measure("pay_later", "POST /order/pay-later", order_lines(ctx, "/order/pay-later", 20000))
    processes.settle(ctx.api.workers())  # requests still in flight when wrk stopped
    ctx.run.checks["pay_later_stock"] = dataset.stock_summary(ctx.db_url)
    doctor = shopctl_json(ctx, "doctor")
    ctx.run.checks["pay_later_doctor"] = bool(doctor.get("ok"))
    ctx.run.checks["pay_later_doctor_report"] = doctor


def pay_later_one_product(ctx: Context) -> None:
    """Every order buys one unit of the same product: orders queue on its row lock."""
    hot = ctx.sale[0]
    dataset.restock(ctx.db_url, [hot], ONE_PRODUCT_STOCK)
    lines = payloads.orders("/order/pay-later", ctx.tokens, [hot], 20000, ctx.rng, most=1)
    ctx.measure("pay_later_one", "POST /order/pay-later, every order one product", lines)
    processes.settle(ctx.api.workers())
    ctx.run.checks["pay_later_one_stock"] = dataset.stock_summary(ctx.db_url)


def webhooks(ctx: Context, payments: list[tuple[str, str, int]]) -> None:
    lines = payloads.webhooks(ctx.webhook_secret, payments)
    ctx.measure("webhook", "POST /payment/webhook (signed, mixed types)", lines)
    processes.settle(ctx.api.workers())
    with dataset.connect(ctx.db_url) as cursor:
        cursor.execute("SELECT type, status, count(*) FROM stripe_event GROUP BY type, status")
        ctx.run.checks["webhook_events"] = [list(row) for row in cursor.fetchall()]


def restart_sandbox(ctx: Context, latency_ms: int) -> None:
    if ctx.sandbox is not None:
        ctx.sandbox.stop()
    ctx.sandbox = processes.sandbox(
        ctx.env,
        ctx.workdir,
        ctx.sandbox_port,
        f"{ctx.api.url}/api/v1/payment/webhook",
        ctx.webhook_secret,
        latency_ms,
    )


def pay_now(ctx: Context) -> None:
    """Checkouts at the sandbox (0 and 500 ms) with GET /product measured beside them."""
    listing = payloads.list_gets()
    ctx.measure("list_idle", "GET /product?limit=20, idle (reference)", listing, kind="list")
    checkout = replace(ctx.wrk, threads=1, connections=20, duration=ctx.wrk.duration + 2)
    for latency in (0, 500):
        restart_sandbox(ctx, latency)
        requests = ctx.file(f"pay_now_{latency}", order_lines(ctx, "/order", 20000))
        processes.settle(ctx.api.workers())
        background = load.start(ctx.api.url, requests, checkout)
        time.sleep(1)  # let the 20 checkouts get in flight first
        ctx.measure(
            f"list_beside_{latency}",
            f"GET /product?limit=20, beside 20 checkouts at {latency} ms",
            listing,
            kind="list",
            quiet_first=False,  # the checkouts are the point
        )
        name = f"POST /order pay-now, sandbox {latency} ms"
        result = load.finish(name, background, checkout)
        ctx.run.add(f"pay_now_{latency}", result)
        ctx.ceiling_kind[f"pay_now_{latency}"] = "id"
        print(
            f"  {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
            f"{result.errors} errors",
            flush=True,
        )


def hold(ctx: Context, payments: list[tuple[str, str, int]]) -> None:
    """Serve with every request file written and the wrk command for each printed."""
    files = {
        "product_id": payloads.product_gets(ctx.catalog),
        "product_list": payloads.list_gets(),
        "product_search": payloads.search_gets(),
        "login": payloads.logins([email for _, email in ctx.users], ctx.password),
        "pay_later": order_lines(ctx, "/order/pay-later", 20000),
        "pay_now": order_lines(ctx, "/order", 20000),
        "webhook": payloads.webhooks(ctx.webhook_secret, payments) if payments else [],
    }
    print(f"  database {ctx.db_url}; API workers {[w.pid for w in ctx.api.workers()]}")
    for key, lines in files.items():
        if lines:
            command = load.command(ctx.api.url, ctx.file(key, lines), ctx.wrk)
            print(f"  {key}: {' '.join(command)}")
    print("  (webhook signatures expire 5 minutes from now)  Ctrl-C to stop.", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


# --- memory under a mixed load ---------------------------------------------------------


class RssSampler(threading.Thread):
    def __init__(self, workers):
        super().__init__(daemon=True)
        self.workers, self.peak, self.stopping = workers, {}, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_EVERY):
            for pid, size in processes.rss_mib(self.workers).items():
                self.peak[pid] = max(self.peak.get(pid, 0.0), size)


def mixed_lines(ctx: Context, payments: list[tuple[str, str, int]]) -> list[str]:
    ids = list(ctx.catalog)
    ctx.rng.shuffle(ids)
    parts = {
        "product_id": payloads.product_gets(ids),
        "product_list": payloads.list_gets(),
        "product_search": payloads.search_gets(),
        "pay_later": order_lines(ctx, "/order/pay-later", 5000),
        "webhook": payloads.webhooks(ctx.webhook_secret, payments),
    }
    total = len(payments) * sum(MIXED_WEIGHTS.values()) // MIXED_WEIGHTS["webhook"]
    return payloads.mixed([(parts[key], weight) for key, weight in MIXED_WEIGHTS.items()], total)


def memory(
    ctx: Context, cold: dict[int, float], rounds: list[list[tuple[str, str, int]]], seconds: float
) -> None:
    """Each worker's RSS before and after `seconds` of mixed load, in rounds of ≤ 2 minutes."""
    workers = ctx.api.workers()
    processes.settle(workers)
    before = processes.rss_mib(workers)
    sampler = RssSampler(workers)
    sampler.start()
    left, results = seconds, []
    for number, payments in enumerate(rounds, 1):
        settings = replace(ctx.wrk, duration=min(ROUND_SECONDS, left))
        lines = mixed_lines(ctx, payments)
        results.append(
            load.run(
                f"mixed round {number}", ctx.api.url, ctx.file(f"mixed_{number}", lines), settings
            )
        )
        left -= settings.duration
        print(
            f"  mixed round {number}: {results[-1].rps:,.0f} req/s, "
            f"{results[-1].errors} errors, RSS {processes.rss_mib(workers)}",
            flush=True,
        )
    sampler.stopping.set()
    sampler.join()
    after = processes.rss_mib(workers)
    ctx.run.memory = {
        "seconds": seconds,
        "rounds": [r.as_json() for r in results],
        "workers": {
            pid: {
                "cold": cold.get(pid, float("nan")),
                "before": before[pid],
                "after": after[pid],
                "peak": max(sampler.peak.get(pid, 0), after[pid]),
            }
            for pid in before
        },
    }


def round_sizes(seconds: float, per_second: int) -> list[int]:
    """Webhook bodies needed per mixed-load round (one distinct payment each)."""
    sizes, left = [], seconds
    while left > 0:
        span = min(ROUND_SECONDS, left)
        sizes.append(max(1000, int(span * per_second)))
        left -= span
    return sizes
