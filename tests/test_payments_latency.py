"""A slow Stripe must not slow anything else down: checkouts await it without a thread."""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import pytest

from tests.payments_support import buyer, product

SLOW_STRIPE_MS = 3000
CHECKOUTS_IN_FLIGHT = 20


def _p99_of_product_reads(url: str, seconds: float) -> float:
    timings = []
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert client.get("/api/v1/product?limit=20").status_code == 200
            timings.append(time.perf_counter() - started)
    return statistics.quantiles(timings, n=100)[98]


@pytest.mark.slow
def test_product_reads_keep_their_p99_while_20_checkouts_wait_on_stripe(stripe_stack, settings):
    # Each checkout is a buyer of its own buying a product of its own: no row-lock convoy
    # (one buyer's orders are placed one at a time, to keep MAX_OPEN_ORDERS exact).
    shoppers = [
        buyer(stripe_stack, settings, f"b{n}@example.com") for n in range(CHECKOUTS_IN_FLIGHT)
    ]
    goods = [product(f"Item {index}") for index in range(CHECKOUTS_IN_FLIGHT)]
    url = stripe_stack.server.url
    _p99_of_product_reads(url, 0.5)  # warm up connections and caches
    idle = _p99_of_product_reads(url, 1.5)
    # Only the slow API calls are under test: the webhooks their sessions cause are not.
    stripe_stack.configure(latency_ms=SLOW_STRIPE_MS, webhooks_enabled=False)
    results = []
    checkouts = [
        threading.Thread(target=lambda s=shopper, i=item: results.append(s.order_now(i)))
        for shopper, item in zip(shoppers, goods, strict=True)
    ]
    for thread in checkouts:
        thread.start()
    # Measure while all of them wait on Stripe: after the orders are placed, before the
    # sessions come back.
    time.sleep(0.8)
    busy = _p99_of_product_reads(url, 1.5)
    for thread in checkouts:
        thread.join()
    assert len(results) == CHECKOUTS_IN_FLIGHT
    assert all(result["paymentUrl"] for result in results)
    report = f"p99 idle {idle * 1000:.1f} ms, with slow checkouts {busy * 1000:.1f} ms"
    assert busy <= 2 * idle, report
