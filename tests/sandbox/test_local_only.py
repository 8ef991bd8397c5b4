"""The sandbox stays a local test tool: `/_sandbox/*` answers loopback clients only (403),
reads JSON bodies only (415), never returns a secret, and its state file is 0600.

Regressions: `GET /_sandbox/config` returned the webhook signing secret; a cross-site
`text/plain` form POST reconfigured the sandbox (the secret, the webhook URLs); the state
file was world-readable; anyone on the network could drive a sandbox bound to 0.0.0.0.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import sys

import httpx
import pytest

from tests.sandbox.helpers import (
    API_KEY,
    SECRET,
    free_port,
    session_params,
    start_process,
    stop_process,
    wait_until,
)

COMMAND = [sys.executable, "-m", "shopctl.sandbox"]
MULTIPART = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'
CROSS_SITE = {"Origin": "https://evil.example", "Referer": "https://evil.example/"}


def non_loopback_address() -> str | None:
    """This machine's own address on a real interface (the source of a packet to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: nothing is sent over UDP here
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/plain", b'{"webhook_secret": "whsec_evil", "webhook_urls": ["http://evil.example/"]}'),
        ("application/x-www-form-urlencoded", b"webhook_secret=whsec_evil"),
        ("multipart/form-data; boundary=x", MULTIPART),
        (None, b""),
    ],
)  # fmt: skip
def test_a_cross_site_form_post_is_415_and_changes_nothing(
    client, sandbox, listener, content_type, body
):
    session = client.v1.checkout.sessions.create(session_params())
    headers = {**CROSS_SITE, **({"Content-Type": content_type} if content_type else {})}
    for path in ("config", "reset", f"sessions/{session.id}/pay", f"sessions/{session.id}/expire"):
        response = httpx.post(f"{sandbox.url}/_sandbox/{path}", content=body, headers=headers)
        assert response.status_code == 415, (path, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "application/json" in error["message"]

    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    sandbox.pay(session.id)  # still signed with the secret, still delivered to the listener
    wait_until(lambda: "checkout.session.completed" in listener.types(), 5, "the completion")
    assert listener.bad_signatures == []


def test_config_never_returns_the_secret(sandbox):
    for response in (
        httpx.get(f"{sandbox.url}/_sandbox/config"),
        httpx.post(f"{sandbox.url}/_sandbox/config", json={"webhook_secret": "whsec_rotated_x"}),
        httpx.post(f"{sandbox.url}/_sandbox/config", json={"latency_ms": 0}),
    ):
        assert response.status_code == 200
        assert SECRET not in response.text and "whsec_rotated_x" not in response.text
        assert "webhook_secret" not in response.json()
        assert response.json()["webhook_secret_set"] is True


def test_a_rebound_host_name_is_403(sandbox):
    """DNS rebinding: a page at evil.example that resolves to 127.0.0.1 is same-origin for the
    browser, and sends JSON freely; its Host header still names it."""
    response = httpx.post(
        f"{sandbox.url}/_sandbox/reset", json={}, headers={"Host": "evil.example"}
    )
    assert response.status_code == 403
    for host in ("127.0.0.1", "localhost", f"localhost:{sandbox.url.rsplit(':', 1)[1]}"):
        assert httpx.get(f"{sandbox.url}/_sandbox/health", headers={"Host": host}).is_success


@pytest.fixture(scope="module")
def sandbox_on_all_interfaces():
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    port = free_port()
    proc = start_process([*COMMAND, "--host", "0.0.0.0", "--port", str(port)], port)
    yield address, port
    stop_process(proc)


def test_a_client_that_is_not_loopback_gets_403(sandbox_on_all_interfaces):
    address, port = sandbox_on_all_interfaces
    remote = f"http://{address}:{port}"
    for method, path, body in (
        ("GET", "/_sandbox/health", None),
        ("GET", "/_sandbox/config", None),
        ("POST", "/_sandbox/config", {"fail_rate": 1}),
        ("POST", "/_sandbox/reset", {}),
        ("POST", "/_sandbox/refunds/re_x/fail", {}),  # every route under the prefix
    ):
        response = httpx.request(method, f"{remote}{path}", json=body)
        assert response.status_code == 403, (path, response.text)
        assert "loopback" in response.json()["error"]["message"]
    local = httpx.get(f"http://127.0.0.1:{port}/_sandbox/config")
    assert local.status_code == 200 and local.json()["fail_rate"] == 0.0
    api = httpx.get(f"{remote}/v1/events", headers={"Authorization": f"Bearer {API_KEY}"})
    assert api.status_code == 200  # the Stripe API itself is what --host 0.0.0.0 is for


def test_the_state_file_is_created_0600(tmp_path):
    old_umask = os.umask(0o022)
    try:
        state, port = tmp_path / "state.json", free_port()
        proc = start_process([*COMMAND, "--port", str(port), "--state", str(state)], port)
        try:
            httpx.post(
                f"http://127.0.0.1:{port}/v1/payment_intents",
                data={"amount": "1000", "currency": "usd"},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ).raise_for_status()
            wait_until(state.exists, 10, "the state file")
            assert stat.S_IMODE(state.stat().st_mode) == 0o600
        finally:
            stop_process(proc)
        state.chmod(0o644)  # a file from an older version, or copied around
        proc = start_process([*COMMAND, "--port", str(port), "--state", str(state)], port)
        stop_process(proc)
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        assert not [p for p in tmp_path.iterdir() if p.name != "state.json"]
    finally:
        os.umask(old_umask)
