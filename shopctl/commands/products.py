"""`shopctl products`: seed the catalog, list it, set stock by hand."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

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
    usage_error,
)

app = typer.Typer(help="Products: seed the catalog, list it, set stock.", no_args_is_help=True)

DEFAULT_SEED_COUNT = 20


@contextmanager
def _progress(total: int, label: str):
    """A rich progress bar on a terminal; silence when the output goes to a file or pipe."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(console=console()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


@app.command("seed")
@handle_errors
def seed(
    count: int = typer.Option(
        None,
        "--count",
        "-n",
        min=1,
        max=1_000_000,
        help=f"Generate this many products (default {DEFAULT_SEED_COUNT}).",
    ),
    seed_value: int = typer.Option(None, "--seed", help="Random seed: same seed, same products."),
    file: Path = typer.Option(
        None,
        "--file",
        "-f",
        exists=True,
        dir_okay=False,
        help="Products from a .csv or .json file instead.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fill the catalog with generated products, or with the rows of a CSV / JSON file.

    A file is checked row by row first; if any row is bad, every bad row is listed
    and nothing is inserted. Columns / keys: name, description, price (12.50) or
    priceCents (1250), quantity.

    \b
    Examples: shopctl products seed --count 1000 --seed 7
              shopctl products seed --file products.csv
    """
    from shopctl.services.catalog import seeding

    if file is not None and (count is not None or seed_value is not None):
        usage_error("--file cannot be combined with --count or --seed")
    currency = bootstrap().stripe_currency
    started = time.perf_counter()
    if file is None:
        count = count or DEFAULT_SEED_COUNT
        with _progress(count, "Inserting products") as progress:
            inserted = seeding.seed_generated(count, seed_value, currency, progress)
    else:
        inserted = _seed_file(file, currency)
    _report_seeded(inserted, time.perf_counter() - started, as_json)


def _seed_file(file: Path, currency: str) -> int:
    from shopctl.errors import InvalidInput
    from shopctl.services.catalog import products as catalog
    from shopctl.services.catalog import seeding

    try:
        rows = seeding.read_product_file(file, currency)
    except InvalidInput as exc:
        _report_bad_rows(exc)
    with _progress(len(rows), "Inserting products") as progress:
        return catalog.insert_products(rows, progress)


def _report_bad_rows(exc) -> None:
    from rich.console import Console

    errors = Console(stderr=True, highlight=False)
    for error in exc.errors:
        errors.print(f"  {error['path']}: {error['message']}", markup=False)
    fail(exc.message)


def _report_seeded(inserted: int, seconds: float, as_json: bool) -> None:
    if as_json:
        return print_json({"inserted": inserted, "seconds": round(seconds, 3)})
    rate = inserted / seconds if seconds else 0
    console().print(f"Inserted {inserted:,} products in {seconds:.1f} s ({rate:,.0f} rows/s).")


@app.command("list")
@handle_errors
def list_products(
    search: str = typer.Option(None, "--search", "-s", help="Text in the name or description."),
    low_stock: int = typer.Option(
        None, "--low-stock", min=0, help="Only products with at most this many in stock."
    ),
    sort: str = typer.Option("createdAt", "--sort", help="createdAt, priceCents or name."),
    order: str = typer.Option("desc", "--order", help="asc or desc."),
    limit: int = typer.Option(20, "--limit", help="Products per page (1 to 100)."),
    page: int = typer.Option(None, "--page", help="Which page (default 1), to row 10,000."),
    cursor: str = typer.Option(None, "--cursor", help=CURSOR_HELP),
    archived: bool = typer.Option(False, "--archived", help="Include archived products."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List products, newest first.

    \b
    Examples: shopctl products list --low-stock 5 --sort name --order asc
              shopctl products list --cursor '' --json   (then --cursor meta.nextCursor)
    """
    from shopctl.schemas import ProductListQuery, validate
    from shopctl.services.catalog.products import list_products as listing

    params = {"page": page, "limit": limit, "search": search, "sortBy": sort, "sortOrder": order}
    params["cursor"] = cursor
    params = validate(ProductListQuery, {k: v for k, v in params.items() if v is not None})
    bootstrap()
    products, meta = listing(params, low_stock=low_stock, include_archived=archived)
    if as_json:
        return print_page_json(products, meta, cursor)
    _print_table(products, meta)
    print_next_page(meta["nextCursor"])


def _print_table(products: list[dict], meta: dict) -> None:
    from shopctl.commands.tables import short_ids, table, text, when, whole, wrapped
    from shopctl.money import format_minor_units

    ids = short_ids([product["id"] for product in products])
    listing = table(
        whole("id"),
        wrapped("name"),
        whole("price", right=True),
        whole("stock", right=True),
        wrapped("created"),
    )
    for product in products:
        name = product["name"] + (" (archived)" if product["isArchived"] else "")
        listing.add_row(
            ids[product["id"]],
            text(name),
            format_minor_units(product["priceCents"], product["currency"]),
            str(product["quantity"]),
            when(product["createdAt"]),
        )
    out = console()
    out.print(listing)
    if "page" in meta:
        out.print(f"page {meta['page']} of {meta['totalPage']}, {meta['total']} product(s)")
    else:
        out.print(f"{len(products)} product(s)")


@app.command("set-stock")
@handle_errors
def set_stock(
    product_id: str = typer.Argument(
        ..., metavar="PRODUCT_ID", help="The product's id, or its first 6+ characters."
    ),
    quantity: int = typer.Argument(..., metavar="QUANTITY", min=0, help="The new stock level."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print the product as JSON."),
) -> None:
    """Set a product's stock (after a count, a delivery, breakage); the ledger records it.

    Example: shopctl products set-stock 3f2a9c01 40 --yes
    """
    from shopctl.services.catalog import products as catalog

    bootstrap()
    product_key = catalog.find_product_id(product_id)
    current = catalog.get_product(product_key)
    confirm(f"Set stock of {current['name']!r} from {current['quantity']} to {quantity}?", yes)
    product, delta = catalog.set_stock(product_key, quantity)
    if as_json:
        return print_json(product)
    console().print(
        f"Stock of {product['name']!r} is now {product['quantity']} (movement {delta:+d}).",
        markup=False,
    )
