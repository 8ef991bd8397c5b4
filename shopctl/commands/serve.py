"""`shopctl serve`: the REST API, in one or several worker processes."""

from __future__ import annotations

import atexit
import errno
import os
import subprocess
import sys

import typer

from shopctl.commands.common import (
    console,
    ensure_port_free,
    fail,
    handle_errors,
    port_in_use,
    usage_error,
)
from shopctl.commands.sandbox import SANDBOX_SECRET_VARIABLE

# Sanic adds this variable to a server process's environment once its socket listens.
# Adding a variable reallocates the C environment, and a thread reading it meanwhile
# (libpq reads the PG* variables on every connect) can crash: a SIGSEGV in libc's getenv,
# in a starting server's first thread, was seen once. Defined while the process has a
# single thread, Sanic's later write only swaps the value in place.
WORKER_VARIABLE = "SANIC_WORKER_PROCESS"


def app_factory():
    """Sanic's AppLoader calls this in every worker; settings come from the environment."""
    from shopctl.api.app import create_app

    if os.environ.get("SANIC_WORKER_NAME"):  # a worker process, not yet serving
        os.environ.setdefault(WORKER_VARIABLE, "true")

    return create_app()


# The sandbox beside `serve --sandbox` is a local test tool: it listens on loopback
# whatever --host the API takes (`shopctl sandbox --host` is the way to share it).
SANDBOX_HOST = "127.0.0.1"


def _start_sandbox(port: int, api_host: str, api_port: int, settings) -> None:
    """Run `shopctl sandbox` beside the API, wired both ways, stopped when we stop.

    The webhook secret goes through the environment, not the command line (which every
    local user can read in `ps`)."""
    api = SANDBOX_HOST if api_host in ("0.0.0.0", "::", "") else api_host
    api = f"[{api}]" if ":" in api else api
    command = [
        sys.executable,
        "-m",
        "shopctl",
        "sandbox",
        "--host",
        SANDBOX_HOST,
        "--port",
        str(port),
        "--webhook-url",
        f"http://{api}:{api_port}/api/v1/payment/webhook",
    ]
    env = {**os.environ, SANDBOX_SECRET_VARIABLE: settings.stripe_webhook_secrets[0]}
    process = subprocess.Popen(command, env=env)
    atexit.register(_stop, process)
    os.environ["STRIPE_API_BASE"] = f"http://{SANDBOX_HOST}:{port}"
    if not settings.stripe_secret_key.startswith("sk_test_"):
        os.environ["STRIPE_SECRET_KEY"] = "sk_test_sandbox"
    console().print(
        f"Stripe sandbox on http://{SANDBOX_HOST}:{port} (checkout pages, webhooks to the API)"
    )


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _stop_waiting_for_acks_on_shutdown() -> None:
    """Sanic 25.12's manager spins forever on a SIGTERM that arrives before every worker
    acknowledged its start: `wait_for_ack` re-queues the shutdown message to itself and
    the dead workers never ack. Count "shutting down" as acknowledged so it moves on."""
    from sanic.worker.manager import WorkerManager

    all_acked = WorkerManager._all_workers_ack
    if getattr(all_acked, "shopctl_patched", False):
        return

    def acked_or_shutting_down(manager) -> bool:
        return manager._shutting_down or all_acked(manager)

    acked_or_shutting_down.shopctl_patched = True
    WorkerManager._all_workers_ack = acked_or_shutting_down


def _run(host: str, port: int, workers: int) -> None:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    loader = AppLoader(factory=app_factory)
    app = loader.load()
    # One worker runs in this process: no manager to spawn, half the start-up time.
    single = workers == 1
    app.prepare(
        host=host, port=port, workers=workers, access_log=False, motd=False, single_process=single
    )
    if single:
        os.environ.setdefault(WORKER_VARIABLE, "true")
        Sanic.serve_single(primary=app)
    else:
        _stop_waiting_for_acks_on_shutdown()
        Sanic.serve(primary=app, app_loader=loader)


def _require_schema(db, url: str) -> None:
    """Refuse a database without shopctl's tables; one that is down may come back
    (`/api/v1/health` answers 503 meanwhile), so the server starts anyway."""
    from peewee import DatabaseError

    try:
        db.require_schema(url)
    except DatabaseError:
        db.discard_connection()


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(None, help="Port; defaults to $PORT, then 8000."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
    migrate: bool = typer.Option(False, "--migrate", help="Apply pending migrations first."),
    sandbox: bool = typer.Option(
        False,
        "--sandbox",
        help="Also run the local Stripe sandbox (on 127.0.0.1, whatever --host says) and "
        "wire the API to it.",
    ),
    sandbox_port: int = typer.Option(12111, help="Port of the sandbox with --sandbox."),
) -> None:
    """Serve the API under /api/v1.

    Example: shopctl serve --migrate --workers 2 --port 8080
    """
    from shopctl import db
    from shopctl.config import load_settings

    settings = load_settings()
    settings.check_safe()
    port = port or settings.port
    if not 0 < port < 65536:
        usage_error(f"--port must be between 1 and 65535, got {port}")
    ensure_port_free(host, port)
    if sandbox:
        ensure_port_free(SANDBOX_HOST, sandbox_port, "--sandbox-port")
    db.init_database(settings.database_url, max_connections=2, create=migrate)
    if migrate:
        applied = db.migrate()
        console().print(f"Applied {len(applied)} migration(s).")
    else:
        _require_schema(db, settings.database_url)
    db.detach()
    if sandbox:
        _start_sandbox(sandbox_port, host, port, settings)
    console().print(f"shopctl API on http://{host}:{port}/api/v1 ({workers} worker(s))")
    try:
        _run(host, port, workers)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # taken between the check and the bind
            fail(port_in_use(port))
        raise
