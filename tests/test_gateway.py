"""The Stripe gateway talks to Stripe without a warning, sync and async alike.

Regression: stripe-python hands httpx the form body as `data=`, which httpx deprecates
for raw text: a DeprecationWarning on every POST to Stripe, and, wherever warnings are
errors, a POST that the client reported as a connection failure.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from dataclasses import replace

from shopctl.services.payments import gateway


def _session_params() -> dict:
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 1250,
                    "product_data": {"name": "Mug"},
                },
            }
        ],
        "success_url": "http://127.0.0.1/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "expires_at": int(time.time()) + 3600,
    }


def test_stripe_calls_raise_no_warning(stripe_stack, settings):
    settings = replace(settings, stripe_api_base=stripe_stack.sandbox_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session = asyncio.run(gateway.create_session_async(settings, _session_params(), "k1"))
        expired = gateway.expire_session(settings, session.id)  # a sync POST
        again = asyncio.run(gateway.retrieve_session_async(settings, session.id))
    assert expired.status == "expired" and again.status == "expired"
