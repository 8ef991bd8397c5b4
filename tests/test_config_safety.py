"""Unsafe configuration is refused: a live Stripe key beside any development default secret
(in every mode, by `shopctl serve` and by every command), short JWT secrets in production;
and the development defaults are long enough that PyJWT warns about nothing.

Regression: `STRIPE_SECRET_KEY=sk_live_…` with the public default webhook secret started
without a word outside production mode, so anyone could sign a webhook with
`whsec_sandbox` and mark a 2,500.00 order PAID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import jwt
import pytest

from shopctl.config import DEV_ACCESS_SECRET, DEV_REFRESH_SECRET, Settings, load_settings
from shopctl.errors import ConfigError
from tests.conftest import free_port

LIVE_KEY = "sk_live_51Hshopctl0123456789abcdefghij"
STRONG = {
    "JWT_ACCESS_SECRET": "access-" + "a1" * 20,
    "JWT_REFRESH_SECRET": "refresh-" + "b2" * 20,
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "c3" * 16,
}
SECRETS = ("JWT_ACCESS_SECRET", "JWT_REFRESH_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")


def _env(**values: str) -> dict[str, str]:
    """The process environment with no shopctl secret but `values` (and a test database)."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "SHOPCTL_ENV"}
    return {**env, **values}


def _serve(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`shopctl serve` as an operator runs it; it must stop by itself (refusing)."""
    command = [sys.executable, "-m", "shopctl", "serve", "--port", str(free_port())]
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"serve started instead of refusing:\n{output.decode(errors='replace')}")
    return subprocess.CompletedProcess(command, process.returncode, output.decode(), "")


@pytest.mark.parametrize("mode", ["development", "test", "production"])
def test_serve_refuses_a_live_key_with_the_default_secrets_naming_each(tmp_path, mode):
    result = _serve(tmp_path, _env(SHOPCTL_ENV=mode, STRIPE_SECRET_KEY=LIVE_KEY))
    assert result.returncode != 0
    for name in ("JWT_ACCESS_SECRET", "JWT_REFRESH_SECRET", "STRIPE_WEBHOOK_SECRET"):
        assert name in result.stdout
    assert "live" in result.stdout and LIVE_KEY not in result.stdout


def test_serve_refuses_a_live_key_with_only_the_public_webhook_secret(tmp_path):
    env = _env(
        **{**STRONG, "STRIPE_SECRET_KEY": LIVE_KEY, "STRIPE_WEBHOOK_SECRET": "whsec_sandbox"}
    )
    result = _serve(tmp_path, env)
    assert result.returncode != 0 and "STRIPE_WEBHOOK_SECRET" in result.stdout
    assert "JWT_ACCESS_SECRET" not in result.stdout


def test_every_command_refuses_a_live_key_with_default_secrets(cli, monkeypatch):
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRIPE_SECRET_KEY", LIVE_KEY)
    monkeypatch.setenv("JWT_ACCESS_SECRET", STRONG["JWT_ACCESS_SECRET"])
    for command in (("orders", "list"), ("products", "list"), ("doctor",)):
        result = cli(*command)
        assert result.exit_code == 1, (command, result.output)
        assert "JWT_REFRESH_SECRET" in result.output and "STRIPE_WEBHOOK_SECRET" in result.output
        assert "JWT_ACCESS_SECRET" not in result.output.replace("JWT_ACCESS_SECRET=", "")


@pytest.mark.parametrize(
    "overrides",
    [
        {"STRIPE_WEBHOOK_SECRET": "whsec_" + "c3" * 16 + ",whsec_sandbox"},  # while rotating
        {"JWT_ACCESS_SECRET": "dev-access-secret-change-me"},  # .env.example of old
        {"STRIPE_WEBHOOK_SECRET": " whsec_sandbox "},
    ],
)
def test_a_default_hidden_among_real_values_is_still_a_default(monkeypatch, overrides):
    for name, value in {**STRONG, "STRIPE_SECRET_KEY": LIVE_KEY, **overrides}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHOPCTL_ENV", "development")
    with pytest.raises(ConfigError) as refused:
        load_settings(env_file=None).check_safe()
    assert next(iter(overrides)) in str(refused.value)


def test_a_live_key_with_real_secrets_is_fine(monkeypatch):
    for name, value in {**STRONG, "STRIPE_SECRET_KEY": LIVE_KEY}.items():
        monkeypatch.setenv(name, value)
    load_settings(env_file=None).check_safe()


def test_production_refuses_jwt_secrets_under_32_bytes(cli, tmp_path, monkeypatch):
    short = {"JWT_ACCESS_SECRET": "s" * 31, "JWT_REFRESH_SECRET": "é" * 16}  # 32 bytes: fine
    env = {**STRONG, **short, "STRIPE_SECRET_KEY": "sk_test_" + "d4" * 12}
    result = _serve(tmp_path, _env(SHOPCTL_ENV="production", **env))
    assert result.returncode != 0
    assert "JWT_ACCESS_SECRET" in result.stdout and "32 bytes" in result.stdout
    assert "JWT_REFRESH_SECRET" not in result.stdout
    for name, value in {**env, "SHOPCTL_ENV": "production"}.items():
        monkeypatch.setenv(name, value)
    listed = cli("orders", "list")
    assert listed.exit_code == 1 and "JWT_ACCESS_SECRET" in listed.output


def test_the_development_defaults_make_pyjwt_warn_about_nothing(db):
    """PyJWT warns (InsecureKeyLengthWarning) on every sign and verify with an HS256 key
    under 32 bytes; the defaults a newcomer runs with are longer."""
    from shopctl.models import User
    from shopctl.services.accounts.tokens import access_claims, issue_access_token

    defaults = Settings()
    assert (defaults.jwt_access_secret, defaults.jwt_refresh_secret) == (
        DEV_ACCESS_SECRET,
        DEV_REFRESH_SECRET,
    )
    user = User.create(email="newcomer@example.com", password_hash="x", name="New")
    with warnings.catch_warnings():
        warnings.simplefilter("error", jwt.warnings.InsecureKeyLengthWarning)
        token = issue_access_token(defaults, user)
        assert access_claims(defaults, token)["sub"] == user.id
        jwt.decode(jwt.encode({"a": 1}, DEV_REFRESH_SECRET, "HS256"), DEV_REFRESH_SECRET, ["HS256"])
