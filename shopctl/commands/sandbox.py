"""`shopctl sandbox`: the local Stripe-compatible server (heavy imports happen inside)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Annotated

import typer

from shopctl.commands.common import ensure_port_free, fail, port_in_use

SANDBOX_SECRET_VARIABLE = "SHOPCTL_SANDBOX_WEBHOOK_SECRET"


def sandbox(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The Stripe API and checkout pages follow it; the "
            "control endpoints (/_sandbox/) always answer loopback clients only."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 12111,
    webhook_url: Annotated[
        list[str] | None,
        typer.Option(help="Where to POST signed events; repeat for several endpoints."),
    ] = None,
    webhook_secret: Annotated[
        str,
        typer.Option(
            help="Secret that signs webhooks (Stripe-Signature v1).",
            envvar=SANDBOX_SECRET_VARIABLE,
            show_envvar=True,
        ),
    ] = "whsec_sandbox",
    latency_ms: Annotated[
        int, typer.Option(help="Delay every Stripe API answer by this many milliseconds.")
    ] = 0,
    fail_rate: Annotated[
        float,
        typer.Option(help="Fraction (0..1) of Stripe API requests answered with a 500 api_error."),
    ] = 0.0,
    state: Annotated[
        Path | None, typer.Option(help="JSON file to keep the sandbox's state in across restarts.")
    ] = None,
) -> None:
    """Run a local Stripe-compatible server for offline runs, demos and tests.

    Point the official client at it and pay in the browser.

    \b
    Example: shopctl sandbox --webhook-url http://127.0.0.1:8000/api/v1/payment/webhook
    Then:    stripe.StripeClient("sk_test_x", base_addresses={"api": "http://127.0.0.1:12111"})

    Each Checkout Session's `url` opens a page with Pay / Decline / Pay (delayed).
    Control endpoints for scripts live under /_sandbox/ (the README lists them).
    """
    from shopctl.sandbox.runner import run_sandbox
    from shopctl.sandbox.settings import SandboxSettings, SettingsError

    settings = SandboxSettings(
        host=host,
        port=port,
        webhook_urls=list(webhook_url or []),
        webhook_secret=webhook_secret,
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        state_file=state,
    )
    try:
        settings.validate()
        ensure_port_free(host, port)
        typer.echo(
            f"Stripe sandbox on {settings.base_url()} (key: any sk_test_…; "
            f"webhooks: {', '.join(settings.webhook_urls) or 'none'})",
            err=True,
        )
        run_sandbox(settings)
    except SettingsError as exc:
        typer.secho(f"Error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # taken between the check and the bind
            fail(port_in_use(port))
        fail(f"cannot serve on {host}:{port}: {exc}")
