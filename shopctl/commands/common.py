"""What every command needs: settings and database, errors turned into exit codes, output."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from typing import Any

import typer

EXIT_FAILED = 1
EXIT_USAGE = 2
# Done here as far as it could be, but Stripe could not be reached or did not confirm
# (a cancel or expiry happened locally; a refund, sync or reconcile changed nothing).
EXIT_STRIPE_UNREACHABLE = 3


def _stderr(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(
        message, markup=False, style="bold red", soft_wrap=True
    )


def fail(message: str, code: int = EXIT_FAILED):
    """Print `message` for the operator and stop with `code`."""
    _stderr(f"Error: {message}")
    raise typer.Exit(code)


def usage_error(message: str):
    fail(message, EXIT_USAGE)


def stripe_warning(message: str):
    """The work was done here, Stripe's side was not: say what follows, exit 3."""
    from rich.console import Console

    Console(stderr=True, highlight=False).print(
        f"Warning: {message}", markup=False, style="bold yellow", soft_wrap=True
    )
    raise typer.Exit(EXIT_STRIPE_UNREACHABLE)


def bootstrap(*, create: bool = False, schema: bool = True):
    """Load settings and open the database; returns the settings.

    Only `shopctl migrate` passes `create`: no other command leaves a new, empty SQLite
    file behind. With `schema`, a database without shopctl's tables stops the command
    with a message that says to migrate (rather than "no such table" half-way).
    """
    from shopctl.config import load_settings
    from shopctl.db import init_database, require_schema

    settings = load_settings()
    settings.check_safe()
    init_database(settings.database_url, max_connections=8, create=create)
    if schema:
        require_schema(settings.database_url)
    start_logging(settings)
    return settings


def start_logging(settings) -> None:
    """Business events (transitions, refunds, webhook outcomes) as log lines on stderr, in
    LOG_FORMAT, as the server writes them: what cron mails or ships is the same shape.
    The process's own stderr, never a test runner's capture of sys.stderr. A process
    that runs a command in-process with its logging already set up (pytest, a script)
    keeps it: the lines go to its root handlers instead."""
    from shopctl import logs
    from shopctl.services.system import business_log

    if logging.getLogger().handlers:
        logging.getLogger("shopctl").setLevel(logging.INFO)
    else:
        logs.configure(settings.log_format, sys.__stderr__ or sys.stderr)
    business_log.install()


def handle_errors(command):
    """Translate domain and database errors into a one-line message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from peewee import DatabaseError

        from shopctl.errors import InvalidInput, ShopError, StripeUnreachable

        try:
            return command(*args, **kwargs)
        except InvalidInput as exc:
            details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)
            fail(f"{exc.message}: {details}", EXIT_USAGE)
        except StripeUnreachable as exc:
            fail(exc.message, EXIT_STRIPE_UNREACHABLE)
        except ShopError as exc:
            fail(exc.message)
        except DatabaseError as exc:
            fail(f"database error ({type(exc).__name__}) {_where()}: {_first_line(exc)}")
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("SHOPCTL_DEBUG"):
                raise
            fail(f"unexpected {type(exc).__name__}; rerun with SHOPCTL_DEBUG=1 for details")

    return wrapper


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _where() -> str:
    """Which database a database error came from: the SQLite file, or PostgreSQL's."""
    from shopctl.db import current_url, describe

    url = current_url()
    return f"in {describe(url)}" if url else ""


def port_in_use(port: int, option: str = "--port") -> str:
    return f"port {port} is already in use; stop the other server or pass {option}"


def ensure_port_free(host: str, port: int, option: str = "--port") -> None:
    """Stop with a clear message if `host:port` cannot be listened on (before any banner).

    The probe binds as Sanic does (SO_REUSEADDR), so a port left in TIME_WAIT passes and
    only a live listener fails it; a server that takes the port meanwhile is still caught
    where the server binds (see `serve`).
    """
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        usage_error(f"cannot listen on {host}: {exc}")
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(port_in_use(port, option))
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def console():
    from rich.console import Console

    return Console(highlight=False)


CURSOR_HELP = (
    "Continue after the page that printed this cursor; '' starts a cursor walk "
    "(--json then prints {data, meta: {limit, nextCursor}})."
)


def print_page_json(rows: list, meta: dict, cursor: str | None) -> None:
    """A listing's page as `--json`: the rows as it always printed them or, walking with
    --cursor, the API's shape, so a script finds the next cursor in meta.nextCursor."""
    print_json(rows if cursor is None else {"data": rows, "meta": meta})


def print_next_page(next_cursor: str | None) -> None:
    """Under a listing's table: the option that shows the next page, unwrapped to copy."""
    if next_cursor:
        console().print(f"next page: --cursor {next_cursor}", markup=False, soft_wrap=True)


def confirm(question: str, yes: bool) -> None:
    """Ask before changing money or stock, unless --yes; a refusal exits 1."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail("refusing to change money or stock without confirmation: pass --yes")
    if not typer.confirm(question, default=False):
        fail("aborted")
