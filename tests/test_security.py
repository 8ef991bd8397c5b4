"""Security: no secret in any output, security headers, stale webhooks refused, and
timing-safe comparisons (a static check of which primitives the code relies on)."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from shopctl.config import DEV_ACCESS_SECRET
from shopctl.models import StripeEvent
from tests.conftest import DEFAULT_PG_SERVER, TEST_ENV, run_server
from tests.resilience_support import leaked, running_sandbox
from tests.test_webhooks import deliver, sign

ROOT = Path(__file__).resolve().parent.parent
CANARY = uuid.uuid4().hex[:10]
ROLE = f"shopctl_leak_{CANARY}"
SECRETS = {
    "JWT_ACCESS_SECRET": f"jwt-access-canary-{CANARY}-0123456789",
    "JWT_REFRESH_SECRET": f"jwt-refresh-canary-{CANARY}-9876543210",
    # sk_live_: the sandbox refuses it (401), so every checkout is a Stripe failure
    "STRIPE_SECRET_KEY": f"sk_live_canary{CANARY}ABCDEFGHIJ",
    "STRIPE_WEBHOOK_SECRET": f"whsec_canary{CANARY}KLMNOPQRST",
    "DB_PASSWORD": f"pg-pass-canary-{CANARY}-UVWXYZ",
    "METRICS_TOKEN": f"metrics-canary-{CANARY}-0246813579",
}


@pytest.fixture
def database_with_password():
    """A PostgreSQL role with a password and a database it owns, migrated; dropped after."""
    psycopg2 = pytest.importorskip("psycopg2")
    server = os.environ.get("SHOPCTL_TEST_DATABASE_URL") or DEFAULT_PG_SERVER
    try:
        admin = psycopg2.connect(server, connect_timeout=3)
    except psycopg2.Error as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    admin.autocommit = True
    name = ROLE
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {name} LOGIN PASSWORD %s", (SECRETS["DB_PASSWORD"],))
        cur.execute(f"CREATE DATABASE {name} OWNER {name}")
    host = httpx.URL(server.replace("postgresql://", "http://"))
    url = f"postgresql://{name}:{SECRETS['DB_PASSWORD']}@{host.host}:{host.port or 5432}/{name}"
    try:
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"DROP ROLE IF EXISTS {name}")
        admin.close()


def _shopctl(env: dict, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "shopctl", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return f"$ shopctl {' '.join(args)} → {result.returncode}\n{result.stdout}{result.stderr}"


def _provoke(http: httpx.Client) -> list[httpx.Response]:
    """Errors of every kind: bad logins, forged tokens, bad webhooks, Stripe refusing us."""
    seen = [
        http.get("/"),
        http.get("/api/v1/health"),
        http.get("/api/v1/nowhere"),
        http.delete("/api/v1/health"),
    ]
    password = "Str0ng!Pass"
    seen.append(http.post("/api/v1/user", json={"email": "b@example.com", "password": password}))
    seen += [
        http.post("/api/v1/auth/login", json={"email": "b@example.com", "password": "x"})
        for _ in range(7)
    ]  # the last ones are rate limited
    seen.append(
        http.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": password})
    )
    now = int(time.time())
    forged = {"sub": "x", "iat": now, "exp": now + 60, "jti": "j", "type": "access"}
    for token in (
        jwt.encode(forged, DEV_ACCESS_SECRET),  # the public development default
        jwt.encode(forged, None, algorithm="none"),
        jwt.encode({**forged, "exp": now - 5}, SECRETS["JWT_ACCESS_SECRET"]),
    ):
        seen.append(http.get("/api/v1/user/me", headers={"Authorization": f"Bearer {token}"}))
    seen.append(http.post("/api/v1/auth/refresh-token", json={"refreshToken": "garbage"}))
    seen += _provoke_webhooks(http)
    unstorable = json.dumps({"email": "\ud800@example.com", "password": password})
    seen.append(http.post("/api/v1/user", content=unstorable))  # text no database can store
    return seen


def _provoke_webhooks(http: httpx.Client) -> list[httpx.Response]:
    body = json.dumps(
        {
            "id": "evt_canary",
            "object": "event",
            "type": "charge.refunded",
            "created": int(time.time()),
            "data": {"object": {"id": "ch_1"}},
        }
    )
    secret = SECRETS["STRIPE_WEBHOOK_SECRET"]
    headers = [
        {},
        {"Stripe-Signature": sign(body, "whsec_wrong")},
        {"Stripe-Signature": sign(body, secret, int(time.time()) - 400)},
        {"Stripe-Signature": sign(body, secret)},
    ]
    seen = [http.post("/api/v1/payment/webhook", content=body, headers=h) for h in headers]
    seen.append(http.post("/webhook", content="{", headers={"Stripe-Signature": sign("{", secret)}))
    return seen


def _admin_product_and_order(env: dict, tmp_path: Path, http: httpx.Client) -> list[str]:
    """An admin (through the CLI), a product, and a pay-now order Stripe refuses."""
    outputs = []
    admin = subprocess.run(
        [
            sys.executable,
            "-m",
            "shopctl",
            "users",
            "create",
            "admin@example.com",
            "--admin",
            "--password-stdin",
        ],
        env=env,
        cwd=tmp_path,
        input="Adm1n!Pass\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    outputs.append(admin.stdout + admin.stderr)
    login = http.post(
        "/api/v1/auth/login", json={"email": "admin@example.com", "password": "Adm1n!Pass"}
    )
    headers = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
    product = http.post(
        "/api/v1/product",
        headers=headers,
        json={"name": "Canary mug", "price": "9.99", "quantity": 3},
    )
    order = http.post(
        "/api/v1/order",
        headers=headers,
        json={"items": [{"productId": product.json()["data"]["id"], "quantity": 1}]},
    )
    assert order.status_code == 201 and order.json()["data"]["paymentUrl"] is None, order.text
    order_id = order.json()["data"]["orderId"]
    outputs += [
        login.text,
        product.text,
        order.text,
        _shopctl(env, "orders", "show", order_id, "--json", cwd=tmp_path),
        # a command's business-event log lines (JSON on stderr)
        _shopctl(env, "orders", "cancel", order_id, "--yes", cwd=tmp_path),
    ]
    return outputs


def _stored_errors(url: str) -> str:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(string_agg(last_error, ' '), '') FROM payment")
            payments = cur.fetchone()[0]
            cur.execute("SELECT coalesce(string_agg(last_error, ' '), '') FROM stripe_event")
            return payments + cur.fetchone()[0]
    finally:
        conn.close()


@pytest.mark.slow
def test_no_secret_reaches_any_output(database_with_password, tmp_path):
    with running_sandbox(tmp_path) as sandbox_url:
        env_secrets = {k: v for k, v in SECRETS.items() if k != "DB_PASSWORD"}
        env = {
            **os.environ,
            **TEST_ENV,
            **env_secrets,
            "SHOPCTL_ENV": "production",
            "DATABASE_URL": database_with_password,
            "STRIPE_API_BASE": sandbox_url,
        }
        outputs = [_shopctl(env, "migrate", cwd=tmp_path)]
        server_env = {
            **env_secrets,
            "SHOPCTL_ENV": "production",
            "STRIPE_API_BASE": sandbox_url,
            "LOG_FORMAT": "json",
        }
        with run_server(database_with_password, tmp_path, workers=2, env=server_env) as live:
            responses = _provoke(live.http)
            outputs += _admin_product_and_order(env, tmp_path, live.http)
            metrics = f"Bearer {SECRETS['METRICS_TOKEN']}"
            responses.append(live.http.get("/metrics", headers={"Authorization": metrics}))
            assert responses[-1].status_code == 200
            outputs += [f"{r.status_code} {r.headers} {r.text}" for r in responses]
            outputs += [
                _shopctl(env, *args, cwd=tmp_path)
                for args in (
                    ("doctor",),
                    ("events", "list", "--json"),
                    ("orders", "list", "--json"),
                    ("events", "show", "evt_canary", "--json"),
                )
            ]
            unreachable = f"postgresql://{ROLE}:{SECRETS['DB_PASSWORD']}@127.0.0.1:1/{ROLE}"
            outputs.append(_shopctl({**env, "DATABASE_URL": unreachable}, "doctor", cwd=tmp_path))
        stored = _stored_errors(database_with_password)
        outputs += [live.output(), stored]
    assert "Invalid API Key provided: sk_live_****" in stored  # Stripe refused us: recorded
    _assert_the_logs_were_scanned(live.output(), "\n".join(outputs))
    assert leaked("\n".join(outputs), SECRETS) == []


JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def _assert_the_logs_were_scanned(server_log: str, everything: str) -> None:
    """The scan covered JSON request and business-event lines, from the server and from
    a command; and no access token the server handed out (a login) reached its log."""
    lines = [json.loads(line) for line in server_log.splitlines() if line.startswith("{")]
    loggers = {line["logger"] for line in lines}
    assert {"shopctl.access", "shopctl.events"} <= loggers, loggers
    assert all(line.get("requestId") for line in lines if line["logger"] == "shopctl.access")
    assert '"actor":"cli"' in everything  # the command's transition line was scanned
    assert JWT.search(everything)  # the admin's login answered a token…
    assert not JWT.search(server_log)  # …that no log line repeats


# --- headers ---------------------------------------------------------------------------


def test_security_headers_on_every_kind_of_response(server):
    responses = [
        server.http.get("/"),
        server.request("GET", "/health"),
        server.request("GET", "/x"),
        server.request("DELETE", "/health"),
        server.request("POST", "/auth/login", json={}),
        server.request("GET", "/user/me"),
        server.request("POST", "/auth/login", content=b"x" * (2 * 1024 * 1024)),
        server.request("POST", "/payment/webhook", content=b"{}"),
        server.request(
            "OPTIONS",
            "/product",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
        ),
    ]
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} {response.status_code}"
        assert response.headers.get("x-content-type-options") == "nosniff", where
        assert "x-request-id" in response.headers, where
        assert "x-powered-by" not in response.headers, where
        banner = response.headers.get("server", "")
        assert not any(char.isdigit() for char in banner), f"{where}: Server: {banner}"
        assert response.headers.get("access-control-allow-origin") != "*", where


# --- webhooks: an old signature is not a licence to replay -----------------------------


def test_a_webhook_replayed_with_an_old_timestamp_is_refused(server):
    event = {
        "id": "evt_replayed",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1"}},
    }
    assert deliver(server, event).status_code == 200
    stale = int(time.time()) - 301
    for candidate in (event, {**event, "id": "evt_captured_long_ago"}):
        response = deliver(server, candidate, timestamp=stale)
        assert response.status_code == 400, response.text
        assert response.json()["success"] is False
    assert [row.id for row in StripeEvent.select()] == ["evt_replayed"]
    assert StripeEvent.get_by_id("evt_replayed").attempts == 1


# --- timing-safe comparisons: a static check --------------------------------------------

SENSITIVE = ("secret", "signature", "password", "token", "digest")


def _names(node: ast.AST) -> str:
    return " ".join(
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    ).lower()


def _is_sql_expression(node: ast.AST) -> bool:
    """`Model.field == value` builds a peewee query: the database compares, not Python."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id[:1].isupper()
    )


def _plain_comparisons_of_secrets(source: str, label: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, label)):
        if not isinstance(node, ast.Compare) or not any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            continue
        operands = [node.left, *node.comparators]
        if any(_is_sql_expression(operand) for operand in operands):
            continue
        if any(isinstance(operand, ast.Constant) for operand in operands):
            continue  # e.g. `scheme == "bearer"`, a comparison with a public literal
        if any(word in _names(node) for word in SENSITIVE):
            found.append(f"{label}:{node.lineno}: {ast.unparse(node)}")
    return found


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}


def test_secrets_are_compared_in_constant_time():
    """Static: passwords go through bcrypt.checkpw, webhook signatures through Stripe's
    verify_header, JWTs through PyJWT (HS256 only), refresh tokens are looked up by their
    keyed digest in SQL; all three libraries compare with hmac.compare_digest; and no `==`
    in shopctl/ (the sandbox aside: a fake Stripe for tests) compares a secret in Python."""
    from jwt.algorithms import HMACAlgorithm
    from stripe import WebhookSignature
    from stripe._util import secure_compare

    services = ROOT / "shopctl" / "services"
    assert "bcrypt.checkpw" in _calls(services / "accounts" / "auth.py")
    assert "WebhookSignature.verify_header" in _calls(services / "payments" / "signatures.py")
    assert "jwt.decode" in _calls(services / "accounts" / "tokens.py")
    # refresh tokens: keyed digests
    assert "hmac.new" in _calls(services / "accounts" / "tokens.py")
    assert "secure_compare(" in inspect.getsource(WebhookSignature)
    assert "compare_digest" in inspect.getsource(secure_compare)
    assert "compare_digest" in inspect.getsource(HMACAlgorithm.verify)
    decode = next(
        n
        for n in ast.walk(ast.parse((services / "accounts" / "tokens.py").read_text()))
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "jwt.decode"
    )
    algorithms = next(k.value for k in decode.keywords if k.arg == "algorithms")
    assert ast.unparse(algorithms) == "[ALGORITHM]"
    code = [p for p in (ROOT / "shopctl").rglob("*.py") if "sandbox" not in p.parts]
    hits = [hit for p in code for hit in _plain_comparisons_of_secrets(p.read_text(), p.name)]
    assert hits == []
    naive = "def check(given, expected_signature):\n    return given == expected_signature\n"
    assert _plain_comparisons_of_secrets(naive, "naive.py") != []  # the check can fail
