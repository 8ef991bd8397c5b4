"""Request files for bench/lua/replay.lua: one pre-built request per line.

A line is METHOD <TAB> PATH <TAB> HEADERS <TAB> BODY, headers "Name: value" joined by
"|". Everything that costs CPU to make (JWTs, JSON bodies, webhook signatures) is
made here, before the load starts, so wrk only replays bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from itertools import cycle
from pathlib import Path
from urllib.parse import urlencode

API = "/api/v1"
JSON = "Content-Type: application/json"
# Words from the generator of `products seed`: each matches a slice of the catalog,
# as a shopper's would.
SEARCH_TERMS = (
    "oak",
    "lamp",
    "Cedar",
    "ceramic",
    "mug",
    "Premium",
    "linen",
    "chair",
    "Travel",
    "walnut",
    "bowl",
    "Nordic",
    "steel",
    "Rug",
    "cotton",
    "clock",
)
WEBHOOK_TYPES = (
    "checkout.session.completed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
)


def line(method: str, path: str, headers: Sequence[str] = (), body: str | None = None) -> str:
    return "\t".join((method, path, "|".join(headers), body or ""))


def write(path: Path, lines: Sequence[str]) -> Path:
    if not lines:
        raise ValueError(f"no requests for {path.name}")
    path.write_text("\n".join(lines) + "\n")
    return path


def product_gets(ids: Sequence[str]) -> list[str]:
    return [line("GET", f"{API}/product/{pid}") for pid in ids]


def list_gets(pages: int = 5, limit: int = 20) -> list[str]:
    return [
        line("GET", f"{API}/product?{urlencode({'limit': limit, 'page': page})}")
        for page in range(1, pages + 1)
    ]


def search_gets(limit: int = 20) -> list[str]:
    return [
        line("GET", f"{API}/product?{urlencode({'search': term, 'limit': limit})}")
        for term in SEARCH_TERMS
    ]


def logins(emails: Sequence[str], password: str) -> list[str]:
    """Each buyer from an address of their own, as a proxy forwards it: one address behind
    more than 20 logins in flight would be throttled (attempts are counted first)."""
    return [
        line(
            "POST",
            f"{API}/auth/login",
            [JSON, f"X-Forwarded-For: 10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"],
            json.dumps({"email": email, "password": password}),
        )
        for n, email in enumerate(emails, 1)
    ]


def orders(
    endpoint: str,
    tokens: Sequence[str],
    products: Sequence[str],
    count: int,
    rng: random.Random,
    most: int = 3,
) -> list[str]:
    """`count` order requests, buyers in turn, each of 1 to `most` distinct products, one
    unit each."""
    lines = []
    for n in range(count):
        picked = rng.sample(products, rng.randint(1, most))
        body = {"items": [{"productId": pid, "quantity": 1} for pid in picked]}
        headers = [JSON, f"Authorization: Bearer {tokens[n % len(tokens)]}"]
        lines.append(line("POST", f"{API}{endpoint}", headers, json.dumps(body)))
    return lines


def sign(secret: str, body: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhooks(secret: str, payments: Sequence[tuple[str, str, int]]) -> list[str]:
    """One signed event per payment, the types in turn: distinct payments, real work each."""
    now = int(time.time())
    lines = []
    for (payment_id, order_id, amount), kind in zip(payments, cycle(WEBHOOK_TYPES)):
        body = json.dumps(event(kind, payment_id, order_id, amount, now))
        headers = [JSON, f"Stripe-Signature: {sign(secret, body, now)}"]
        lines.append(line("POST", f"{API}/payment/webhook", headers, body))
    return lines


def event(kind: str, payment_id: str, order_id: str, amount: int, created: int) -> dict:
    metadata = {"orderId": order_id, "paymentId": payment_id}
    intent_id = "pi_" + secrets.token_hex(12)
    if kind.startswith("checkout.session"):
        obj = checkout_session(metadata, intent_id, amount, created)
    else:
        obj = payment_intent(
            metadata, intent_id, amount, created, failed=kind.endswith("payment_failed")
        )
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def checkout_session(metadata: dict, intent_id: str, amount: int, created: int) -> dict:
    """Shaped like Stripe's checkout.session (the fields of its OpenAPI fixture)."""
    session_id = "cs_test_" + secrets.token_hex(29)
    return {
        "id": session_id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount,
        "amount_total": amount,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "http://localhost:3000/cancel",
        "client_reference_id": metadata["orderId"],
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": "usd",
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_creation": "if_required",
        "customer_details": {
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "94103",
                "state": None,
            },
            "email": "buyer@bench.example",
            "name": "Bench Buyer",
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": "buyer@bench.example",
        "expires_at": created + 1800,
        "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": None},
        "livemode": False,
        "locale": None,
        "metadata": metadata,
        "mode": "payment",
        "payment_intent": intent_id,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_options": {"card": {}},
        "payment_method_types": ["card"],
        "payment_status": "paid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "complete",
        "submit_type": None,
        "subscription": None,
        "success_url": "http://localhost:3000/success",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
    }


def payment_intent(metadata: dict, intent_id: str, amount: int, created: int, failed: bool) -> dict:
    """Shaped like Stripe's payment_intent; a decline carries last_payment_error."""
    error = (
        {
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "type": "card_error",
        }
        if failed
        else None
    )
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0 if failed else amount,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": "usd",
        "customer": None,
        "description": None,
        "last_payment_error": error,
        "latest_charge": None if failed else "ch_" + secrets.token_hex(12),
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": "pm_" + secrets.token_hex(12),
        "payment_method_options": {"card": {}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": "buyer@bench.example",
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method" if failed else "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def mixed(parts: Sequence[tuple[Sequence[str], int]], total: int) -> list[str]:
    """`total` lines interleaving several request lists by integer weights, each cycled."""
    sources: list[Iterator[str]] = []
    for lines, weight in parts:
        sources += [cycle(lines)] * weight if lines else []
    pattern = cycle(random.Random(7).sample(sources, len(sources)))
    return [next(next(pattern)) for _ in range(total)]
