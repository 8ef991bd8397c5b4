"""`shopctl payments`: compare our payments with Stripe."""

from __future__ import annotations

import typer

from shopctl.commands.common import bootstrap, console, handle_errors, print_json

app = typer.Typer(
    help="Payments at Stripe: reconcile, settle flagged payments.", no_args_is_help=True
)


@app.command("reconcile")
@handle_errors
def reconcile(
    apply: bool = typer.Option(False, "--apply", help="Fix what can be fixed from Stripe's data."),
    days: int = typer.Option(30, min=1, max=365, help="Orders created in the last N days."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Report every difference between our payments and Stripe, each with its fix.

    Paid at Stripe but open here, expired there but unpaid here, refunds that differ,
    refunds whose answer never came, and payments flagged for review (each with the
    `payments settle` command that settles it). Example: shopctl payments reconcile --apply
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
    from rich.markup import escape
    from rich.table import Table

    table = Table("order", "kind", "detail", "fix" if not apply else "applied")
    for gap in gaps:  # details quote what Stripe (or a forged event) said: not markup
        table.add_row(
            gap.order_id,
            gap.kind,
            escape(gap.detail),
            escape(gap.fix if not apply else ("yes" if gap.applied else "no: " + gap.fix)),
        )
    out.print(table)
    if not apply:
        out.print(f"{len(gaps)} difference(s); run with --apply to fix them.")


@handle_errors
def refund(
    order_id: str = typer.Argument(..., help="The order to refund."),
    amount: int = typer.Option(None, min=1, help="Cents to refund (default: all not refunded)."),
    reason: str = typer.Option(None, help="A note kept in the refund's metadata at Stripe."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Refund a paid order at Stripe, fully or partly (registered as `orders refund`).

    A retry never refunds twice. Example: shopctl orders refund 3f2a… --amount 500 --yes
    """
    from shopctl.commands.common import confirm
    from shopctl.schemas import OrderRef, validate
    from shopctl.services.payments.refunds import refund_order

    order_id = str(validate(OrderRef, {"orderId": order_id}).orderId)
    settings = bootstrap()
    what = f"{amount} cents of" if amount else "everything not yet refunded on"
    confirm(f"Refund {what} order {order_id} at Stripe?", yes)
    result = refund_order(settings, order_id, amount=amount, reason=reason, actor="cli")
    if as_json:
        return print_json(result)
    pending = " (pending at Stripe)" if result["status"] == "PENDING" else ""
    console().print(
        f"Refunded {result['amountCents']} cents ({result['refundId']}){pending}; "
        f"{result['refundedCents']} refunded in all."
    )


@app.command("settle")
@handle_errors
def settle(
    order_id: str = typer.Argument(..., help="The order whose flagged payment to settle."),
    refund: bool = typer.Option(
        False, "--refund", help="Refund the flagged money at Stripe, in full."
    ),
    dismiss: bool = typer.Option(
        False, "--dismiss", help="Close the review without a refund (nothing to give back)."
    ),
    note: str = typer.Option(None, help="Why (required with --dismiss)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Settle a payment flagged for review: money Stripe reported that did not match the
    order (amount, currency, session or PaymentIntent). The order never moved for it.

    Example: shopctl payments settle 3f2a… --refund --yes
    """
    from shopctl.commands.common import confirm, usage_error
    from shopctl.schemas import OrderRef, validate
    from shopctl.services.payments.settle import settle_reviews

    if refund == dismiss:
        usage_error("give exactly one of --refund or --dismiss")
    order_id = str(validate(OrderRef, {"orderId": order_id}).orderId)
    settings = bootstrap()
    action = "Refund the flagged money of" if refund else "Dismiss the review of"
    confirm(f"{action} order {order_id}?", yes)
    settled = settle_reviews(settings, order_id, refund=refund, note=note, actor="cli")
    if as_json:
        return print_json(settled)
    for review in settled:
        line = f"Review {review['id']}: {review['status']} ({review['note']})"
        console().print(line, markup=False)
