"""The foundation: configuration, migrations, the API skeleton and the CLI skeleton."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from shopctl.config import load_settings, parse_duration
from shopctl.errors import ConfigError
from tests.conftest import free_port, run_server


def _shopctl(*args: str, env: dict | None = None, cwd=None, input: str | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "shopctl", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
    )


# --- configuration ---------------------------------------------------------------------


def test_environment_wins_over_dotenv_which_wins_over_defaults(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9100\nSTRIPE_CURRENCY=EUR\nORDER_RESERVATION_MINUTES=5\n")
    monkeypatch.setenv("PORT", "9200")
    monkeypatch.delenv("STRIPE_CURRENCY", raising=False)
    monkeypatch.delenv("ORDER_RESERVATION_MINUTES", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings(env_file)
    assert settings.port == 9200
    assert settings.stripe_currency == "eur"
    assert settings.order_reservation_minutes == 5
    assert settings.database_url == "sqlite:///shopctl.db"


@pytest.mark.parametrize(
    "text, seconds", [("15m", 900), ("7d", 604800), ("12h", 43200), ("90", 90), ("1.5m", 90)]
)
def test_v1_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "name, value",
    [
        ("PORT", "eighty"),
        ("JWT_ACCESS_EXPIRES", "soon"),
        ("BCRYPT_SALT_ROUNDS", "99"),
        ("SHOPCTL_ENV", "prod"),
    ],
)
def test_bad_settings_are_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings(None)


def test_production_refuses_default_secrets_and_names_them(tmp_path):
    env = {
        "SHOPCTL_ENV": "production",
        "JWT_ACCESS_SECRET": "a-real-secret-value-of-32-bytes-or-more",
    }
    for name in ("JWT_REFRESH_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        env[name] = ""
    result = _shopctl("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
    assert result.returncode == 1
    for name in ("JWT_REFRESH_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        assert name in result.stderr
    assert "JWT_ACCESS_SECRET" not in result.stderr
    assert "Traceback" not in result.stderr


# --- migrations and doctor ---------------------------------------------------------------


def test_migrate_twice_is_a_no_op_and_list_shows_applied(cli):
    first = cli("migrate")
    assert first.exit_code == 0, first.output
    assert "up to date" in first.output
    listing = cli("migrate", "--list", "--json")
    assert listing.exit_code == 0
    import json

    rows = json.loads(listing.output)
    assert rows[0]["name"] == "0001_initial" and rows[0]["applied"]


def test_fresh_sqlite_database_migrates_and_doctor_goes_green(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db"}
    before = _shopctl("doctor", env=env, cwd=tmp_path)
    assert before.returncode == 1
    assert "shopctl migrate" in before.stdout
    listing = _shopctl("migrate", "--list", env=env, cwd=tmp_path)
    assert "pending" in listing.stdout
    assert _shopctl("migrate", env=env, cwd=tmp_path).returncode == 0
    after = _shopctl("doctor", env=env, cwd=tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr


def test_doctor_fails_cleanly_when_database_is_unreachable(tmp_path):
    env = {"DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none"}
    result = _shopctl("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "unreachable" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_database_scheme_is_a_clear_error(tmp_path):
    result = _shopctl("migrate", env={"DATABASE_URL": "mysql://root@localhost/shop"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


# --- the API skeleton ------------------------------------------------------------------


def test_root_and_health(server):
    root = server.http.get("/")
    assert root.status_code == 200
    body = root.json()
    assert body["success"] is True
    assert set(body["data"]) == {"message", "environment", "uptime", "timeStamp"}
    health = server.request("GET", "/health")
    assert health.json()["data"] == {"status": "ok", "database": "ok"}


def test_unknown_route_gets_the_v1_404_envelope(server):
    response = server.request("GET", "/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "success": False,
        "message": "API NOT FOUND!",
        "error": {"path": "/api/v1/no/such/thing", "message": "Your requested path is not found!"},
    }


def test_every_response_carries_a_request_id(server):
    fresh = server.request("GET", "/health")
    assert len(fresh.headers["X-Request-ID"]) >= 16
    ids = {server.request("GET", "/health").headers["X-Request-ID"] for _ in range(20)}
    assert len(ids) == 20 and fresh.headers["X-Request-ID"] not in ids
    echoed = server.request("GET", "/nope", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    hostile = server.request("GET", "/health", headers={"X-Request-ID": "<script>"})
    assert hostile.headers["X-Request-ID"] != "<script>"
    assert fresh.headers["X-Content-Type-Options"] == "nosniff"


def test_malformed_json_gets_a_400_envelope(server):
    response = server.request(
        "POST", "/auth/login", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["message"] == "Validation Error"


def test_bodies_over_one_mebibyte_get_413(server):
    response = server.request(
        "POST",
        "/auth/login",
        content=b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["success"] is False


def test_unexpected_errors_never_leak_internals(app_client):
    async def explode(request):
        raise RuntimeError("SELECT password_hash FROM user -- secret")

    app_client.sanic_app.add_route(explode, "/api/v1/explode", name="explode")
    _, response = app_client.get("/api/v1/explode")
    assert response.status_code == 500
    assert response.json["message"] == "Something went wrong"
    assert "password_hash" not in response.text and "Traceback" not in response.text


def test_health_is_503_when_the_database_is_down(tmp_path):
    down = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    with run_server(down, tmp_path, ready_status=503) as live:
        response = live.request("GET", "/health")
        assert response.status_code == 503
        assert response.json()["error"]["database"] == "unreachable"
        assert "Traceback" not in live.output()


def test_sigterm_finishes_the_request_in_flight_and_shuts_down_cleanly(start_server, db):
    """A login is in flight (bcrypt at cost 13, about half a second, has started) on one
    of two workers when the server gets SIGTERM: it is answered, then the server exits 0."""
    import bcrypt

    from shopctl.models import LoginThrottle, User
    from tests.wire import wait_until, worker_connections

    password = "Passw0rd!"
    slow = bcrypt.hashpw(password.encode(), bcrypt.gensalt(13)).decode()
    User.create(email="slow@example.com", password_hash=slow)
    with start_server(workers=2) as live:
        connections = worker_connections(live, per_worker=1)  # both workers are serving
        pending = next(iter(connections.values()))[0]
        body = {"email": "slow@example.com", "password": password}
        pending.send("POST", "/api/v1/auth/login", body)
        wait_until(
            lambda: (
                LoginThrottle.select()
                .where(LoginThrottle.key.contains("slow@example.com"))
                .exists()
            ),
            10,
            "the login to start checking the password",
        )
        assert not pending.answered()
        live.process.send_signal(signal.SIGTERM)
        status, answer = pending.response()
        assert status == 200 and answer["data"]["user"]["email"] == "slow@example.com"
        assert live.process.wait(timeout=30) == 0
        assert "Traceback" not in live.output()


# --- the CLI skeleton ------------------------------------------------------------------


def test_help_imports_neither_sanic_nor_stripe_nor_the_api():
    probe = (
        "import sys\n"
        "from shopctl.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] if not m.startswith('shopctl') else m\n"
        "    for m in sys.modules if m.startswith(('sanic', 'stripe', 'shopctl.api',\n"
        "    'httpx', 'peewee', 'pydantic'))})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "HEAVY []" in result.stderr, result.stderr


def _commands():
    import typer.main

    from shopctl.cli import app

    def walk(group, path=()):
        for name, command in group.commands.items():
            yield (*path, name), command
            if hasattr(command, "commands"):
                yield from walk(command, (*path, name))

    return list(walk(typer.main.get_command(app)))


def _rendered_help(path) -> str:
    from typer.testing import CliRunner

    from shopctl.cli import app

    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_has_help_text():
    commands = _commands()
    assert {path[0] for path, _ in commands} >= {
        "migrate",
        "serve",
        "doctor",
        "users",
        "products",
        "orders",
        "events",
        "payments",
    }
    for path, command in commands:
        assert (command.help or "").strip(), f"shopctl {' '.join(path)} has no help"


def _example_lines(help_text: str) -> list[str]:
    """The lines of a docstring that show a command: `Example:`, `Examples:`, `Then:` and
    the indented lines that continue them."""
    examples, inside = [], False
    for line in help_text.replace("\b", "").splitlines():
        starts = re.match(r"\s*(Examples?|Then):", line)
        inside = bool(starts) or (inside and line.startswith(" ") and line.strip() != "")
        if inside:
            examples.append(line.strip())
    return examples


def test_help_examples_each_stand_on_their_own_line():
    """Regression: examples were joined into their paragraph and rewrapped by click
    ("...amount mismatches. Example: shopctl payments / reconcile --apply")."""
    for path, command in _commands():
        text = command.help or ""
        for line in text.splitlines():
            assert "Example" not in line or re.match(r"\s*Examples?:", line), (path, line)
        rendered = [line.strip() for line in _rendered_help(path).splitlines()]
        for example in _example_lines(text):
            assert example in rendered, (path, example)
            assert ";  shopctl" not in example, (path, example)


CANONICAL_METAVARS = {
    "ORDER_ID",
    "PRODUCT_ID",
    "EVENT_ID",
    "SHIPMENT_ID",
    "DISPUTE_ID",
    "RATE_ID",
    "EMAIL",
    "QUANTITY",
    "NAME",
}


def test_arguments_have_one_spelling_each():
    """Regression: an order id was `ID` in `orders show` and `ORDER_ID` in `orders refund`."""
    arguments = 0
    for path, command in _commands():
        for param in command.params:
            if param.param_type_name == "argument":
                arguments += 1
                assert param.metavar in CANONICAL_METAVARS, (path, param.name)
        usage = _rendered_help(path).splitlines()[0]
        assert not re.search(r"[{<\[][a-z]", usage), (path, usage)
        for word in re.findall(r"\b[A-Z][A-Z_]{1,}\b", command.help or ""):
            if word.endswith("_ID") or word in {"ID", "QTY"}:
                assert word in CANONICAL_METAVARS, (path, word)
    assert arguments >= 8


def test_summaries_are_whole_first_lines_and_help_has_no_internal_notes():
    """Regression: `shopctl --help` cut summaries short ("Refund a paid order at Stripe,
    fully or partly (registered as..."), and showed a note meant for developers."""
    groups = [()] + [path for path, command in _commands() if hasattr(command, "commands")]
    commands = dict(_commands())
    for group in groups:
        listing = " ".join(_rendered_help(group).split()).replace("- ", "-")  # wrapped at a -
        assert not re.search(r"\w\.\.\.", listing), group  # click's "cut short..."
        for path, command in commands.items():
            if path[:-1] == group:
                summary = (command.help or "").strip().splitlines()[0]
                assert " ".join(summary.split()) in listing, (path, summary)
    for path, command in commands.items():
        for note in ("registered as", "TODO", "FIXME", "XXX", "internal"):
            assert note not in (command.help or ""), (path, note)


def test_version():
    result = _shopctl("--version")
    assert result.returncode == 0 and result.stdout.startswith("shopctl ")
