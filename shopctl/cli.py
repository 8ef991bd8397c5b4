"""The `shopctl` command. Only Typer is imported here, so `shopctl --help` stays instant."""

from __future__ import annotations

import typer

from shopctl import __version__
from shopctl.commands import (
    api,
    db,
    disputes,
    doctor,
    events,
    fulfilment,
    orders,
    payments,
    products,
    sandbox,
    serve,
    shipping,
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
orders.app.command("ship")(fulfilment.ship)
orders.app.add_typer(fulfilment.shipments, name="shipments")
app.add_typer(orders.app, name="orders")
app.add_typer(events.app, name="events")
app.add_typer(payments.app, name="payments")
app.add_typer(disputes.app, name="disputes")
app.add_typer(api.app, name="api")
app.add_typer(shipping.app, name="shipping")


def _whole_summaries(group: typer.Typer) -> None:
    """Each command's summary in a listing is its help's whole first line: click would
    cut it at the first full stop or at 45 characters ("…the same rules...")."""
    for command in group.registered_commands:
        text = command.help or (command.callback.__doc__ if command.callback else None)
        if command.short_help is None and text:
            command.short_help = text.strip().splitlines()[0]
    for subgroup in group.registered_groups:
        info = subgroup.typer_instance.info  # help given to typer.Typer(help=…)
        if isinstance(info.help, str) and not isinstance(info.short_help, str):
            info.short_help = info.help.strip().splitlines()[0]
        _whole_summaries(subgroup.typer_instance)


_whole_summaries(app)
