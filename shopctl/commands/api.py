"""`shopctl api …`: the API's contract for people and tools: OpenAPI and Postman."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import typer

from shopctl.commands.common import console, handle_errors, usage_error

app = typer.Typer(
    help="The API's contract: its OpenAPI document and a Postman collection.",
    no_args_is_help=True,
)

OUTPUT = typer.Option(
    None,
    "--output",
    "-o",
    help="Write to this file instead of stdout.",
    dir_okay=False,
    writable=True,
)


def _write(document: dict, output: Path | None, what: str) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console().print(f"Wrote {what} to {output}", markup=False)


@app.command("openapi")
@handle_errors
def openapi(output: Path = OUTPUT) -> None:
    """Print the OpenAPI 3.1 document that `GET /api/v1/openapi.json` serves.

    Example: shopctl api openapi > openapi.json
    """
    from shopctl.api.app import standalone_document

    _write(standalone_document(), output, "the OpenAPI document")


@app.command("postman")
@handle_errors
def postman(
    base_url: str = typer.Option(
        None, "--base-url", help="The API's origin; defaults to http://localhost:$PORT."
    ),
    output: Path = OUTPUT,
) -> None:
    """Write a Postman v2.1 collection that runs top to bottom (Postman or newman).

    Set `adminEmail` and `adminPassword` (an account made with `shopctl users create
    EMAIL --admin`) for the admin requests.

    \b
    Example: shopctl api postman --base-url http://localhost:8000 -o shopctl.postman.json
    Then:    newman run shopctl.postman.json --env-var adminEmail=ops@example.com \\
                 --env-var adminPassword=…
    """
    from shopctl.api.app import standalone_document
    from shopctl.api.postman import build_collection
    from shopctl.config import load_settings

    base_url = base_url or f"http://localhost:{load_settings().port}"
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        usage_error(f"--base-url must be an http(s) URL (http://localhost:8000), not {base_url!r}")
    collection = build_collection(standalone_document(), base_url)
    _write(collection, output, "the Postman collection")
