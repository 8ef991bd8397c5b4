"""Helpers for the sandbox tests: processes, waiting, request parameters, fixtures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_sandbox_tests"
API_KEY = "sk_test_sandbox"
# Short webhook retry backoffs keep the suite fast; the default is (0.2, 1, 3) seconds.
RUNNER = """
import sys
from shopctl.sandbox.runner import run_sandbox
from shopctl.sandbox.settings import SandboxSettings
run_sandbox(SandboxSettings(port=int(sys.argv[1]), webhook_secret=sys.argv[2],
                            retry_backoffs=(0.1, 0.2, 0.3)))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_process(args: list[str], port: int) -> subprocess.Popen:
    """Start a sandbox process and wait until it answers on `port`."""
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"sandbox exited: {proc.stdout.read().decode()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).is_success
        except httpx.HTTPError:
            return False

    wait_until(ready, 15, "the sandbox to start")
    return proc


def stop_process(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode(errors="replace")


def session_params(**overrides: Any) -> dict[str, Any]:
    """What shopctl sends: one order as line items, its ids as metadata."""
    params = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 2,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 1250,
                    "product_data": {"name": "T-shirt"},
                },
            },
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 500,
                    "product_data": {"name": "Mug & <Co>"},
                },
            },
        ],
        "metadata": {"orderId": "ord-1", "paymentId": "pay-1"},
        "client_reference_id": "ord-1",
        "customer_email": "buyer@example.com",
        "success_url": "https://shop.example/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/cancel",
        "expires_at": int(time.time()) + 45 * 60,
        "payment_intent_data": {"metadata": {"orderId": "ord-1", "paymentId": "pay-1"}},
    }
    params.update(overrides)
    return params


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "fixtures" / f"{name}.json").read_text())
