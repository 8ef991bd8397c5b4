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
    `payments settle` command that settles it).

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
    amount: int = typer.Option(
        None, min=1, help="Cents to refund (default: the lines' worth, or all not refunded)."
    ),
    line: list[str] = typer.Option(
        None,
        "--line",
        help="ITEM:QTY, units of an order item (its id or 6+ first characters); repeatable.",
    ),
    restock: bool = typer.Option(
        False, "--restock", help="Put the lines' units back in stock once Stripe accepts."
    ),
    shipping: bool = typer.Option(
        False, "--shipping", help="Also refund the order's shipping amount (once)."
    ),
    reason: str = typer.Option(None, help="A note kept in the refund's metadata at Stripe."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Refund a paid order at Stripe, fully or partly, or some of its lines (a return).

    A retry never refunds twice. With --line, the amount is what the lines cost (never
    more than is still refundable) and no line is refunded beyond what was ordered.

    \b
    Example: shopctl orders refund 3f2a9c01 --amount 500 --yes
    Example: shopctl orders refund 3f2a9c01 --line 8d41c2:1 --restock --shipping --yes
    """
    from shopctl.commands.common import confirm, usage_error
    from shopctl.commands.fulfilment import parse_lines
    from shopctl.services.orders.reports import find_order_id
    from shopctl.services.payments.refunds import RefundAsk, request_refund

    lines = parse_lines(line)
    if restock and lines is None:
        usage_error("--restock needs the lines to restock: --line ITEM:QTY")
    settings = bootstrap()
    order_id = find_order_id(order_id)
    what = f"{amount} cents of" if amount else "everything not yet refunded on"
    if lines is not None or shipping:
        units = f"{sum(lines.values())} unit(s)" if lines else ""
        what = " and ".join(part for part in (units, "the shipping" if shipping else "") if part)
        what += " of"
    confirm(f"Refund {what} order {order_id} at Stripe?", yes)
    ask = RefundAsk(amount=amount, reason=reason, lines=lines, restock=restock, shipping=shipping)
    result, _ = request_refund(settings, order_id, ask, "cli")
    if as_json:
        return print_json(result)
    pending = " (pending at Stripe)" if result["status"] == "PENDING" else ""
    restocked = sum(row["quantity"] for row in result["lines"] if row["restocked"])
    console().print(
        f"Refunded {result['amountCents']} cents ({result['refundId']}){pending}; "
        f"{result['refundedCents']} refunded in all."
        + (f" {restocked} unit(s) back in stock." if restocked else "")
    )


@app.command("settle")
@handle_errors
def settle(
    order_id: str = typer.Argument(
        ...,
        metavar="ORDER_ID",
        help="The order whose flagged payment to settle, or its 6+ first characters.",
    ),
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

    \b
    Example: shopctl payments settle 3f2a41c0 --refund --yes
    """
    from shopctl.commands.common import confirm, usage_error
    from shopctl.services.orders.reports import find_order_id
    from shopctl.services.payments.settle import settle_reviews

    if refund == dismiss:
        usage_error("give exactly one of --refund or --dismiss")
    settings = bootstrap()
    order_id = find_order_id(order_id)
    action = "Refund the flagged money of" if refund else "Dismiss the review of"
    confirm(f"{action} order {order_id}?", yes)
    settled = settle_reviews(settings, order_id, refund=refund, note=note, actor="cli")
    if as_json:
        return print_json(settled)
    for review in settled:
        line = f"Review {review['id']}: {review['status']} ({review['note']})"
        console().print(line, markup=False)
