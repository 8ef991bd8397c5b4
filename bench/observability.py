"""What metrics cost: `GET /product/:id` on the run's API (metrics off: no METRICS_TOKEN)
and on a second `shopctl serve` over the same database with METRICS_TOKEN set, scraped
every second as a Prometheus with `scrape_interval: 1s` would (15 s is the usual).

The two servers take turns, round by round, so a neighbour's burst on this shared
machine lands on both alike; the figure is the ratio of the summed throughputs, beside
the ratio of the workers' CPU time per request (which neighbours disturb far less).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import urllib.request
from dataclasses import replace

import load
import payloads
import processes
from scenarios import Context, timed

ROUNDS = 3


@contextlib.contextmanager
def scraping(url: str, token: str, every: float = 1.0):
    """GET /metrics every `every` seconds in a thread, while the block runs."""
    stop, scrapes = threading.Event(), []

    def scrape() -> None:
        while not stop.wait(every):
            request = urllib.request.Request(
                f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}
            )
            with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=10) as r:
                scrapes.append(len(r.read()))

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        yield scrapes
    finally:
        stop.set()
        thread.join()


def metrics_cost(ctx: Context) -> None:
    token = secrets.token_hex(16)
    env = ctx.env | {"METRICS_TOKEN": token}
    port = processes.free_port()
    on = processes.shopctl_serve(env, ctx.workdir, port, ctx.args.workers)
    try:
        ids = list(ctx.catalog)
        ctx.rng.shuffle(ids)
        requests = ctx.file("metrics_ids", payloads.product_gets(ids))
        load.run("warm-up", on.url, requests, replace(ctx.wrk, duration=3))
        offs, ons, scraped = [], [], 0
        for n in range(1, ROUNDS + 1):
            off = timed(ctx, "GET /product/:id, metrics off", ctx.api, requests, ctx.wrk)
            with scraping(on.url, token) as scrapes:
                with_metrics = timed(ctx, "GET /product/:id, metrics on", on, requests, ctx.wrk)
            scraped += len(scrapes)
            for key, result in ((f"metrics_off_{n}", off), (f"metrics_on_{n}", with_metrics)):
                ctx.run.add(key, result)
                ctx.ceiling_kind[key] = "id"
            offs.append(off)
            ons.append(with_metrics)
            print(
                f"  metrics round {n}: off {off.rps:,.0f} req/s, on {with_metrics.rps:,.0f} "
                f"req/s ({len(scrapes)} scrapes)",
                flush=True,
            )
        ctx.run.checks["metrics"] = summary(offs, ons, scraped)
    finally:
        on.stop()


def summary(offs: list[load.Result], ons: list[load.Result], scraped: int) -> dict:
    def rps(results):
        return sum(r.requests for r in results) / sum(r.seconds for r in results)

    def cpu(results):
        used = [r.cpu_seconds for r in results]
        return None if None in used else 1000 * sum(used) / sum(r.requests for r in results)

    off_cpu, on_cpu = cpu(offs), cpu(ons)
    return {
        "offRps": round(rps(offs)),
        "onRps": round(rps(ons)),
        "throughputRatio": round(rps(ons) / rps(offs), 4),
        "offCpuMsPerRequest": off_cpu and round(off_cpu, 4),
        "onCpuMsPerRequest": on_cpu and round(on_cpu, 4),
        "cpuRatio": round(on_cpu / off_cpu, 4) if off_cpu and on_cpu else None,
        "scrapes": scraped,
        "rounds": len(offs),
    }
