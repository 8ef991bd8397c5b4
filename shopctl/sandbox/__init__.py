"""A local Stripe-compatible server: Checkout, PaymentIntents, Refunds, Events and webhooks.

Importing this package is cheap; Sanic and httpx load only with `create_sandbox_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import SandboxSettings, SettingsError

if TYPE_CHECKING:
    from sanic import Sanic

__all__ = ["SandboxSettings", "SettingsError", "create_sandbox_app"]


def create_sandbox_app(settings: SandboxSettings) -> Sanic:
    from .app import create_sandbox_app as create

    return create(settings)
