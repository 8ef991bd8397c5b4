"""`shopctl orders`: list, show, cancel and expire orders."""

from __future__ import annotations

import typer

from shopctl.commands.common import (
    CURSOR_HELP,
    bootstrap,
    confirm,
    console,
    fail,
    handle_errors,
    print_json,
    print_next_page,
    print_page_json,
    stripe_warning,
)

app = typer.Typer(
    help="Orders: inspect, cancel, expire overdue reservations.", no_args_is_help=True
)


ORDER_ID_HELP = "The order's id, or its first 6+ characters."


def _money(minor: int, currency: str) -> str:
    from shopctl.money import format_minor_units

    return format_minor_units(minor, currency)


@app.command("list")
@handle_errors
def list_orders(
    status: str = typer.Option(None, help="Only this status, e.g. UNPAID or PAID."),
    fulfillment: str = typer.Option(
        None, help="Only this fulfilment status, e.g. UNFULFILLED or PARTIALLY_FULFILLED."
    ),
    user: str = typer.Option(
        None, help="Only this buyer: an email, or a user id or its first 6+ characters."
    ),
    since: str = typer.Option(None, help="Created since: 24h, 7d or an ISO date (UTC)."),
    limit: int = typer.Option(50, help="At most this many orders (newest first)."),
    cursor: str = typer.Option(None, "--cursor", help=CURSOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List orders, newest first.

    \b
    Examples: shopctl orders list --status UNPAID --since 24h
              shopctl orders list --limit 500 --cursor '' --json   (then meta.nextCursor)
    """
    from shopctl.schemas import OrderSearch, validate
    from shopctl.services.orders.reports import search_orders

    filters = {"status": status, "fulfillment": fulfillment, "user": user, "since": since}
    filters |= {"limit": limit, "cursor": cursor}
    search = validate(OrderSearch, {k: v for k, v in filters.items() if v is not None})
    bootstrap()
    if search.user and "@" not in search.user:
        from shopctl.services.accounts.users import find_user_id

        search = search.model_copy(update={"user": find_user_id(search.user)})
    rows, next_cursor = search_orders(search)
    if as_json:
        return print_page_json(rows, {"limit": search.limit, "nextCursor": next_cursor}, cursor)
    _print_table(rows)
    print_next_page(next_cursor)


def _print_table(rows: list[dict]) -> None:
    from shopctl.commands.tables import short_ids, table, text, when, whole, wrapped

    ids = short_ids([row["id"] for row in rows])
    listing = table(
        whole("id"),
        wrapped("created"),
        whole("status"),
        wrapped("buyer"),
        whole("lines", right=True),
        whole("total", right=True),
        wrapped("expires"),
    )
    for row in rows:
        listing.add_row(
            ids[row["id"]],
            when(row["createdAt"]),
            row["status"] + (" disputed" if row["disputed"] else ""),
            text(row["userEmail"]),
            str(row["lines"]),
            _money(row["amountCents"], row["currency"]),
            when(row["expiresAt"]),
        )
    out = console()
    out.print(listing)
    out.print(f"{len(rows)} order(s)")


@app.command("show")
@handle_errors
def show(
    order_id: str = typer.Argument(..., metavar="ORDER_ID", help=ORDER_ID_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one order: items, totals, payment and Stripe ids, and its full history.

    Example: shopctl orders show 0b7c41f2
    """
    from shopctl.services.orders.reports import find_order_id, order_details

    bootstrap()
    details = order_details(find_order_id(order_id))
    if as_json:
        return print_json(details)
    _print_details(details)


def _print_details(order: dict) -> None:
    from shopctl.commands.tables import table, text, whole, wrapped

    out = console()
    disputed = "  [red]DISPUTED[/]" if order["disputed"] else ""
    out.print(
        f"[bold]Order {order['id']}[/]  {order['status']}{disputed}  "
        f"{order['fulfillmentStatus']}  buyer {order['userEmail']}"
    )
    out.print(
        f"created {order['createdAt']}  expires {order['expiresAt']}  "
        f"pay later: {'yes' if order['payLater'] else 'no'}  "
        f"stock released: {'yes' if order['stockReleased'] else 'no'}"
    )
    items = table(
        wrapped("product"),
        whole("item"),
        whole("quantity", right=True),
        whole("shipped", right=True),
        whole("refunded", right=True),
        whole("unit price", right=True),
        whole("subtotal", right=True),
    )
    for item in order["items"]:
        items.add_row(
            text(item["productName"]),
            item["id"][:8],
            str(item["quantity"]),
            str(item["shippedQuantity"]),
            str(item["refundedQuantity"]),
            _money(item["priceCents"], order["currency"]),
            _money(item["priceCents"] * item["quantity"], order["currency"]),
        )
    out.print(items)
    out.print(f"total {_money(order['amountCents'], order['currency'])}")
    _print_shipping(out, order)
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
        value = payment.get(key)
        out.print(f"  {label:<11} {value if value is not None else '-'}", markup=False)
    _print_refunds_and_reviews(order)
    for shipment in order["shipments"]:
        units = sum(line["quantity"] for line in shipment["lines"])
        state = f"canceled {shipment['canceledAt']}" if shipment["canceledAt"] else "sent"
        out.print(
            f"  shipment {shipment['id']}: {units} unit(s), {state}, "
            f"{shipment['carrier'] or '-'} {shipment['trackingNumber'] or '-'}",
            markup=False,
        )
    _print_disputes(order)
    history = table(wrapped("at"), whole("from"), whole("to"), wrapped("reason"), wrapped("actor"))
    for row in order["history"]:
        history.add_row(
            row["at"][:19].replace("T", " "),
            row["from"] or "-",
            row["to"],
            text(row["reason"]),
            text(row["actor"]),
        )
    out.print(history)


def _print_shipping(out, order: dict) -> None:
    """The shipping line and the address it goes to (the total above includes it)."""
    shipping = order.get("shipping")
    if not shipping:
        return out.print("shipping   none (nothing ships)")
    rate = shipping["rate"]["name"] or "no rate"
    out.print(
        f"shipping   {_money(shipping['amountCents'], order['currency'])} ({rate})", markup=False
    )
    address = shipping["address"]
    place = " ".join(p for p in (address["postalCode"], address["city"]) if p)
    parts = (address["name"], address["line1"], address["line2"], place, address["state"])
    where = ", ".join(p for p in (*parts, address["country"]) if p)
    out.print(f"ship to    {where or '-'}", markup=False)
    if address["phone"]:
        out.print(f"phone      {address['phone']}", markup=False)


def _print_refunds_and_reviews(order: dict) -> None:
    from rich.markup import escape

    from shopctl.commands.tables import table, text, when, whole, wrapped

    out = console()
    if order.get("refunds"):
        refunds = table(
            whole("refund"),
            wrapped("stripe id"),
            whole("amount", right=True),
            whole("status"),
            wrapped("reason"),
            wrapped("at"),
        )
        for row in order["refunds"]:
            status = row["status"] + (f" ({row['failureReason']})" if row["failureReason"] else "")
            refunds.add_row(
                str(row["id"]),
                text(row["stripeRefundId"] or "-"),
                _money(row["amountCents"], order["currency"]),
                text(status),
                text(row["reason"] or "-"),
                when(row["createdAt"]),
            )
        out.print(refunds)
    for review in order.get("reviews", []):
        colour = "red" if review["status"] == "OPEN" else "dim"
        money = f"{review['amountCents']} {review['currency'] or '?'}"
        ids = ", ".join(i for i in (review["sessionId"], review["paymentIntentId"]) if i)
        what = escape(  # what arrived is Stripe's (or a forger's) text, not markup
            f"{review['reason']}; arrived {money}, {ids or 'no ids'}, "
            f"event {review['eventId'] or '-'}"
        )
        out.print(f"[{colour}]FLAGGED FOR REVIEW ({review['status']})[/]: {what}", highlight=False)
        if review["status"] == "OPEN":
            out.print(f"  settle: shopctl payments settle {order['id']} --refund | --dismiss")


def _print_disputes(order: dict) -> None:
    out = console()
    for row in order.get("disputes", []):
        money = _money(row["amountCents"], row["currency"])
        due = f", evidence due {row['evidenceDueBy']}" if row["evidenceDueBy"] else ""
        flag = f" FLAGGED: {row['problem']}" if row["problem"] else ""
        out.print(
            f"dispute {row['id']}: {row['status']}, {row['reason']}, {money}{due}; "
            f"withdrawn {_money(row['fundsWithdrawnCents'], row['currency'])}, "
            f"reinstated {_money(row['fundsReinstatedCents'], row['currency'])}{flag}",
            markup=False,
        )
    for row in order.get("fraudWarnings", []):
        state = "actionable: do not ship" if row["actionable"] else "not actionable"
        out.print(f"early fraud warning {row['id']} ({row['fraudType']}): {state}", markup=False)


@app.command("cancel")
@handle_errors
def cancel(
    order_id: str = typer.Argument(..., metavar="ORDER_ID", help=ORDER_ID_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print the canceled order as JSON."),
) -> None:
    """Cancel an unpaid order and put its stock back (the same rules as the API).

    Its Checkout Session is expired at Stripe first. When Stripe cannot be reached (or
    does not confirm), the order is canceled here anyway, the command says what follows
    and exits 3.

    Example: shopctl orders cancel 0b7c41f2 --yes
    """
    from shopctl.services.orders.reports import find_order_id
    from shopctl.services.payments.sessions import cancel_order  # closes the Checkout Session first

    settings = bootstrap()
    order_id = find_order_id(order_id)
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

    \b
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
