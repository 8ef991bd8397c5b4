"""Stripe objects with the key sets of Stripe's own fixtures (stripe/openapi fixtures3.json)."""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

API_VERSION = "2026-10-28.endive"
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


def _address() -> dict[str, None]:
    return dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))


def list_object(url: str, data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def line_item(
    currency: str, unit_amount: int, quantity: int, name: str, description: str | None
) -> dict[str, Any]:
    total = unit_amount * quantity
    price = {
        "active": False,
        "billing_scheme": "per_unit",
        "created": now(),
        "currency": currency,
        "custom_unit_amount": None,
        "id": new_id("price_"),
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "object": "price",
        "product": new_id("prod_", 14),
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }
    return {
        "amount_discount": 0,
        "amount_subtotal": total,
        "amount_tax": 0,
        "amount_total": total,
        "currency": currency,
        "description": description or name,
        "id": new_id("li_"),
        "object": "item",
        "price": price,
        "quantity": quantity,
        "metadata": {},
        "adjustable_quantity": None,
    }


def checkout_session(
    sid: str,
    *,
    amount: int,
    currency: str,
    expires_at: int,
    url: str,
    payment_intent: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """`fields`: metadata, client_reference_id, customer_email, success_url, cancel_url…"""
    session = {
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount,
        "amount_total": amount,
        "automatic_tax": {"enabled": False, "liability": None, "status": None, "provider": None},
        "billing_address_collection": None,
        "cancel_url": None,
        "client_reference_id": None,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": now(),
        "currency": currency,
        "custom_fields": [],
        "custom_text": dict.fromkeys(
            ("after_submit", "shipping_address", "submit", "terms_of_service_acceptance")
        ),
        "customer": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": None,
        "expires_at": expires_at,
        "id": sid,
        "invoice": None,
        "invoice_creation": {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        "livemode": False,
        "locale": None,
        "metadata": {},
        "mode": "payment",
        "object": "checkout.session",
        "payment_intent": payment_intent,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": url,
        "adaptive_pricing": {"enabled": False},
        "discounts": [],
        "collected_information": None,
        "permissions": None,
        "wallet_options": None,
        "origin_context": None,
        "currency_conversion": None,
        "customer_account": None,
        "integration_identifier": None,
        "managed_payments": {"enabled": False},
    }
    session.update(fields)
    return session


def customer_details(email: str | None) -> dict[str, Any]:
    return {
        "address": _address(),
        "email": email,
        "name": "Sandbox Buyer",
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
        "business_name": None,
        "individual_name": None,
    }


def payment_intent(
    pid: str,
    *,
    amount: int,
    currency: str,
    metadata: dict[str, str],
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    intent = {
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pid}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": now(),
        "currency": currency,
        "customer": None,
        "description": None,
        "id": pid,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "object": "payment_intent",
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
        "source": None,
        "excluded_payment_method_types": None,
        "customer_account": None,
        "managed_payments": {"enabled": False},
    }
    intent.update(fields or {})
    return intent


def card_error(decline_code: str, message: str, payment_method: str) -> dict[str, Any]:
    """A PaymentIntent's `last_payment_error` after a card decline."""
    return {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": decline_code,
        "message": message,
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "param": None,
        "payment_method": {"id": payment_method, "object": "payment_method", "type": "card"},
    }


def _card_details() -> dict[str, Any]:
    return {
        "amount_authorized": None,
        "brand": "visa",
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": new_id("", 16),
        "funding": "credit",
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": "4242",
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": "visa",
        "network_token": {"used": False},
        "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},
        "three_d_secure": None,
        "wallet": None,
        "authorization_code": new_id("", 6),
        "regulated_status": "unregulated",
        "network_transaction_id": new_id("", 15),
        "transaction_link_id": None,
    }


def charge(
    cid: str, *, intent: dict[str, Any], payment_method: str, email: str | None
) -> dict[str, Any]:
    amount = intent["amount"]
    return {
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn_"),
        "billing_details": {
            "address": _address(),
            "email": email,
            "name": "Sandbox Buyer",
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "SHOPCTL SANDBOX",
        "captured": True,
        "created": now(),
        "currency": intent["currency"],
        "customer": None,
        "description": intent["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "id": cid,
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "object": "charge",
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": intent["id"],
        "payment_method": payment_method,
        "payment_method_details": {"card": _card_details(), "type": "card"},
        "receipt_email": email,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{new_id('', 40)}",
        "refunded": False,
        "refunds": list_object(f"/v1/charges/{cid}/refunds", []),
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
        "source": None,
    }


def refund(
    rid: str,
    *,
    charge_obj: dict[str, Any],
    amount: int,
    reason: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return {
        "amount": amount,
        "balance_transaction": new_id("txn_"),
        "charge": charge_obj["id"],
        "created": now(),
        "currency": charge_obj["currency"],
        "destination_details": {
            "card": {
                "reference": new_id("", 12),
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "id": rid,
        "metadata": metadata,
        "object": "refund",
        "payment_intent": charge_obj["payment_intent"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
        "customer": None,
        "customer_account": None,
        "payment_method": charge_obj["payment_method"],
    }


def event(
    etype: str,
    obj: dict[str, Any],
    *,
    request_id: str | None,
    idempotency_key: str | None,
    pending_webhooks: int,
) -> dict[str, Any]:
    return {
        "api_version": API_VERSION,
        "created": now(),
        "data": {"object": obj},
        "id": new_id("evt_"),
        "livemode": False,
        "object": "event",
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": etype,
    }
