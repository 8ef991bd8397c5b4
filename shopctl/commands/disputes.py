"""`shopctl disputes`: chargebacks and inquiries Stripe reported, and their orders."""

from __future__ import annotations

import typer

from shopctl.commands.common import bootstrap, console, handle_errors, print_json

app = typer.Typer(
    help="Disputes (chargebacks, inquiries) Stripe reported: list, show.", no_args_is_help=True
)


def _money(minor: int, currency: str) -> str:
    from shopctl.money import format_minor_units

    return format_minor_units(minor, currency)


@app.command("list")
@handle_errors
def list_disputes(
    open_only: bool = typer.Option(False, "--open", help="Only disputes not closed yet."),
    limit: int = typer.Option(100, min=1, max=10_000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List disputes, newest first, with their order and evidence deadline.

    Example: shopctl disputes list --open
    """
    from shopctl.services.payments.dispute_views import list_disputes as query

    bootstrap()
    rows = query(open_only=open_only, limit=limit)
    if as_json:
        return print_json(rows)
    _print_table(rows)


def _print_table(rows: list[dict]) -> None:
    from shopctl.commands.tables import short_ids, table, text, when, whole, wrapped

    ids = short_ids([row["id"] for row in rows])
    orders = short_ids([row["orderId"] for row in rows if row["orderId"]])
    listing = table(
        whole("id"),
        whole("status"),
        wrapped("reason"),
        whole("amount", right=True),
        whole("order"),
        wrapped("evidence due"),
    )
    for row in rows:
        amount = _money(row["amountCents"], row["currency"]) + ("!" if row["problem"] else "")
        listing.add_row(
            ids[row["id"]],
            row["status"],
            text(row["reason"].replace("_", " ")),  # wraps at words, not mid-word
            amount,
            orders[row["orderId"]] if row["orderId"] else "unlinked",
            when(row["evidenceDueBy"]) or "-",
        )
    out = console()
    out.print(listing)
    out.print(f"{len(rows)} dispute(s)" + ("; ! amount flagged" if _flagged(rows) else ""))


def _flagged(rows: list[dict]) -> bool:
    return any(row["problem"] for row in rows)


@app.command("show")
@handle_errors
def show(
    dispute_id: str = typer.Argument(
        ...,
        metavar="DISPUTE_ID",
        help="The dispute's id (du_…), or du_ and its first 6+ characters.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one dispute: status, amounts, evidence deadline, its order and fraud warnings.

    Example: shopctl disputes show du_1MtJUT2e
    """
    from shopctl.services.payments.dispute_views import dispute_details, find_dispute_id

    bootstrap()
    details = dispute_details(find_dispute_id(dispute_id))
    if as_json:
        return print_json(details)
    _print_details(details)


def _print_details(row: dict) -> None:
    out = console()
    money = _money(row["amountCents"], row["currency"])
    out.print(f"Dispute {row['id']}  {row['status']}  {row['reason']}  {money}", markup=False)
    order = row["order"]
    if order is None:
        out.print(
            f"unlinked: PaymentIntent {row['paymentIntentId'] or '-'} is not one of ours",
            markup=False,
        )
    else:
        paid = _money(order["amountCents"], order["currency"])
        out.print(
            f"order {order['id']}  {order['status']}  {paid}  buyer {order['userEmail']}  "
            f"disputed: {'yes' if order['disputed'] else 'no'}",
            markup=False,
        )
    for label, value in (
        ("evidence due", row["evidenceDueBy"]),
        ("withdrawn", _money(row["fundsWithdrawnCents"], row["currency"])),
        ("reinstated", _money(row["fundsReinstatedCents"], row["currency"])),
        ("problem", row["problem"]),
        ("charge", row["chargeId"]),
        ("intent", row["paymentIntentId"]),
        ("opened", row["stripeCreatedAt"]),
        ("last event", row["lastEventId"]),
        ("updated", row["updatedAt"]),
    ):
        out.print(f"  {label:<13} {value if value is not None else '-'}", markup=False)
    for warning in row["fraudWarnings"]:
        state = "actionable" if warning["actionable"] else "not actionable"
        out.print(
            f"early fraud warning {warning['id']} ({warning['fraudType']}): {state}", markup=False
        )
