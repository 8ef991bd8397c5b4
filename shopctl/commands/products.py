"""`shopctl products`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Products.", no_args_is_help=True)
