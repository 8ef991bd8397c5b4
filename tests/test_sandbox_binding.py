"""`serve --sandbox --host …` moves the API only: the sandbox beside it listens on 127.0.0.1,
and its webhook secret is not on its command line.

Regression: `shopctl serve --sandbox --host 0.0.0.0` put the sandbox (control endpoints,
hosted checkout pages, the webhook secret in `ps`) on the network with the API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import TEST_ENV, free_port
from tests.sandbox.test_local_only import non_loopback_address


def _wait(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered:\n{log.read_text(errors='replace')}")


def _sandbox_command_lines(parent: int) -> list[str]:
    lines = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                line = cmdline.read().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if ppid == parent and "sandbox" in line:
            lines.append(line)
    return lines


def test_serve_sandbox_host_moves_the_api_only(tmp_path):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    api_port, sandbox_port = free_port(), free_port()
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    env["STRIPE_WEBHOOK_SECRET"] = "whsec_binding_test_secret"
    command = [sys.executable, "-m", "shopctl", "serve", "--migrate", "--sandbox"]
    command += ["--host", "0.0.0.0", "--port", str(api_port), "--sandbox-port", str(sandbox_port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait(f"http://127.0.0.1:{sandbox_port}/_sandbox/health", process, log)
        _wait(f"http://{address}:{api_port}/api/v1/health", process, log)  # the API moved
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}:{sandbox_port}/_sandbox/health", timeout=3)
        [line] = _sandbox_command_lines(process.pid)
        assert "whsec_binding_test_secret" not in line and "--host 127.0.0.1" in line
    finally:
        process.terminate()
        process.wait(timeout=20)
