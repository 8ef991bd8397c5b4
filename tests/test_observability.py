"""Structured logs, the /metrics door, `doctor --prometheus` and optional traces.

* JSON log lines (the default when output is not a terminal) parse, one per request with
  its request id, route template, status and duration, and one per business event with
  the ids it concerns; commands write the same lines on stderr.
* `/metrics` is not routed without METRICS_TOKEN, refuses a wrong token, and labels
  requests by route template, never by raw path.
* `doctor --prometheus FILE` writes every check as a gauge that promtool accepts.
* With OTEL_TRACES_EXPORTER=console, requests, transactions and Stripe calls become spans
  tagged with the request id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_ENV
from tests.monitoring_support import eventually, prometheus_binary
from tests.orders_support import bearer, make_product, make_user, place
from tests.payments_support import wait_for
from tests.test_webhooks import deliver


def json_lines(text: str) -> list[dict]:
    """Every line that is a JSON object (Sanic's start-up banner lines are text)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _lines_of(server, request_id: str) -> list[dict]:
    return [line for line in json_lines(server.output()) if line.get("requestId") == request_id]


def test_json_logs_carry_the_request_id_route_and_business_events(server, settings):
    buyer = bearer(settings, make_user())
    mug = make_product("Mug", quantity=2)
    line = {"items": [{"productId": mug.id, "quantity": 1}]}
    placing, canceling = f"place-{uuid.uuid4().hex}", f"cancel-{uuid.uuid4().hex}"
    placed = server.request(
        "POST", "/order/pay-later", json=line, headers={**buyer, "X-Request-ID": placing}
    )
    order_id = placed.json()["data"]["orderId"]
    headers = {**buyer, "X-Request-ID": canceling}
    assert server.request("POST", f"/order/{order_id}/cancel", headers=headers).status_code == 200

    def access_line(request_id):
        found = [x for x in _lines_of(server, request_id) if x["logger"] == "shopctl.access"]
        return found[0] if found else None

    wait_for(lambda: access_line(canceling), what="the cancel's request line")
    request = access_line(placing)
    assert request["method"] == "POST" and request["status"] == 201
    assert request["route"] == "/api/v1/order/pay-later"
    assert request["userId"] and request["level"] == "info"
    assert isinstance(request["durationMs"], float) and request["time"].endswith("Z")
    events = [x for x in _lines_of(server, canceling) if x["logger"] == "shopctl.events"]
    assert events == [
        {
            "time": events[0]["time"],
            "level": "info",
            "logger": "shopctl.events",
            "message": "order transition",
            "requestId": canceling,
            "event": "order transition",
            "orderId": order_id,
            "fromStatus": "UNPAID",
            "toStatus": "CANCELED",
            "actor": "api",
        }
    ]


def test_a_webhook_outcome_is_logged_with_its_stripe_event_id(server):
    event_id = f"evt_log_{uuid.uuid4().hex[:10]}"
    event = {
        "id": event_id,
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1"}},
    }
    response = deliver(server, event)
    request_id = response.headers["x-request-id"]

    def outcome():
        lines = [x for x in json_lines(server.output()) if x.get("stripeEventId") == event_id]
        return lines[0] if lines else None

    logged = wait_for(outcome, what="the webhook outcome line")
    assert logged["event"] == "webhook outcome" and logged["outcome"] == "ignored"
    assert logged["type"] == "customer.created" and logged["requestId"] == request_id


def test_a_command_logs_its_business_events_as_json_on_stderr(db, backend_url, settings, tmp_path):
    user, mug = make_user(), make_product("Mug", quantity=2)
    order = place(settings, user, (mug, 1))
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": backend_url}
    env.pop("LOG_FORMAT", None)
    result = subprocess.run(
        [sys.executable, "-m", "shopctl", "orders", "cancel", order.id, "--yes"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Canceled order" in result.stdout and "{" not in result.stdout
    (logged,) = json_lines(result.stderr)
    assert logged["event"] == "order transition" and logged["actor"] == "cli"
    assert logged["orderId"] == order.id and logged["toStatus"] == "CANCELED"


def test_text_logs_on_request(start_server):
    with start_server(env={"LOG_FORMAT": "text"}) as live:
        response = live.request("GET", "/health", headers={"X-Request-ID": "text-log-check"})
        assert response.status_code == 200
        wait_for(lambda: "text-log-check" in live.output(), what="the request line")
    (text,) = [line for line in live.output().splitlines() if "text-log-check" in line]
    assert "shopctl.access request requestId=text-log-check" in text
    assert "route=/api/v1/health status=200" in text
    assert json_lines(live.output()) == []


# --- /metrics ---------------------------------------------------------------------------


@pytest.fixture
def metrics_client(db, settings):
    """The app in-process with METRICS_TOKEN set (metrics in this process's registry)."""
    from sanic import Sanic

    from shopctl.api.app import create_app
    from tests.conftest import AppClient

    Sanic.test_mode = True
    token = f"tok-{uuid.uuid4().hex}"
    app = create_app(replace(settings, metrics_token=token), name=f"m_{uuid.uuid4().hex[:8]}")
    client = AppClient(app)
    client.token = token
    yield client
    client.loop.close()


def test_metrics_is_not_routed_without_a_token(app_client):
    _, response = app_client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
    assert response.json["message"] == "API NOT FOUND!"


def test_metrics_needs_the_token(metrics_client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": metrics_client.token}):
        _, response = metrics_client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.json["success"] is False
    _, response = metrics_client.get(
        "/metrics", headers={"Authorization": f"Bearer {metrics_client.token}"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"shopctl_http_requests", "shopctl_unpaid_orders", "shopctl_reserved_units"} <= names


def test_routes_are_labelled_by_template_never_by_raw_path(metrics_client):
    unknown_product, nowhere = str(uuid.uuid4()), f"nowhere-{uuid.uuid4().hex}"
    assert metrics_client.get(f"/api/v1/product/{unknown_product}")[1].status_code == 404
    assert metrics_client.get(f"/api/v1/{nowhere}")[1].status_code == 404
    _, response = metrics_client.get(
        "/metrics", headers={"Authorization": f"Bearer {metrics_client.token}"}
    )
    assert unknown_product not in response.text and nowhere not in response.text
    samples = {
        (s.labels.get("route"), s.labels.get("status"))
        for family in text_string_to_metric_families(response.text)
        if family.name == "shopctl_http_requests"
        for s in family.samples
    }
    assert ("/api/v1/product/<product_id:str>", "404") in samples
    assert ("unmatched", "404") in samples


def test_the_openapi_document_describes_metrics_once_it_is_served(metrics_client):
    """Regression: with METRICS_TOKEN the undocumented /metrics route made the document
    fail (500) instead of listing it."""
    _, response = metrics_client.get("/api/v1/openapi.json")
    assert response.status_code == 200, response.text
    operation = response.json["paths"]["/metrics"]["get"]
    assert "401" in operation["responses"] and "200" in operation["responses"]


# --- doctor --prometheus ----------------------------------------------------------------


def test_doctor_writes_every_check_for_the_textfile_collector(cli, tmp_path):
    target = tmp_path / "shopctl.prom"
    result = cli("doctor", "--json", "--prometheus", str(target))
    checks = json.loads(result.output)["checks"]
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    written = {s.labels["check"]: s.value for s in families["shopctl_doctor_check_ok"].samples}
    assert written == {check["name"]: (1.0 if check["ok"] else 0.0) for check in checks}
    assert families["shopctl_doctor_ok"].samples[0].value == (1.0 if result.exit_code == 0 else 0.0)
    promtool = prometheus_binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=target.read_text(), capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_doctor_says_when_it_cannot_write_the_file(cli, tmp_path):
    result = cli("doctor", "--prometheus", str(tmp_path / "missing" / "shopctl.prom"))
    assert result.exit_code == 1
    assert "cannot write" in result.output


# --- traces -----------------------------------------------------------------------------


def test_traces_tag_requests_transactions_and_stripe_calls_with_the_request_id(
    start_server, settings
):
    buyer = bearer(settings, make_user())
    mug = make_product("Mug", quantity=2)
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    request_id = f"trace-{uuid.uuid4().hex}"
    with start_server(env=env) as live:
        response = live.request(
            "POST",
            "/order",
            json={"items": [{"productId": mug.id, "quantity": 1}]},
            headers={**buyer, "X-Request-ID": request_id},
        )
        assert response.status_code == 201, response.text
        names = ("POST /api/v1/order", "db transaction", "stripe checkout.sessions.create")

        def spans_seen():
            text = live.output()
            return all(f'"name": "{name}"' in text for name in names)

        assert eventually(spans_seen, True, timeout=15), live.output()[-3000:]
        tagged = live.output().count(f'"shopctl.request_id": "{request_id}"')
    assert tagged >= 3  # the request, its transactions, its Stripe call
