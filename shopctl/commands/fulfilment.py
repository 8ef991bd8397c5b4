"""`shopctl orders ship` and `shopctl orders shipments`: record what was sent."""

from __future__ import annotations

import typer

from shopctl.commands.common import bootstrap, console, handle_errors, print_json, usage_error

shipments = typer.Typer(
    help="Shipments of orders: cancel one that did not go.", no_args_is_help=True
)

LINE_HELP = "ITEM:QTY, the order item's id (or its 6+ first characters) and units; repeatable."


def parse_lines(lines: list[str] | None) -> dict[str, int] | None:
    """`--line ITEM:QTY …` as item → units (repeated items added up); usage error if bad."""
    if not lines:
        return None
    wanted: dict[str, int] = {}
    for line in lines:
        item, _, units = line.rpartition(":")
        if not item or not units.isdigit() or not 1 <= int(units) <= 10_000:
            usage_error(f"--line {line!r}: expected ITEM:QTY with QTY from 1 to 10000")
        wanted[item] = wanted.get(item, 0) + int(units)
    return wanted


@handle_errors
def ship(
    order_id: str = typer.Argument(
        ..., metavar="ORDER_ID", help="The order's id, or its first 6+ characters."
    ),
    line: list[str] = typer.Option(None, "--line", help=LINE_HELP + " Default: all unshipped."),
    carrier: str = typer.Option(None, help="Who carries it, e.g. UPS."),
    tracking: str = typer.Option(None, help="The carrier's tracking number."),
    tracking_url: str = typer.Option(None, help="Where the buyer can follow it (http/https)."),
    as_json: bool = typer.Option(False, "--json", help="Print the shipment as JSON."),
) -> None:
    """Record a shipment of a paid order: every unit not yet shipped, or the lines given.

    A unit never ships twice: a line with fewer units left than asked refuses the whole
    shipment (exit 1).

    \b
    Example: shopctl orders ship 3f2a9c01 --line 8d41c2:1 --carrier UPS --tracking 1Z999
    """
    from shopctl.fulfilment_schemas import ShipmentCreate
    from shopctl.schemas import validate
    from shopctl.services.fulfilment.shipments import ship_order
    from shopctl.services.orders.reports import find_order_id

    wanted = parse_lines(line)
    details = {"carrier": carrier, "trackingNumber": tracking, "trackingUrl": tracking_url}
    validate(ShipmentCreate, {key: value for key, value in details.items() if value is not None})
    bootstrap()
    shipment, _ = ship_order(
        find_order_id(order_id),
        wanted,
        carrier=carrier,
        tracking_number=tracking,
        tracking_url=tracking_url,
        actor="cli",
    )
    if as_json:
        return print_json(shipment)
    units = sum(item["quantity"] for item in shipment["lines"])
    console().print(f"Shipment {shipment['id']}: {units} unit(s) shipped.", markup=False)


@shipments.command("cancel")
@handle_errors
def cancel(
    shipment_id: str = typer.Argument(
        ..., metavar="SHIPMENT_ID", help="The shipment's id, or its first 6+ characters."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the shipment as JSON."),
) -> None:
    """Cancel a shipment that did not go: its units are owed again (once only).

    \b
    Example: shopctl orders shipments cancel 5e0c7a11
    """
    from shopctl.services.fulfilment.shipments import cancel_shipment, find_shipment_id

    bootstrap()
    shipment = cancel_shipment(find_shipment_id(shipment_id), actor="cli")
    if as_json:
        return print_json(shipment)
    console().print(f"Shipment {shipment['id']} canceled.", markup=False)
