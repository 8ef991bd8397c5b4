"""A real Prometheus server for the monitoring tests: started on a free port with its own
storage in a temporary directory, scraping every second; queried through its HTTP API."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "shopctl.json"


def prometheus_binary(name: str = "prometheus") -> str:
    """Debian's prometheus (installed by .ci/run); in CI its absence is a failure."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if found is None:
        reason = f"{name} is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


class Prometheus:
    def __init__(self, url: str):
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict]:
        response = self.http.get("/api/v1/query", params={"query": expr})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def vector(self, expr: str, *labels: str) -> dict:
        """{(label values…): value} of an instant vector."""
        return {
            tuple(row["metric"].get(label, "") for label in labels): float(row["value"][1])
            for row in self.query(expr)
        }

    def targets(self) -> list[dict]:
        return self.http.get("/api/v1/targets").json()["data"]["activeTargets"]

    def rules(self) -> list[dict]:
        groups = self.http.get("/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


def _config(jobs: list[dict]) -> str:
    lines = [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "rule_files:",
        f"  - {ALERTS}",
        "scrape_configs:",
    ]
    for job in jobs:
        lines += [f"  - job_name: {job['name']}", "    scrape_interval: 1s"]
        if job.get("token"):
            lines += ["    authorization:", f"      credentials: {job['token']}"]
        lines += ["    static_configs:", f"      - targets: ['{job['target']}']"]
    return "\n".join(lines) + "\n"


@contextmanager
def running_prometheus(tmp_path: Path, jobs: list[dict]) -> Iterator[Prometheus]:
    """`jobs`: [{"name", "target": "127.0.0.1:PORT", "token"?}]."""
    binary = prometheus_binary()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(_config(jobs))
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def eventually(probe, expected, timeout: float = 30.0):
    """Call `probe` until it returns `expected` (bounded); the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.25)
