"""The `sandbox` command: bad flags exit 2, a state file survives a restart, imports stay light."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import stripe
import typer
from typer.testing import CliRunner

from shopctl.commands.sandbox import sandbox
from tests.sandbox.helpers import (
    API_KEY,
    ROOT,
    free_port,
    session_params,
    start_process,
    stop_process,
)

COMMAND = [sys.executable, "-m", "shopctl.sandbox"]


def run_cli(*flags: str):
    app = typer.Typer()
    app.command()(sandbox)
    return CliRunner().invoke(app, list(flags))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fail-rate", "1.5"], "fail_rate"),
        (["--latency-ms", "-5"], "latency_ms"),
        (["--webhook-url", "not a url"], "webhook URL"),
        (["--port", "70000"], "port"),
        (["--webhook-secret", " "], "secret"),
    ],
)
def test_invalid_values_exit_2_with_a_clear_message(flags, message):
    result = run_cli(*flags)

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_command_module_imports_no_heavy_library():
    code = (
        "import sys, shopctl.commands.sandbox, shopctl.sandbox; "
        "print(sorted(m for m in ('sanic', 'httpx', 'stripe') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20
    )

    assert done.stdout.strip() == "[]", done.stderr


def test_help_has_an_example():
    result = run_cli("--help")

    assert result.exit_code == 0
    assert "--webhook-url" in result.output and "base_addresses" in result.output


def test_a_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "sandbox.json"
    port = free_port()
    args = [*COMMAND, "--port", str(port), "--state", str(state)]
    client = stripe.StripeClient(API_KEY, base_addresses={"api": f"http://127.0.0.1:{port}"})

    params = session_params()
    proc = start_process(args, port)
    try:
        session = client.v1.checkout.sessions.create(params, {"idempotency_key": "s-1"})
        client.v1.checkout.sessions.expire(session.id)
        overdue = client.v1.checkout.sessions.create(session_params())
    finally:
        output = stop_process(proc)
    assert proc.returncode == 0, output
    _move_expiry_to_the_past(state, overdue.id)

    proc = start_process(args, port)
    try:
        again = client.v1.checkout.sessions.retrieve(session.id)
        events = client.v1.events.list({"type": "checkout.session.expired"}).data
        replay = client.v1.checkout.sessions.create(params, {"idempotency_key": "s-1"})
        fresh = client.v1.checkout.sessions.create(session_params())
        overdue = client.v1.checkout.sessions.retrieve(overdue.id)
        expired = client.v1.events.list({"type": "checkout.session.expired"}).data
    finally:
        stop_process(proc)
    assert again.status == "expired"
    assert [e.data.object.id for e in events] == [session.id]
    assert overdue.status == "expired", "a session past its expires_at expires on its own"
    assert [e.data.object.id for e in expired] == [overdue.id, session.id]
    assert replay.id == session.id and replay.status == "open"  # the first answer, replayed
    assert fresh.id != session.id


def _move_expiry_to_the_past(state, session_id: str) -> None:
    data = json.loads(state.read_text())
    data["objects"][session_id]["expires_at"] = int(time.time()) - 1
    state.write_text(json.dumps(data))


def test_a_corrupt_state_file_is_a_usage_error(tmp_path):
    state = tmp_path / "broken.json"
    state.write_text("{not json")
    result = run_cli("--port", str(free_port()), "--state", str(state))

    assert result.exit_code == 2
    assert "state file" in result.output
