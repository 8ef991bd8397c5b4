"""Fixtures shared by the whole suite.

* `backend_url` — a migrated database made for this test session, once on SQLite and once
  on PostgreSQL (every database test runs on both); dropped at the end.
* `db` — that database, emptied, with every model pointed at it.
* `server` — a real `shopctl serve` subprocess on a free port, over that database.
* `start_server` — start one with other settings (workers, environment).
* `app_client` — the Sanic app in-process (ASGI), for fast API tests.
* `cli` — run `shopctl …` in-process with Typer's CliRunner against that database.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import pytest

from tests.browser_support import browser, page  # noqa: F401 (fixtures for every test)

# Every process of the run (this one and the servers it starts) sees the same settings;
# bcrypt at its cheapest keeps tests fast without changing any code path.
TEST_ENV = {
    "SHOPCTL_ENV": "test",
    "BCRYPT_SALT_ROUNDS": "4",
    "JWT_ACCESS_SECRET": "test-access-secret-0123456789abcdef",
    "JWT_REFRESH_SECRET": "test-refresh-secret-0123456789abcdef",
    "STRIPE_SECRET_KEY": "sk_test_shopctl",
    "STRIPE_WEBHOOK_SECRET": "whsec_test_shopctl",
    "FRONTEND_URL": "http://localhost:3000",
    # Nothing in the suite may reach the real Stripe: tests that pay use the sandbox.
    "STRIPE_API_BASE": "http://127.0.0.1:9",
    # Load and race tests place hundreds of orders as one buyer: the per-buyer limits
    # still count every order (the same code path) but never trip;
    # tests/test_abuse_orders.py runs servers with the defaults (LIMIT_DEFAULTS).
    "MAX_OPEN_ORDERS": "1000",
    "ORDER_RATE_LIMIT": "100000/1h",
}
# A server started with these env values uses the default per-buyer limits.
LIMIT_DEFAULTS = {"MAX_OPEN_ORDERS": "", "ORDER_RATE_LIMIT": ""}
os.environ.update(TEST_ENV)

DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgresql"]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """On an xdist worker: the last full garbage collection now, then freeze what is left.

    A worker that reported its end gets 5 s to exit before execnet sends it a SIGINT, and
    pytest's last collection (for unraisable exceptions) over a large heap on a busy
    machine took longer: the interrupt landed in a gc callback and its traceback ended the
    suite's output. Collected here, before the worker reports, unraisable exceptions are
    still caught; frozen, the heap leaves pytest's collection nothing to walk.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        gc.collect()
        gc.freeze()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_server_url() -> str:
    return os.environ.get("SHOPCTL_TEST_DATABASE_URL") or DEFAULT_PG_SERVER


def _pg_admin():
    import psycopg2

    conn = psycopg2.connect(_pg_server_url(), connect_timeout=3)
    conn.autocommit = True
    return conn


@contextmanager
def _postgres_database() -> Iterator[str]:
    try:
        admin = _pg_admin()
    except Exception as exc:
        reason = f"PostgreSQL unavailable at {urlparse(_pg_server_url()).hostname}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason.splitlines()[0])
        pytest.skip(reason.splitlines()[0])
    name = f"shopctl_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(_pg_server_url())._replace(path=f"/{name}"))
    finally:
        from shopctl.db import database

        if getattr(database.obj, "shopctl_url", "").endswith(f"/{name}"):
            database.obj.close_all()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_url(request, tmp_path_factory) -> Iterator[str]:
    from shopctl import db

    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "shopctl.db"
        url = f"sqlite:///{path}"
        db.init_database(url)
        db.migrate()
        yield url
        return
    with _postgres_database() as url:
        db.init_database(url)
        db.migrate()
        yield url


def empty_all_tables() -> None:
    """DELETE, children first: on a few rows 40x faster than PostgreSQL's TRUNCATE."""
    from shopctl import db
    from shopctl.models import ALL_MODELS

    def delete_all():
        with db.write_transaction():
            for model in reversed(ALL_MODELS):
                model.delete().execute()

    _retry(delete_all)


def _retry(action, attempts: int = 5):
    """A late webhook from the previous test may briefly hold a lock the cleanup needs."""
    from peewee import OperationalError

    for attempt in range(attempts):
        try:
            return action()
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


@pytest.fixture
def db(backend_url):
    """The session's database for this backend, emptied, models bound to it."""
    from shopctl import db as shop_db

    database = shop_db.init_database(backend_url)
    empty_all_tables()
    yield database
    shop_db.release_connection()


@pytest.fixture
def settings(db, backend_url):
    """Settings as a server of this run sees them, over this test's database."""
    from dataclasses import replace

    from shopctl.config import load_settings

    return replace(load_settings(env_file=None), database_url=backend_url)


class LiveServer:
    """A `shopctl serve` subprocess and an httpx client pointed at it."""

    def __init__(self, url: str, process: subprocess.Popen, log: Path):
        self.url = url
        self.process = process
        self.log = log
        self.http = httpx.Client(base_url=url, timeout=30)

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1{path}"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.http.request(method, f"/api/v1{path}", **kwargs)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(
    url: str, process: subprocess.Popen, log: Path, ready_status: int, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text(errors='replace')}")
        try:
            health = httpx.get(f"{url}/api/v1/health", timeout=5)
            if health.status_code == ready_status and "Worker ready" in log.read_text():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text(errors='replace')}")


@contextmanager
def run_server(
    database_url: str,
    tmp_path: Path,
    *,
    workers: int = 1,
    env: dict | None = None,
    args: tuple[str, ...] = (),
    ready_status: int = 200,
    port: int | None = None,
) -> Iterator[LiveServer]:
    port = port or free_port()
    log = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, **(env or {})}
    command = [
        sys.executable,
        "-m",
        "shopctl",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=full_env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    server = LiveServer(url, process, log)
    try:
        _wait_ready(url, process, log, ready_status)
        yield server
    finally:
        server.http.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.fixture(scope="session")
def _session_server(backend_url, tmp_path_factory) -> Iterator[LiveServer]:
    with run_server(backend_url, tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture
def server(_session_server, db) -> LiveServer:
    """A real `shopctl serve` (one worker) over this test's emptied database."""
    _session_server.http.cookies.clear()  # no test inherits another's login
    return _session_server


@pytest.fixture
def start_server(db, backend_url, tmp_path):
    """Start a dedicated server: `with start_server(workers=2, env={...}) as srv: …`."""

    def start(**kwargs):
        return run_server(backend_url, tmp_path, **kwargs)

    return start


class AppClient:
    """Synchronous calls into the in-process app; each returns (request, response)."""

    def __init__(self, app):
        self.sanic_app = app
        self.loop = asyncio.new_event_loop()
        self.client = app.asgi_client

    def request(self, method: str, path: str, **kwargs):
        return self.loop.run_until_complete(self.client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def app_client(db, settings):
    """The API in-process over ASGI: `_, response = app_client.get('/api/v1/health')`."""
    from sanic import Sanic

    from shopctl.api.app import create_app

    Sanic.test_mode = True
    client = AppClient(create_app(settings, name=f"shopctl_test_{uuid.uuid4().hex[:8]}"))
    yield client
    client.loop.close()


@pytest.fixture
def cli(db, backend_url, tmp_path, monkeypatch):
    """Run a shopctl command in-process: `result = cli("orders", "list", "--json")`."""
    from typer.testing import CliRunner

    from shopctl.cli import app

    monkeypatch.setenv("DATABASE_URL", backend_url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


# --- Stripe: the sandbox beside a server wired to it -----------------------------------

SANDBOX_KEY = TEST_ENV["STRIPE_SECRET_KEY"]
WEBHOOK_SECRET = TEST_ENV["STRIPE_WEBHOOK_SECRET"]


class StripeStack:
    """`shopctl sandbox` plus a `shopctl serve` whose STRIPE_API_BASE points at it."""

    def __init__(self, server: LiveServer, sandbox_url: str):
        self.server = server
        self.sandbox_url = sandbox_url
        self.http = httpx.Client(base_url=sandbox_url, timeout=30)

    def control(self, method: str, path: str, **kwargs) -> dict:
        if method != "GET" and "json" not in kwargs:
            kwargs["json"] = {}  # the control endpoints read JSON bodies only
        response = self.http.request(method, f"/_sandbox{path}", **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def configure(self, **settings) -> dict:
        return self.control("POST", "/config", json=settings)

    def pay(self, session_id: str, outcome: str = "succeeded") -> dict:
        return self.control("POST", f"/sessions/{session_id}/pay", json={"outcome": outcome})

    def stripe(self):
        import stripe

        return stripe.StripeClient(SANDBOX_KEY, base_addresses={"api": self.sandbox_url})


def _start_sandbox(port: int, webhook_url: str, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "shopctl",
        "sandbox",
        "--port",
        str(port),
        "--webhook-url",
        webhook_url,
        "--webhook-secret",
        WEBHOOK_SECRET,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"sandbox did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def _stripe_stack(backend_url, tmp_path_factory) -> Iterator[StripeStack]:
    tmp = tmp_path_factory.mktemp("stripe")
    sandbox_port, api_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    webhook = f"http://127.0.0.1:{api_port}/api/v1/payment/webhook"
    sandbox = _start_sandbox(sandbox_port, webhook, tmp / "sandbox.log")
    try:
        with run_server(
            backend_url, tmp, port=api_port, env={"STRIPE_API_BASE": sandbox_url}
        ) as server:
            yield StripeStack(server, sandbox_url)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=15)


@pytest.fixture
def stripe_stack(_stripe_stack, db, monkeypatch) -> Iterator[StripeStack]:
    """The sandbox (emptied, default settings) and a server wired to it, over `db`."""
    _stripe_stack.control("POST", "/reset")
    _stripe_stack.configure(
        webhooks_enabled=True,
        latency_ms=0,
        fail_rate=0.0,
        refund_status="succeeded",
        fail_next=0,
    )
    monkeypatch.setenv("STRIPE_API_BASE", _stripe_stack.sandbox_url)
    yield _stripe_stack
    _stripe_stack.control("POST", "/reset")  # no delivery outlives its test
