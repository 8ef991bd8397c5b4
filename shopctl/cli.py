"""The `shopctl` command. Only Typer is imported here, so `shopctl --help` stays instant."""

from __future__ import annotations

import typer

from shopctl import __version__
from shopctl.commands import (
    api,
    db,
    doctor,
    events,
    orders,
    payments,
    products,
    sandbox,
    serve,
    users,
)

app = typer.Typer(
    name="shopctl",
    help="Run a shop's backend: the REST API, the Stripe sandbox and the operator's tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shopctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Configuration comes from the environment, then ./.env, then defaults."""


app.command("migrate")(db.migrate)
app.command("serve")(serve.serve)
app.command("sandbox")(sandbox.sandbox)
app.command("doctor")(doctor.doctor)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(products.app, name="products")
orders.app.command("refund")(payments.refund)
app.add_typer(orders.app, name="orders")
app.add_typer(events.app, name="events")
app.add_typer(payments.app, name="payments")
app.add_typer(api.app, name="api")
