"""Monitoring, end to end: a real Prometheus scrapes a real `shopctl serve --workers 2`
(through /metrics with METRICS_TOKEN and through --metrics-port) and what it reads back
through its HTTP API equals what the test did, summed over both workers; the alert rules
load in that Prometheus and pass promtool; the dashboard asks only for series we export.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections import Counter

import httpx
import pytest

from tests.conftest import free_port
from tests.monitoring_support import (
    ALERT_TESTS,
    ALERTS,
    DASHBOARD,
    eventually,
    prometheus_binary,
    running_prometheus,
)
from tests.orders_support import bearer, make_product, make_user
from tests.test_webhooks import sign

PRODUCT = "/api/v1/product/<product_id:str>"
PAY_LATER = "/api/v1/order/pay-later"
PAY_NOW = "/api/v1/order"
CANCEL = "/api/v1/order/<order_id:str>/cancel"
LOGIN = "/api/v1/auth/login"
WEBHOOK = "/api/v1/payment/webhook"
NOT_COUNTED = 'route!~"/metrics|/api/v1/health"'  # Prometheus' own scrapes, readiness probes


class Traffic:
    """Requests on fresh connections (so both workers take some), tallied as the series
    `shopctl_http_requests_total{method,route,status}` should count them."""

    def __init__(self, url: str):
        limits = httpx.Limits(max_keepalive_connections=0)
        self.http = httpx.Client(base_url=url, limits=limits, timeout=30)
        self.made: Counter = Counter()
        self.workers: set[str] = set()

    def hit(self, method: str, path: str, route: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        self.made[(method, route, str(response.status_code))] += 1
        # a request id is a random prefix per worker, then a counter (api/app.py)
        self.workers.add(response.headers["x-request-id"][:16])
        return response


def _webhook(traffic: Traffic, event_id: str, created: int) -> None:
    event = {
        "id": event_id,
        "object": "event",
        "type": "customer.created",
        "created": created,
        "data": {"object": {"id": "cus_1"}},
    }
    body = json.dumps(event)
    headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
    response = traffic.hit("POST", WEBHOOK, WEBHOOK, content=body, headers=headers)
    assert response.status_code == 200, response.text


def _make_traffic(traffic: Traffic, settings) -> dict:
    buyer = bearer(settings, make_user())
    mug = make_product("Mug", quantity=4)
    for _ in range(12):
        assert traffic.hit("GET", f"/api/v1/product/{mug.id}", PRODUCT).status_code == 200
    traffic.hit("GET", f"/api/v1/product/{uuid.uuid4()}", PRODUCT)  # 404 on a known route
    for n in range(4):  # unknown paths share one label, whatever the path
        assert traffic.hit("GET", f"/api/v1/nowhere-{n}", "unmatched").status_code == 404
    line = {"items": [{"productId": mug.id, "quantity": 1}]}
    orders = [
        traffic.hit("POST", PAY_LATER, PAY_LATER, json=line, headers=buyer).json()["data"]
        for _ in range(3)
    ]
    for order in orders[:2]:
        response = traffic.hit(
            "POST", f"/api/v1/order/{order['orderId']}/cancel", CANCEL, headers=buyer
        )
        assert response.status_code == 200, response.text
    # pay now: the suite's Stripe is unreachable, so one failed Checkout Session call
    paid = traffic.hit("POST", PAY_NOW, PAY_NOW, json=line, headers=buyer)
    assert paid.status_code == 201 and paid.json()["data"]["paymentUrl"] is None, paid.text
    too_many = {"items": [{"productId": mug.id, "quantity": 4}]}
    assert (
        traffic.hit("POST", PAY_LATER, PAY_LATER, json=too_many, headers=buyer).status_code == 409
    )
    wrong = {"email": "nobody@example.com", "password": "Wr0ng!Pass"}
    statuses = [traffic.hit("POST", LOGIN, LOGIN, json=wrong).status_code for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2
    for n in range(3):
        _webhook(traffic, f"evt_metrics_{n}_{uuid.uuid4().hex[:8]}", int(time.time()) - 30)
    for _ in range(200):  # the kernel spreads connections; make sure both workers served
        if len(traffic.workers) >= 2:
            break
        traffic.hit("GET", f"/api/v1/product/{mug.id}", PRODUCT)
    assert len(traffic.workers) == 2, traffic.workers
    return {"unpaid": 2, "reserved": 2}


@pytest.mark.slow
def test_prometheus_reads_the_sum_over_both_workers(start_server, settings, tmp_path):
    token = f"metrics-{uuid.uuid4().hex}"
    metrics_port = free_port()
    env = {"METRICS_TOKEN": token}
    with start_server(workers=2, env=env, args=("--metrics-port", str(metrics_port))) as live:
        traffic = Traffic(live.url)
        expected = _make_traffic(traffic, settings)
        target = live.url.removeprefix("http://")
        jobs = [
            {"name": "shopctl", "target": target, "token": token},
            {"name": "shopctl_loopback", "target": f"127.0.0.1:{metrics_port}"},
        ]
        with running_prometheus(tmp_path, jobs) as prom:
            made = {key: float(n) for key, n in traffic.made.items()}
            series = f'shopctl_http_requests_total{{job="shopctl", {NOT_COUNTED}}}'
            requests = f"sum by (method, route, status) ({series})"
            seen = eventually(lambda: prom.vector(requests, "method", "route", "status"), made)
            assert seen == made
            loopback = f'sum(shopctl_http_requests_total{{job="shopctl_loopback", {NOT_COUNTED}}})'
            total = float(sum(traffic.made.values()))
            assert eventually(lambda: prom.vector(loopback), {(): total}) == {(): total}
            _assert_business_series(prom, expected)
            assert {t["labels"]["job"]: t["health"] for t in prom.targets()} == {
                "shopctl": "up",
                "shopctl_loopback": "up",
            }
            rules = prom.rules()
            assert {r["name"] for r in rules} >= {"ShopctlWebhooksFailed", "ShopctlHigh5xxRate"}
            assert {r["health"] for r in rules} == {"ok"}


def _assert_business_series(prom, expected: dict) -> None:
    def one(expr: str) -> float | None:
        values = prom.vector(f'sum({expr}{{job="shopctl"}})')
        return values.get(())

    transitions = (
        'sum by (from_status, to_status, actor) (shopctl_order_transitions_total{job="shopctl"})'
    )
    assert prom.vector(transitions, "from_status", "to_status", "actor") == {
        ("UNPAID", "CANCELED", "api"): 2.0
    }
    webhooks = 'sum by (type, outcome) (shopctl_webhook_events_total{job="shopctl"})'
    assert prom.vector(webhooks, "type", "outcome") == {("customer.created", "ignored"): 3.0}
    assert one("shopctl_webhook_lag_seconds_count") == 3.0
    lag = 'sum by (le) (shopctl_webhook_lag_seconds_bucket{job="shopctl"})'
    buckets = prom.vector(lag, "le")
    assert buckets[("15.0",)] == 0.0 and buckets[("120.0",)] == 3.0, buckets
    stripe = 'sum by (operation, outcome) (shopctl_stripe_requests_total{job="shopctl"})'
    assert prom.vector(stripe, "operation", "outcome") == {
        ("checkout.sessions.create", "APIConnectionError"): 1.0
    }
    assert one("shopctl_stripe_request_duration_seconds_count") == 1.0
    assert one("shopctl_stock_outs_total") == 1.0
    assert one("shopctl_login_throttled_total") == 2.0
    assert one("shopctl_unpaid_orders") == expected["unpaid"]
    assert one("shopctl_reserved_units") == expected["reserved"]
    assert one("shopctl_failed_events") == 0.0
    assert one("shopctl_stuck_orders") == 0.0
    assert one("shopctl_database_up") == 1.0


# --- the alert rules and the dashboard --------------------------------------------------


def test_promtool_accepts_the_alert_rules_and_their_unit_tests():
    promtool = prometheus_binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ALERT_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


EXPORTED = {
    "shopctl_http_requests_total",
    "shopctl_http_request_duration_seconds_bucket",
    "shopctl_order_transitions_total",
    "shopctl_webhook_events_total",
    "shopctl_webhook_lag_seconds_bucket",
    "shopctl_stripe_requests_total",
    "shopctl_stripe_request_duration_seconds_bucket",
    "shopctl_refunds_total",
    "shopctl_login_throttled_total",
    "shopctl_stock_outs_total",
    "shopctl_reserved_units",
    "shopctl_unpaid_orders",
    "shopctl_failed_events",
    "shopctl_stuck_orders",
    "shopctl_oldest_overdue_seconds",
    "shopctl_database_up",
    "shopctl_doctor_ok",
    "shopctl_doctor_check_ok",
}


def test_the_dashboard_and_the_rules_ask_only_for_exported_series():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"shopctl_\w+", expr)}
    assert used <= EXPORTED, used - EXPORTED
    assert len(used) >= 14  # every series of the issue has a panel
    rules = {name for name in re.findall(r"shopctl_\w+", ALERTS.read_text())}
    assert rules <= EXPORTED, rules - EXPORTED
