"""`shopctl users`: the operator's door to the same account rules as the API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shopctl.models import RefreshSession, User

PASSWORD = "Passw0rd!"


def _login(settings, email: str) -> dict:
    from shopctl.schemas import Login, validate
    from shopctl.services.accounts import auth

    credentials = validate(Login, {"email": email, "password": PASSWORD})
    return auth.login(settings, credentials, "127.0.0.1")


def test_create_from_stdin_uses_the_registration_rules(cli, settings):
    result = cli(
        "users",
        "create",
        " Ops@Example.com ",
        "--admin",
        "--name",
        "Ops",
        "--password-stdin",
        input=f"{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created ADMIN ops@example.com" in result.output
    user = User.get(User.email == "ops@example.com")
    assert (user.role, user.name) == ("ADMIN", "Ops")
    assert user.password_hash.startswith(f"$2b$0{settings.bcrypt_salt_rounds}$")
    assert _login(settings, "ops@example.com")["user"]["role"] == "ADMIN"


def test_create_prompts_twice_without_echo(cli):
    result = cli("users", "create", "bob@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output
    assert User.get(User.email == "bob@example.com").role == "USER"


def test_mismatched_confirmation_creates_nobody(cli):
    result = cli("users", "create", "bob@example.com", input=f"{PASSWORD}\nOther-pass1\n")
    assert result.exit_code != 0
    assert User.select().count() == 0


@pytest.mark.parametrize(
    "email, password, messages",
    [
        ("bob@example.com", "weak", ["at least 8 characters", "uppercase", "number", "special"]),
        ("not-an-email", PASSWORD, ["email: Invalid email address"]),
    ],
)
def test_invalid_input_is_a_usage_error_naming_every_problem(cli, email, password, messages):
    result = cli("users", "create", email, "--password-stdin", input=f"{password}\n")
    assert result.exit_code == 2
    for message in messages:
        assert message in result.output
    assert "Traceback" not in result.output
    assert User.select().count() == 0


def test_duplicate_email_in_another_case_fails(cli):
    assert (
        cli(
            "users", "create", "bob@example.com", "--password-stdin", input=f"{PASSWORD}\n"
        ).exit_code
        == 0
    )
    result = cli("users", "create", "BOB@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert User.select().count() == 1


def test_empty_stdin_password_is_a_usage_error(cli):
    result = cli("users", "create", "bob@example.com", "--password-stdin", input="")
    assert result.exit_code == 2
    assert User.select().count() == 0


def test_list_as_table_and_json_without_hashes(cli):
    for email in ("a@example.com", "b@example.com"):
        cli("users", "create", email, "--password-stdin", input=f"{PASSWORD}\n")
    table = cli("users", "list")
    assert table.exit_code == 0
    assert "a@example.com" in table.output and "2 user(s)" in table.output
    listing = cli("users", "list", "--json")
    users = json.loads(listing.output)
    assert [u["email"] for u in users] == ["a@example.com", "b@example.com"]
    assert set(users[0]) == {"id", "email", "name", "role", "isDeleted", "createdAt", "updatedAt"}
    assert "$2b$" not in listing.output and "$2b$" not in table.output


def test_promote_makes_an_admin_and_is_idempotent(cli):
    cli("users", "create", "a@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    first = cli("users", "promote", "A@example.com")
    assert first.exit_code == 0 and "is now ADMIN" in first.output
    again = cli("users", "promote", "a@example.com")
    assert again.exit_code == 0 and "already ADMIN" in again.output
    assert User.get(User.email == "a@example.com").role == "ADMIN"


@pytest.mark.parametrize("command", ["promote", "deactivate"])
def test_unknown_email_fails_with_exit_1(cli, command):
    result = cli("users", command, "nobody@example.com")
    assert result.exit_code == 1
    assert "No user with email nobody@example.com" in result.output


def test_deactivate_revokes_sessions_and_blocks_login(cli, settings):
    from shopctl.errors import Unauthorized
    from shopctl.services.accounts import auth

    cli("users", "create", "a@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    tokens = _login(settings, "a@example.com")
    result = cli("users", "deactivate", "a@example.com")
    assert result.exit_code == 0
    assert "1 session(s) revoked" in result.output
    assert User.get(User.email == "a@example.com").is_deleted
    assert RefreshSession.select().where(~RefreshSession.revoked).count() == 0
    with pytest.raises(Unauthorized):
        auth.refresh(settings, tokens["refreshToken"])
    with pytest.raises(Unauthorized):
        _login(settings, "a@example.com")


def test_every_users_command_has_help_with_an_example(cli):
    for command in ("create", "list", "promote", "deactivate"):
        result = cli("users", command, "--help")
        assert result.exit_code == 0
        assert "Example: shopctl users" in result.output


def test_users_commands_import_nothing_heavy():
    code = (
        "import sys, shopctl.commands.users\n"
        "heavy = {'sanic', 'pydantic', 'bcrypt', 'jwt', 'peewee'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
