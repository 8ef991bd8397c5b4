"""Database outage: a private PostgreSQL (started here, as the `postgres` user, on a free
port; the shared server is never touched) is stopped under load and started again.

While it is down every request gets a 503 envelope quickly (no hang, no traceback) and
`/api/v1/health` says the database is unreachable; once it is back the same `shopctl serve`
process (both workers) answers 200/201 again by itself, without a restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import TEST_ENV, run_server
from tests.resilience_support import private_postgres

BOUND_SECONDS = 10  # no request may take longer than this, outage or not
PROBES = 4


@dataclass
class Answer:
    kind: str
    status: int  # 0: no HTTP answer at all
    started: float
    ended: float
    body: dict | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Traffic:
    """Readers of the catalog and of /health, and a buyer placing orders, all at once."""

    def __init__(self, url: str, token: str, product_id: str):
        self.url, self.token, self.product_id = url, token, product_id
        self.answers: list[Answer] = []
        self.stop = threading.Event()

    def _request(self, http: httpx.Client, kind: str) -> httpx.Response:
        if kind == "order":
            return http.post(
                "/api/v1/order/pay-later",
                headers={"Authorization": f"Bearer {self.token}"},
                json={"items": [{"productId": self.product_id, "quantity": 1}]},
            )
        return http.get("/api/v1/health" if kind == "health" else "/api/v1/product")

    def probe(self, kind: str) -> None:
        with httpx.Client(base_url=self.url, timeout=BOUND_SECONDS * 3) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    response = self._request(http, kind)
                    status, body = response.status_code, response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    status, body = 0, {"exception": repr(exc)}
                self.answers.append(Answer(kind, status, started, time.monotonic(), body))
                time.sleep(0.01)

    def start(self) -> list[threading.Thread]:
        kinds = ["product"] * (PROBES - 2) + ["health", "order"]
        threads = [threading.Thread(target=self.probe, args=(kind,)) for kind in kinds]
        for thread in threads:
            thread.start()
        return threads

    def between(self, start: float, end: float) -> list[Answer]:
        """The requests sent and answered entirely within [start, end]."""
        return [a for a in self.answers if start <= a.started and a.ended <= end]


def _shopctl(url: str, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "shopctl", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _prepare(url: str, http: httpx.Client, tmp_path) -> tuple[str, str]:
    """A buyer's access token and a well-stocked product, made through the CLI and the API."""
    _shopctl(url, "users", "create", "buyer@example.com", "--password-stdin", stdin="Str0ng!Pass\n")
    catalog = tmp_path / "catalog.json"
    catalog.write_text('[{"name": "Mug", "price": "9.99", "quantity": 1000000}]')
    _shopctl(url, "products", "seed", "--file", str(catalog))
    login = http.post(
        "/api/v1/auth/login", json={"email": "buyer@example.com", "password": "Str0ng!Pass"}
    )
    assert login.status_code == 200, login.text
    product = http.get("/api/v1/product").json()["data"][0]
    return login.json()["data"]["accessToken"], product["id"]


def _wait_for_health(http: httpx.Client, timeout: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if http.get("/api/v1/health").status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"health did not come back within {timeout}s of the restart")


def _assert_all(answers: list[Answer], expected: dict[str, int], phase: str) -> None:
    assert answers, f"no requests were answered while {phase}"
    wrong = [a for a in answers if a.status != expected[a.kind]]
    assert wrong == [], f"while {phase}: {wrong[:5]}"


@pytest.mark.slow
def test_the_server_answers_503_during_an_outage_and_recovers_by_itself(tmp_path):
    with private_postgres() as postgres:
        postgres.execute("CREATE DATABASE shop")
        url = postgres.url("shop")
        _shopctl(url, "migrate")
        with run_server(url, tmp_path, workers=2) as live:
            token, product_id = _prepare(url, live.http, tmp_path)
            traffic = Traffic(live.url, token, product_id)
            threads = traffic.start()
            time.sleep(1)
            stopping = time.monotonic()
            postgres.stop()  # fast shutdown: every open connection is cut
            down = time.monotonic()
            time.sleep(4)
            starting = time.monotonic()
            postgres.start()
            recovered_after = _wait_for_health(live.http)
            back = time.monotonic()
            time.sleep(3)
            traffic.stop.set()
            for thread in threads:
                thread.join(BOUND_SECONDS * 4)
            assert live.process.poll() is None, "the server died"
            output = live.output()

    unavailable = {"product": 503, "health": 503, "order": 503}
    fine = {"product": 200, "health": 200, "order": 201}
    _assert_all(traffic.between(0, stopping), fine, "the database was up")
    _assert_all(traffic.between(down, starting), unavailable, "the database was down")
    _assert_all(traffic.between(back, time.monotonic()), fine, "the database was back")
    for answer in traffic.between(down, starting):
        assert answer.body["success"] is False and answer.body["statusCode"] == 503
    health = [a.body for a in traffic.between(down, starting) if a.kind == "health"]
    assert health and all(body["error"]["database"] == "unreachable" for body in health)
    slowest = max(answer.seconds for answer in traffic.answers)
    assert slowest < BOUND_SECONDS, f"a request took {slowest:.1f}s"
    assert recovered_after < 30
    assert "Traceback" not in output
