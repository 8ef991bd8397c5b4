"""Fixtures for the Stripe sandbox tests.

* `sandbox_proc` — one real sandbox subprocess per test session, on a free port.
* `sandbox` — that sandbox emptied and reconfigured for one test (`.control(...)`, `.url`).
* `listener` — a webhook receiver (stdlib HTTP server in a thread) that verifies every
  delivery with `stripe.Webhook.construct_event` and records the events in arrival order.
* `client` — the unchanged official `stripe.StripeClient` pointed at the sandbox.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from tests.sandbox.helpers import (
    API_KEY,
    RUNNER,
    SECRET,
    free_port,
    start_process,
    stop_process,
    wait_until,
)


@dataclass
class Listener:
    """Records verified events; `fail[path] = n` answers the next n deliveries with a 500."""

    url: str
    events: list[tuple[str, stripe.Event]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)
    raw: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # event id → body, header
    fail: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.events.clear()
            self.attempts.clear()
            self.bad_signatures.clear()
            self.raw.clear()
            self.fail.clear()

    def types(self, object_id: str | None = None, path: str = "/hook") -> list[str]:
        with self.lock:
            return [
                e.type
                for p, e in self.events
                if p == path and (object_id is None or _related(e, object_id))
            ]

    def wait_types(
        self, count: int, object_id: str | None = None, path: str = "/hook", timeout: float = 5.0
    ) -> list[str]:
        wait_until(
            lambda: len(self.types(object_id, path)) >= count,
            timeout,
            f"{count} webhooks for {object_id or 'any object'} at {path}",
        )
        return self.types(object_id, path)

    def find(self, etype: str, object_id: str) -> stripe.Event:
        with self.lock:
            return next(e for _, e in self.events if e.type == etype and _related(e, object_id))


def _related(event: stripe.Event, object_id: str) -> bool:
    obj = event.data.object.to_dict()
    return object_id in (obj.get("id"), obj.get("payment_intent"), obj.get("charge"))


def _handler_for(listener: Listener) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with listener.lock:
                listener.attempts.append(self.path)
                if listener.fail.get(self.path, 0) > 0:
                    listener.fail[self.path] -= 1
                    return self._answer(500, b'{"error": "planned failure"}')
            try:
                event = stripe.Webhook.construct_event(
                    body, self.headers.get("Stripe-Signature"), SECRET
                )
            except (stripe.SignatureVerificationError, ValueError) as exc:
                with listener.lock:
                    listener.bad_signatures.append(str(exc))
                return self._answer(400, b"bad signature")
            with listener.lock:
                listener.events.append((self.path, event))
                listener.raw[event.id] = (body, self.headers.get("Stripe-Signature"))
            self._answer(200, b'{"received": true}')

        def do_GET(self) -> None:
            self._answer(200, b"<!doctype html><title>Shop</title><h1>Thanks!</h1>", "text/html")

        def _answer(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            # A sender that gave up waiting (a delivery timeout under test) has closed the
            # connection: the attempt is recorded already, there is nobody to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def listener_server() -> Iterator[Listener]:
    listener = Listener("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(listener))
    listener.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield listener
    server.shutdown()
    server.server_close()


@dataclass
class Sandbox:
    url: str
    proc: subprocess.Popen
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def control(self, path: str, body: dict | None = None, method: str = "POST") -> Any:
        if body is None and method != "GET":
            body = {}  # the control endpoints read JSON bodies only
        response = self.http.request(method, f"{self.url}/_sandbox/{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def pay(self, session_id: str, outcome: str = "succeeded") -> dict:
        return self.control(f"sessions/{session_id}/pay", {"outcome": outcome})

    def deliveries(self, event_id: str) -> list[dict]:
        return self.control(f"deliveries?event_id={event_id}", method="GET")["data"]


@pytest.fixture(scope="session")
def sandbox_proc() -> Iterator[Sandbox]:
    port = free_port()
    proc = start_process([sys.executable, "-c", RUNNER, str(port), SECRET], port)
    sandbox = Sandbox(f"http://127.0.0.1:{port}", proc)
    yield sandbox
    sandbox.http.close()
    stop_process(proc)


@pytest.fixture
def listener(listener_server: Listener) -> Listener:
    listener_server.clear()
    return listener_server


@pytest.fixture
def sandbox(sandbox_proc: Sandbox, listener: Listener) -> Sandbox:
    assert sandbox_proc.proc.poll() is None, "the sandbox process died"
    sandbox_proc.control("reset")
    sandbox_proc.control(
        "config",
        {
            "webhook_urls": [f"{listener.url}/hook"],
            "webhook_secret": SECRET,
            "webhooks_enabled": True,
            "latency_ms": 0,
            "fail_rate": 0.0,
            "fail_next": 0,
            "refund_status": "succeeded",
        },
    )
    listener.clear()  # a retry of the previous test may have landed before the reset
    return sandbox_proc


@pytest.fixture
def client(sandbox: Sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": sandbox.url})
