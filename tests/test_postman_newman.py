"""`shopctl api postman`: the collection's shape, and newman running it green against a
fresh `shopctl serve --sandbox`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
# .ci/run installs newman here (npm install --no-save --prefix .ci/node newman).
NEWMAN_PLACES = (REPO / ".ci/node/node_modules/.bin/newman", REPO / "node_modules/.bin/newman")
ADMIN_EMAIL, ADMIN_PASSWORD = "ops@example.com", "Adm1n!Secret"


def newman() -> str:
    found = next((str(path) for path in NEWMAN_PLACES if path.exists()), shutil.which("newman"))
    if found:
        return found
    reason = "newman not found (npm install --no-save --prefix .ci/node newman)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def shopctl(*args: str):
    """The CLI in-process; `api` commands need no database."""
    from typer.testing import CliRunner

    from shopctl.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def export(tmp_path: Path, *args: str) -> dict:
    target = tmp_path / "shopctl.postman_collection.json"
    result = shopctl("api", "postman", *args, "--output", str(target))
    assert result.exit_code == 0, result.output
    return json.loads(target.read_text())


def test_the_collection_is_shaped_like_the_express_apis(tmp_path):
    collection = export(tmp_path, "--base-url", "http://shop.test:8080/")
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    folders = [folder["name"] for folder in collection["item"]]
    assert {"Auth", "User", "Product", "Order", "Payment"} <= set(folders)
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"] == "http://shop.test:8080"
    assert collection["auth"]["bearer"][0]["value"] == "{{accessToken}}"
    requests = [item for folder in collection["item"] for item in folder["item"]]
    assert all(r["request"]["url"]["raw"].startswith("{{baseUrl}}/") for r in requests)
    login = next(r for r in requests if r["name"] == "Log in")
    assert login["request"]["auth"] == {"type": "noauth"}
    assert json.loads(login["request"]["body"]["raw"]).keys() == {"email", "password"}
    script = "\n".join(login["event"][-1]["script"]["exec"])
    assert 'pm.collectionVariables.set("accessToken", body.data.accessToken)' in script
    for request in requests:
        checks = "\n".join(request["event"][-1]["script"]["exec"])
        assert "pm.response.to.have.status(" in checks, request["name"]


def test_the_base_url_must_be_a_url():
    result = shopctl("api", "postman", "--base-url", "localhost:8000")
    assert result.exit_code == 2
    assert "--base-url" in result.output


def _wait_for_sandbox(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the sandbox started by `shopctl serve --sandbox` never answered")


def test_newman_runs_the_exported_collection_green(start_server, cli, tmp_path):
    runner = newman()
    created = cli(
        "users", "create", ADMIN_EMAIL, "--admin", "--password-stdin", input=ADMIN_PASSWORD + "\n"
    )
    assert created.exit_code == 0, created.output
    sandbox_port = free_port()
    with start_server(args=("--sandbox", "--sandbox-port", str(sandbox_port))) as server:
        _wait_for_sandbox(sandbox_port)
        collection = export(tmp_path, "--base-url", server.url)
        report = tmp_path / "newman.json"
        command = [
            runner,
            "run",
            str(tmp_path / "shopctl.postman_collection.json"),
            "--env-var",
            f"adminEmail={ADMIN_EMAIL}",
            "--env-var",
            f"adminPassword={ADMIN_PASSWORD}",
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--timeout-request",
            "20000",
            "--color",
            "off",
        ]
        run = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    stats = json.loads(report.read_text())["run"]["stats"]
    requests = sum(len(folder["item"]) for folder in collection["item"])
    assert stats["requests"] == {"total": requests, "pending": 0, "failed": 0}
    assert stats["assertions"]["failed"] == 0
    assert stats["assertions"]["total"] >= 3 * requests
