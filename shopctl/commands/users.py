"""`shopctl users`: create, list, promote and deactivate accounts."""

from __future__ import annotations

import sys

import typer

from shopctl.commands.common import bootstrap, console, handle_errors, print_json, usage_error

app = typer.Typer(help="Accounts: create, list, promote, deactivate.", no_args_is_help=True)


def _read_password(password_stdin: bool) -> str:
    if not password_stdin:
        return typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        usage_error("--password-stdin: no password on standard input")
    return password


@app.command("create")
@handle_errors
def create(
    email: str = typer.Argument(
        ..., metavar="EMAIL", help="The account's email (stored lower-cased)."
    ),
    admin: bool = typer.Option(False, "--admin", help="Create an ADMIN instead of a USER."),
    name: str = typer.Option(None, "--name", help="Display name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
) -> None:
    """Create an account, with the same rules as POST /api/v1/user.

    The password is asked for twice, hidden, unless --password-stdin is given.

    \b
    Example: shopctl users create ops@example.com --admin --name "Ops Team"
    Example: printf '%s\\n' "$PASSWORD" | shopctl users create bot@example.com --password-stdin
    """
    settings = bootstrap()
    from shopctl.schemas import Registration, validate
    from shopctl.services.accounts.auth import register

    data = {"email": email, "password": _read_password(password_stdin), "name": name}
    user = register(settings, validate(Registration, data), role="ADMIN" if admin else "USER")
    console().print(f"Created {user['role']} {user['email']} (id {user['id']})")


@app.command("list")
@handle_errors
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    limit: int = typer.Option(None, min=1, help="Show at most this many."),
) -> None:
    """List accounts, oldest first; deactivated ones are marked.

    Example: shopctl users list --json
    """
    bootstrap()
    from shopctl.services.accounts.users import list_users

    users = list_users(limit)
    if as_json:
        print_json(users)
        return
    _print_table(users)


def _print_table(users: list[dict]) -> None:
    from shopctl.commands.tables import short_ids, table, text, when, whole, wrapped

    ids = short_ids([user["id"] for user in users])
    listing = table(
        whole("id"),
        wrapped("email"),
        wrapped("name"),
        whole("role"),
        whole("status"),
        wrapped("created"),
    )
    for user in users:
        status = "deactivated" if user["isDeleted"] else "active"
        listing.add_row(
            ids[user["id"]],
            text(user["email"]),
            text(user["name"]),
            user["role"],
            status,
            when(user["createdAt"]),
        )
    out = console()
    out.print(listing)
    out.print(f"{len(users)} user(s)")


@app.command("promote")
@handle_errors
def promote(
    email: str = typer.Argument(..., metavar="EMAIL", help="The account to make an ADMIN."),
) -> None:
    """Give an account the ADMIN role (it may then manage the catalog).

    Example: shopctl users promote alice@example.com
    """
    bootstrap()
    from shopctl.services.accounts.users import promote as promote_user

    user, changed = promote_user(email)
    verb = "is now" if changed else "was already"
    console().print(f"{user['email']} {verb} ADMIN")


@app.command("deactivate")
@handle_errors
def deactivate(
    email: str = typer.Argument(..., metavar="EMAIL", help="The account to deactivate."),
) -> None:
    """Deactivate an account: it can no longer log in, and its sessions end now.

    Example: shopctl users deactivate mallory@example.com
    """
    bootstrap()
    from shopctl.services.accounts.users import deactivate as deactivate_user

    user, revoked = deactivate_user(email)
    console().print(f"Deactivated {user['email']}; {revoked} session(s) revoked")
