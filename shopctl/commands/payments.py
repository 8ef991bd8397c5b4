"""`shopctl payments`: compare our payments with Stripe."""

from __future__ import annotations

import typer

from shopctl.commands.common import bootstrap, console, handle_errors, print_json

app = typer.Typer(help="Payments at Stripe: reconcile.", no_args_is_help=True)


@app.command("reconcile")
@handle_errors
def reconcile(
    apply: bool = typer.Option(False, "--apply", help="Fix what can be fixed from Stripe's data."),
    days: int = typer.Option(30, min=1, max=365, help="Orders created in the last N days."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Report every difference between our payments and Stripe, each with its fix.

    Paid at Stripe but open here, expired there but unpaid here, refunded in the
    Dashboard but not here, amount mismatches.

    \b
    Example: shopctl payments reconcile --apply
    """
    from datetime import timedelta

    from shopctl.services.payments.reconcile import reconcile as run

    gaps = run(bootstrap(), apply=apply, window=timedelta(days=days))
    if as_json:
        return print_json([gap.as_json() for gap in gaps])
    out = console()
    if not gaps:
        out.print("[green]Everything matches Stripe.[/]")
        return
    from shopctl.commands.tables import short_ids, table, text, whole, wrapped

    ids = short_ids([gap.order_id for gap in gaps])
    listing = table(
        whole("order"), whole("kind"), wrapped("detail"), wrapped("applied" if apply else "fix")
    )
    for gap in gaps:
        listing.add_row(
            ids[gap.order_id],
            gap.kind,
            text(gap.detail),
            text(gap.fix if not apply else ("yes" if gap.applied else "no: " + gap.fix)),
        )
    out.print(listing)
    if not apply:
        out.print(f"{len(gaps)} difference(s); run with --apply to fix them.")


@handle_errors
def refund(
    order_id: str = typer.Argument(
        ..., metavar="ORDER_ID", help="The order's id, or its first 6+ characters."
    ),
    amount: int = typer.Option(None, min=1, help="Cents to refund (default: all not refunded)."),
    reason: str = typer.Option(None, help="A note kept in the refund's metadata at Stripe."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Refund a paid order at Stripe, fully or partly.

    A retry never refunds twice.

    \b
    Example: shopctl orders refund 3f2a9c01 --amount 500 --yes
    """
    from shopctl.commands.common import confirm
    from shopctl.services.orders.reports import find_order_id
    from shopctl.services.payments.refunds import refund_order

    settings = bootstrap()
    order_id = find_order_id(order_id)
    what = f"{amount} cents of" if amount else "everything not yet refunded on"
    confirm(f"Refund {what} order {order_id} at Stripe?", yes)
    result = refund_order(settings, order_id, amount=amount, reason=reason, actor="cli")
    if as_json:
        return print_json(result)
    console().print(
        f"Refunded {result['amountCents']} cents ({result['refundId']}); "
        f"{result['refundedCents']} refunded in all."
    )
