"""Production refuses missing or default secrets: `serve` and every command, found by
walking the CLI (a new command is covered without being listed here), each given the
arguments it needs to get past its usage check, so the refusal is what stops it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer.main

from shopctl.cli import app
from shopctl.config import DEV_ACCESS_SECRET, DEV_REFRESH_SECRET, DEV_STRIPE_KEY, DEV_WEBHOOK_SECRET
from tests.conftest import free_port

SECRETS = ("JWT_ACCESS_SECRET", "JWT_REFRESH_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")
DEFAULTS = dict(
    zip(
        SECRETS,
        (DEV_ACCESS_SECRET, DEV_REFRESH_SECRET, DEV_STRIPE_KEY, DEV_WEBHOOK_SECRET),
        strict=True,
    )
)

# Commands that do not run the shop, and why they need no secret.
NOT_THE_SHOP = {
    ("sandbox",): "the local Stripe stand-in, which has no production",
    ("api", "openapi"): "writes the API document from code; reads no secret, no database",
    ("api", "postman"): "writes a Postman collection from code; reads no secret, no database",
    ("doctor",): "reports the secrets as its failing configuration check (tested below)",
}


def _commands(group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _arguments(command) -> list[str]:
    """A plausible value for every argument (by its name), enough to pass usage checks."""
    values = []
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        name = param.name or ""
        if "email" in name:
            values.append("someone@example.com")
        elif name in ("quantity", "qty", "count", "amount", "rate_id"):
            values.append("1")
        elif name.startswith("event"):
            values.append("evt_test_1")
        else:
            values.append("00000000-0000-4000-8000-000000000000")
    return values


# Options a command needs before it gets as far as its settings (a choice it checks first).
OPTIONS = {
    ("payments", "settle"): ["--dismiss"],
    ("shipping", "rates", "add"): ["--amount", "100"],
}

COMMANDS = dict(_commands(typer.main.get_command(app)))
SHOP_COMMANDS = sorted(path for path in COMMANDS if path not in NOT_THE_SHOP and path != ("serve",))


def _shopctl(args, env, cwd):
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "shopctl", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        input="",
    )


@pytest.fixture(params=["default", "missing"])
def insecure_env(request, tmp_path) -> dict:
    """Production with every secret at its development default (or, for the second run,
    one real secret and the others empty); the database a file that must never appear."""
    env = {"SHOPCTL_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/never.db"}
    if request.param == "default":
        env.update(DEFAULTS)
    else:
        env.update(
            {name: "" for name in SECRETS},
            JWT_ACCESS_SECRET="a-real-secret-value-0123456789-abcdef",
        )
    return env


def test_every_command_of_the_cli_is_checked():
    assert ("orders", "expire") in SHOP_COMMANDS and ("migrate",) in SHOP_COMMANDS
    assert set(NOT_THE_SHOP) <= set(COMMANDS), "a listed exception no longer exists"


@pytest.mark.parametrize("path", SHOP_COMMANDS, ids=" ".join)
def test_production_refuses_default_secrets_for_every_command(path, insecure_env, tmp_path):
    from typer.testing import CliRunner

    args = [*path, *_arguments(COMMANDS[path]), *OPTIONS.get(path, [])]
    result = CliRunner().invoke(app, args, env=insecure_env, input="", catch_exceptions=False)
    output = result.output
    assert result.exit_code == 1, f"shopctl {' '.join(args)}: exit {result.exit_code}\n{output}"
    assert "production refuses" in output
    expected = [name for name in SECRETS if insecure_env[name] in ("", DEFAULTS[name])]
    for name in SECRETS:
        assert (name in output) == (name in expected), (name, output)
    assert not (tmp_path / "never.db").exists(), "the command opened the database"


def test_serve_refuses_default_secrets_by_name(insecure_env, tmp_path):
    result = _shopctl(["serve", "--port", str(free_port())], insecure_env, tmp_path)
    assert result.returncode == 1
    assert "production refuses" in result.stderr and "Traceback" not in result.stderr
    for name in SECRETS:
        assert (name in result.stderr) == (insecure_env[name] in ("", DEFAULTS[name]))
    assert not (tmp_path / "never.db").exists()


def test_doctor_fails_its_configuration_check_in_production(insecure_env, tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["doctor", "--json"], env=insecure_env)
    assert result.exit_code == 1
    import json

    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks["configuration"]["ok"] is False
    assert "JWT_REFRESH_SECRET" in json.dumps(checks["configuration"])
