"""`shopctl orders`: list, show, cancel and expire orders."""

from __future__ import annotations

import typer

from shopctl.commands.common import (
    bootstrap,
    confirm,
    console,
    fail,
    handle_errors,
    print_json,
    stripe_warning,
)

app = typer.Typer(
    help="Orders: inspect, cancel, expire overdue reservations.", no_args_is_help=True
)


def _money(minor: int, currency: str) -> str:
    from shopctl.money import format_minor_units

    return format_minor_units(minor, currency)


def _checked_id(order_id: str) -> str:
    from shopctl.schemas import OrderRef, validate

    return str(validate(OrderRef, {"orderId": order_id}).orderId)


@app.command("list")
@handle_errors
def list_orders(
    status: str = typer.Option(None, help="Only this status, e.g. UNPAID or PAID."),
    user: str = typer.Option(None, help="Only this buyer: an email or a user id."),
    since: str = typer.Option(None, help="Created since: 24h, 7d or an ISO date (UTC)."),
    limit: int = typer.Option(50, help="At most this many orders (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List orders, newest first.

    Example: shopctl orders list --status UNPAID --since 24h
    """
    from shopctl.schemas import OrderSearch, validate
    from shopctl.services.orders.reports import search_orders

    filters = {"status": status, "user": user, "since": since, "limit": limit}
    search = validate(OrderSearch, {k: v for k, v in filters.items() if v is not None})
    bootstrap()
    rows = search_orders(search)
    if as_json:
        return print_json(rows)
    _print_table(rows)


def _print_table(rows: list[dict]) -> None:
    from rich.table import Column, Table

    # ids stay on one line: operators copy them into `orders show`
    table = Table(
        Column("id", no_wrap=True), "created", "status", "buyer", "lines", "total", "expires"
    )
    for row in rows:
        table.add_row(
            row["id"],
            row["createdAt"][:19].replace("T", " "),
            row["status"],
            row["userEmail"],
            str(row["lines"]),
            _money(row["amountCents"], row["currency"]),
            row["expiresAt"][:19].replace("T", " "),
        )
    out = console()
    out.print(table)
    out.print(f"{len(rows)} order(s)")


@app.command("show")
@handle_errors
def show(
    order_id: str = typer.Argument(..., metavar="ID", help="The order's id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one order: items, totals, payment and Stripe ids, and its full history.

    Example: shopctl orders show 0b7c…-…
    """
    from shopctl.services.orders.reports import order_details

    order_id = _checked_id(order_id)
    bootstrap()
    details = order_details(order_id)
    if as_json:
        return print_json(details)
    _print_details(details)


def _print_details(order: dict) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]Order {order['id']}[/]  {order['status']}  buyer {order['userEmail']}")
    out.print(
        f"created {order['createdAt']}  expires {order['expiresAt']}  "
        f"pay later: {'yes' if order['payLater'] else 'no'}  "
        f"stock released: {'yes' if order['stockReleased'] else 'no'}"
    )
    items = Table("product", "quantity", "unit price", "subtotal")
    for item in order["items"]:
        items.add_row(
            item["productName"],
            str(item["quantity"]),
            _money(item["priceCents"], order["currency"]),
            _money(item["priceCents"] * item["quantity"], order["currency"]),
        )
    out.print(items)
    out.print(f"total {_money(order['amountCents'], order['currency'])}")
    payment = order["payment"] or {}
    for label, key in (
        ("payment", "id"),
        ("status", "status"),
        ("session", "sessionId"),
        ("intent", "paymentIntentId"),
        ("refunded", "refundedCents"),
        ("last error", "lastError"),
        ("url", "paymentUrl"),
    ):
        out.print(f"  {label:<11} {payment.get(key) if payment.get(key) is not None else '-'}")
    history = Table("at", "from", "to", "reason", "actor")
    for row in order["history"]:
        history.add_row(row["at"], row["from"] or "-", row["to"], row["reason"], row["actor"])
    out.print(history)


@app.command("cancel")
@handle_errors
def cancel(
    order_id: str = typer.Argument(..., metavar="ID", help="The order's id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print the canceled order as JSON."),
) -> None:
    """Cancel an unpaid order and put its stock back (the same rules as the API).

    Its Checkout Session is expired at Stripe first. When Stripe cannot be reached (or
    does not confirm), the order is canceled here anyway, the command says what follows
    and exits 3.
    Example: shopctl orders cancel 0b7c…-… --yes
    """
    from shopctl.services.payments.sessions import cancel_order  # closes the Checkout Session first

    order_id = _checked_id(order_id)
    settings = bootstrap()
    confirm(f"Cancel order {order_id} and return its stock?", yes)
    order = cancel_order(settings, order_id, user=None, actor="cli")
    if as_json:
        print_json(order)
    else:
        units = sum(item["quantity"] for item in order["items"])
        console().print(f"Canceled order {order_id}; {units} unit(s) back in stock.")
    if order["stripe"]["message"]:
        stripe_warning(order["stripe"]["message"])


@app.command("expire")
@handle_errors
def expire(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count what would expire; change nothing."
    ),
    batch: int = typer.Option(
        5000, min=1, max=10_000, help="Orders per transaction (bigger clears a backlog faster)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Expire overdue unpaid orders and put their stock back. Run it from cron every minute.

    Safe to run on several hosts at once. Exits 1 if any order failed, 3 if every order
    expired but Stripe could not confirm some of their Checkout Sessions closed.
    Example: * * * * * shopctl orders expire
    """
    from shopctl.services.payments.sessions import expire_overdue  # closes Checkout Sessions first

    settings = bootstrap()
    summary = expire_overdue(settings, batch=batch, dry_run=dry_run)
    if as_json:
        print_json(summary.as_json())
    else:
        console().print(summary.line())
        for error in summary.errors[:10]:
            console().print(f"  {error}", markup=False)
        for warning in summary.warnings[:10]:
            console().print(f"  {warning}", markup=False)
    if not summary.ok:
        fail(f"{summary.failed} order(s) could not be expired")
    if summary.unconfirmed:
        stripe_warning(
            f"{summary.unconfirmed} order(s) expired here, but Stripe could not be reached "
            "or did not confirm their Checkout Sessions closed. Those sessions may stay open "
            "until they expire at Stripe; a payment in between is refunded or re-reserved "
            "as a late payment."
        )
