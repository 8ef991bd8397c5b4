"""`./scripts/run` for a newcomer: the settings it chose land in `.env`, so `shopctl` in a
second shell talks to the same database and sandbox; a second run says a server is up.

Regressions for issue 17: from a second shell `payments reconcile` failed with Stripe's
APIConnectionError (the CLI did not know the sandbox's address), and a second
`./scripts/run` printed its banner, then `Error: unexpected OSError`.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

from shopctl.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
# The suite's own settings must not leak into what the scripts write.
CHOSEN = ("DATABASE_URL", "PORT", "SANDBOX_PORT", "STRIPE_API_BASE", "STRIPE_SECRET_KEY")
CHOSEN += ("STRIPE_WEBHOOK_SECRET", "JWT_ACCESS_SECRET", "JWT_REFRESH_SECRET", "SHOPCTL_ENV")


def project(tmp_path: Path) -> Path:
    """A copy of the project's scripts in a folder of its own (no .venv, no .env)."""
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    return tmp_path


def script(folder: Path, name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in CHOSEN}
    return subprocess.run(
        [str(folder / "scripts" / name), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_settings_it_chose_are_written_to_env_once(tmp_path, monkeypatch):
    folder = project(tmp_path)
    for name in CHOSEN:  # what a second shell sees: only the file
        monkeypatch.delenv(name, raising=False)
    first = script(folder, "dev-env", "8123", "12123")
    assert first.returncode == 0, first.stderr

    env_file = folder / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it holds secrets
    settings = load_settings(env_file)
    assert settings.database_url == f"sqlite:///{folder}/shopctl.db"  # from any folder
    assert settings.port == 8123
    assert settings.stripe_api_base == "http://127.0.0.1:12123"
    assert settings.stripe_secret_key == "sk_test_sandbox"
    assert settings.stripe_webhook_secrets == ("whsec_sandbox",)
    assert len(settings.jwt_access_secret) >= 32 and len(settings.jwt_refresh_secret) >= 32
    assert settings.jwt_access_secret != settings.jwt_refresh_secret
    assert settings.env == "development"

    written = env_file.read_text()
    again = script(folder, "dev-env", "9000", "13000")
    assert again.returncode == 0 and "Using the settings in ./.env" in again.stdout
    assert env_file.read_text() == written  # one that exists is never overwritten


def test_a_second_run_says_a_server_is_already_running(start_server, tmp_path):
    folder = project(tmp_path / "clone")
    with start_server() as server:
        port = server.url.rsplit(":", 1)[1]
        second = script(folder, "run", PORT=port, SANDBOX_PORT="1")

    assert second.returncode == 1
    assert f"A shopctl server is already running on http://127.0.0.1:{port}" in second.stderr
    assert f"PORT={int(port) + 1}" in second.stderr
    assert "OSError" not in second.stdout + second.stderr
    assert not (folder / ".env").exists() and not (folder / ".venv").exists()


def test_a_port_taken_by_another_program_is_named(tmp_path):
    folder = project(tmp_path)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        run = script(folder, "run", PORT=port)
    assert run.returncode == 1
    assert f"Port {port} is already in use by another program" in run.stderr
