"""Clear errors for the common mistakes, from a real `shopctl` process.

Regressions: a second `shopctl serve` (or `./scripts/run`) printed its banner and then
`Error: unexpected OSError`; a command against an unmigrated database failed with
`no such table: order`; a command against a missing SQLite file created an empty
`shopctl.db` there; a SQLite error did not say which file it came from.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager

import pytest

from tests.conftest import _postgres_database, free_port
from tests.test_foundation import _shopctl

NO_TABLES = "this database has no shopctl tables; run `shopctl migrate`"


@contextmanager
def _port_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _clean(result) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "OSError" not in output, output
    return output


@pytest.mark.parametrize(
    "command, option",
    [
        (("serve", "--port", "{port}"), "--port"),
        (("serve", "--port", "{free}", "--sandbox", "--sandbox-port", "{port}"), "--sandbox-port"),
        (("sandbox", "--port", "{port}"), "--port"),
    ],
)
def test_a_port_in_use_says_so(tmp_path, command, option):
    """Checked before the database is opened: no database is involved."""
    with _port_taken() as port:
        args = [part.format(port=port, free=free_port()) for part in command]
        result = _shopctl(*args, env={"DATABASE_URL": "sqlite:///none.db"}, cwd=tmp_path)
    assert result.returncode == 1
    output = _clean(result)
    assert f"port {port} is already in use; stop the other server or pass {option}" in output
    assert " on http://" not in output  # no banner for a server that is not there


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_url(request, tmp_path):
    """An existing database with no tables in it."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        path.touch()
        yield f"sqlite:///{path}"
        return
    with _postgres_database() as url:
        yield url


@pytest.mark.parametrize(
    "command",
    [("orders", "list"), ("events", "list"), ("products", "list"), ("users", "list")],
)
def test_an_unmigrated_database_says_to_migrate(unmigrated_url, tmp_path, command):
    result = _shopctl(*command, env={"DATABASE_URL": unmigrated_url}, cwd=tmp_path)
    assert result.returncode == 1
    assert NO_TABLES in _clean(result)


def test_serve_refuses_an_unmigrated_database(unmigrated_url, tmp_path):
    result = _shopctl("serve", "--port", str(free_port()), env={"DATABASE_URL": unmigrated_url})
    assert result.returncode == 1
    assert NO_TABLES in _clean(result)


@pytest.mark.parametrize(
    "command",
    [
        ("orders", "list"),
        ("users", "create", "x@example.com", "--password-stdin"),
        ("doctor",),
        ("migrate", "--list"),
        ("serve", "--port", "0"),
    ],
)
def test_no_command_but_migrate_creates_a_sqlite_file(tmp_path, command):
    path = tmp_path / "shopctl.db"
    env = {"DATABASE_URL": "sqlite:///shopctl.db"}
    args = [str(free_port()) if part == "0" else part for part in command]
    result = _shopctl(*args, env=env, cwd=tmp_path, input="Str0ng!Pass\n")
    _clean(result)
    assert not path.exists()
    if command != ("migrate", "--list"):
        assert result.returncode == 1
        assert str(path) in "".join((result.stdout + result.stderr).split())  # may wrap
        assert "shopctl migrate" in result.stdout + result.stderr
    assert _shopctl("migrate", env=env, cwd=tmp_path).returncode == 0
    assert path.exists()


def test_sqlite_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a SQLite database, but a file of the same name" * 100)
    result = _shopctl("orders", "list", env={"DATABASE_URL": f"sqlite:///{path}"})
    assert result.returncode == 1
    output = _clean(result)
    assert str(path) in output and "not a database" in output, output
