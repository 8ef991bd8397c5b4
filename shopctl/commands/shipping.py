"""`shopctl shipping rates`: the shipping options Checkout offers (with SHIPPING_COUNTRIES)."""

from __future__ import annotations

import typer

from shopctl.commands.common import bootstrap, console, handle_errors, print_json

app = typer.Typer(help="Shipping: the rates Checkout offers.", no_args_is_help=True)
rates = typer.Typer(
    help="Shipping rates: add, list, disable (offered while SHIPPING_COUNTRIES is set).",
    no_args_is_help=True,
)
app.add_typer(rates, name="rates")


def _money(minor: int, currency: str) -> str:
    from shopctl.money import format_minor_units

    return format_minor_units(minor, currency)


def _estimate(rate: dict) -> str:
    low, high = rate["minDays"], rate["maxDays"]
    if low is None and high is None:
        return "-"
    if low is not None and high is not None and low != high:
        return f"{low}-{high} days"
    days = low if low is not None else high
    lead = "at least " if high is None else "up to " if low is None else ""
    return f"{lead}{days} day{'s' if days != 1 else ''}"


@rates.command("add")
@handle_errors
def add(
    name: str = typer.Argument(..., metavar="NAME", help="What the buyer sees, e.g. Standard."),
    amount: int = typer.Option(
        ..., "--amount", help="Price in minor units (cents) of STRIPE_CURRENCY; 0 is free."
    ),
    min_days: int = typer.Option(None, "--min-days", help="Delivery estimate: at least N days."),
    max_days: int = typer.Option(None, "--max-days", help="Delivery estimate: at most N days."),
    as_json: bool = typer.Option(False, "--json", help="Print the new rate as JSON."),
) -> None:
    """Offer a new shipping rate at Checkout (business days for the estimate).

    A rate's price never changes: to change it, add a new rate and disable the old one.
    At most 5 rates are active at once (Stripe Checkout offers up to 5).

    \b
    Examples: shopctl shipping rates add Standard --amount 500 --min-days 3 --max-days 5
              shopctl shipping rates add "Free pickup" --amount 0
    """
    from shopctl.services.orders.shipping import add_rate

    settings = bootstrap()
    rate = add_rate(name, amount, settings.stripe_currency, min_days=min_days, max_days=max_days)
    if as_json:
        return print_json(rate)
    console().print(
        f"Added shipping rate {rate['id']}: {rate['name']}, "
        f"{_money(rate['amountCents'], rate['currency'])}, {_estimate(rate)}",
        markup=False,
    )


@rates.command("list")
@handle_errors
def list_rates(
    active: bool = typer.Option(False, "--active", help="Only the rates offered now."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List shipping rates, the disabled ones too (orders may name them).

    Example: shopctl shipping rates list --json
    """
    from shopctl.services.orders.shipping import list_rates as rates_of

    bootstrap()
    found = rates_of(active_only=active)
    if as_json:
        return print_json(found)
    from shopctl.commands.tables import table, text, whole, wrapped

    listing = table(
        whole("id", right=True),
        wrapped("name"),
        whole("amount", right=True),
        whole("estimate"),
        whole("status"),
    )
    for rate in found:
        listing.add_row(
            str(rate["id"]),
            text(rate["name"]),
            _money(rate["amountCents"], rate["currency"]),
            _estimate(rate),
            "active" if rate["active"] else "disabled",
        )
    out = console()
    out.print(listing)
    out.print(f"{len(found)} rate(s)")


@rates.command("disable")
@handle_errors
def disable(
    rate_id: int = typer.Argument(..., metavar="RATE_ID", help="Its id (shipping rates list)."),
) -> None:
    """Stop offering a shipping rate; sessions already open with it are still accepted.

    Example: shopctl shipping rates disable 2
    """
    from shopctl.services.orders.shipping import disable_rate

    bootstrap()
    rate, changed = disable_rate(rate_id)
    verb = "Disabled" if changed else "Already disabled:"
    console().print(f"{verb} shipping rate {rate['id']} ({rate['name']})", markup=False)
