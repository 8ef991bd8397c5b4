"""The money state machine: PaymentIntents, charges and the events they emit."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import shapes
from .amounts import check_intent_amount
from .params import StripeError, check_known, get_bool, get_int, get_metadata, get_str, not_found
from .store import Store

INTENT_CREATE = frozenset(
    {
        "amount",
        "currency",
        "metadata",
        "description",
        "receipt_email",
        "capture_method",
        "confirm",
        "payment_method",
        "payment_method_types",
        "automatic_payment_methods",
        "customer",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "setup_future_usage",
        "return_url",
        "off_session",
        "confirmation_method",
        "use_stripe_sdk",
        "shipping",
        "payment_method_options",
        "transfer_group",
    }
)
INTENT_CONFIRM = frozenset(
    {
        "payment_method",
        "receipt_email",
        "return_url",
        "off_session",
        "use_stripe_sdk",
        "payment_method_options",
        "capture_method",
    }
)
CANCEL_REASONS = ("abandoned", "duplicate", "fraudulent", "requested_by_customer")
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
# Stripe's test payment methods that decline; anything else pays.
DECLINING = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
}


@dataclass(frozen=True)
class Origin:
    """What caused a change: an API request (its id and idempotency key) or nothing."""

    request_id: str | None = None
    idempotency_key: str | None = None


AUTOMATIC = Origin()


class Engine:
    def __init__(self, store: Store, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.store, self.on_event = store, on_event

    def emit(
        self,
        etype: str,
        obj: dict[str, Any],
        origin: Origin,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        event = shapes.event(
            etype,
            copy.deepcopy(obj),
            request_id=origin.request_id,
            idempotency_key=origin.idempotency_key,
            pending_webhooks=0,
        )
        if previous is not None:  # `*.updated` events say what changed
            event["data"]["previous_attributes"] = previous
        self.store.add_event(event)
        self.on_event(event)
        return event

    def order_key(self, oid: str) -> str:
        return self.store.order_keys.get(oid, oid)

    def find(self, kind: str, oid: str, name: str, param: str = "id") -> dict[str, Any]:
        obj = self.store.get(oid, kind)
        if obj is None:
            raise not_found(name, oid, param)
        return obj

    def new_intent(
        self,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        fields: dict[str, Any],
        origin: Origin,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        intent = shapes.payment_intent(
            shapes.new_id("pi_"), amount=amount, currency=currency, metadata=metadata, fields=fields
        )
        if session_id:
            self.store.order_keys[intent["id"]] = session_id
        self.store.put(intent)
        self.emit("payment_intent.created", intent, origin)
        return intent

    def succeed(
        self,
        intent: dict[str, Any],
        origin: Origin,
        email: str | None = None,
        payment_method: str | None = None,
    ) -> dict[str, Any]:
        """Capture the money: the PI succeeds with a new charge. Emits both events."""
        pm = payment_method or intent["payment_method"] or shapes.new_id("pm_")
        charge = shapes.charge(
            shapes.new_id("ch_"),
            intent=intent,
            payment_method=pm,
            email=email or intent["receipt_email"],
        )
        self.store.put(charge)
        self.store.order_keys[charge["id"]] = self.order_key(intent["id"])
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=charge["id"],
            payment_method=pm,
            last_payment_error=None,
            processing=None,
            next_action=None,
        )
        self.store.dirty = True
        self.emit("payment_intent.succeeded", intent, origin)
        self.emit("charge.succeeded", charge, origin)
        return charge

    def fail(self, intent: dict[str, Any], origin: Origin, error: dict[str, Any]) -> None:
        intent.update(
            status="requires_payment_method",
            last_payment_error=error,
            payment_method=None,
            processing=None,
        )
        self.store.dirty = True
        self.emit("payment_intent.payment_failed", intent, origin)

    def decline(
        self,
        intent: dict[str, Any],
        origin: Origin,
        decline_code: str = "generic_decline",
        payment_method: str | None = None,
    ) -> dict[str, Any]:
        message = (
            "Your card has insufficient funds."
            if decline_code == "insufficient_funds"
            else "Your card was declined."
        )
        error = shapes.card_error(decline_code, message, payment_method or shapes.new_id("pm_"))
        self.fail(intent, origin, error)
        return error

    def start_processing(self, intent: dict[str, Any], origin: Origin) -> None:
        intent.update(
            status="processing",
            payment_method=shapes.new_id("pm_"),
            last_payment_error=None,
            processing={"type": "card"},
        )
        self.store.dirty = True
        self.emit("payment_intent.processing", intent, origin)

    def cancel(self, intent: dict[str, Any], reason: str | None, origin: Origin) -> None:
        intent.update(status="canceled", canceled_at=shapes.now(), cancellation_reason=reason)
        self.store.dirty = True
        self.emit("payment_intent.canceled", intent, origin)

    # -- the PaymentIntents API --------------------------------------------------------

    def create_intent(self, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
        check_known(params, INTENT_CREATE)
        amount = get_int(params, "amount", required=True, minimum=1)
        currency = check_currency(get_str(params, "currency", required=True), "currency")
        check_intent_amount(amount, currency)
        metadata = get_metadata(params)
        pm = get_str(params, "payment_method")
        get_str(params, "capture_method", choices=("automatic", "automatic_async"))
        fields = {
            "description": get_str(params, "description"),
            "receipt_email": get_str(params, "receipt_email"),
            "payment_method": pm,
            "status": "requires_confirmation" if pm else "requires_payment_method",
        }
        confirm = get_bool(params, "confirm")
        intent = self.new_intent(amount, currency, metadata, fields, origin)
        if confirm:
            return self._confirm(intent, pm, origin)
        return intent

    def confirm_intent(self, pid: str, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
        check_known(params, INTENT_CONFIRM)
        intent = self.find("payment_intent", pid, "payment_intent", "intent")
        self._refuse_session_intent(intent, "confirm")
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise unexpected_state(intent, "confirm")
        if get_str(params, "receipt_email"):
            intent["receipt_email"] = params["receipt_email"]
        return self._confirm(intent, get_str(params, "payment_method"), origin)

    def _confirm(self, intent: dict[str, Any], pm: str | None, origin: Origin) -> dict[str, Any]:
        pm = pm or intent["payment_method"]
        if not pm:
            raise StripeError(
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "Pass payment_method (e.g. pm_card_visa).",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        if pm in DECLINING:
            error = self.decline(intent, origin, DECLINING[pm], pm)
            raise StripeError(
                error["message"],
                status=402,
                type="card_error",
                code="card_declined",
                decline_code=error["decline_code"],
                payment_intent=copy.deepcopy(intent),
            )
        self.succeed(intent, origin, payment_method=pm)
        return intent

    def cancel_intent(self, pid: str, params: dict[str, Any], origin: Origin) -> dict[str, Any]:
        check_known(params, frozenset({"cancellation_reason"}))
        intent = self.find("payment_intent", pid, "payment_intent", "intent")
        reason = get_str(params, "cancellation_reason", choices=CANCEL_REASONS)
        self._refuse_session_intent(intent, "cancel")
        if intent["status"] not in CANCELABLE:
            raise unexpected_state(intent, "cancel")
        self.cancel(intent, reason, origin)
        return intent

    def _refuse_session_intent(self, intent: dict[str, Any], action: str) -> None:
        if self.order_key(intent["id"]).startswith("cs_"):
            raise StripeError(
                f"You cannot {action} this PaymentIntent because it belongs to a Checkout "
                "Session. To cancel, expire the Checkout Session instead.",
                code="payment_intent_unexpected_state",
                param="intent",
            )


def unexpected_state(intent: dict[str, Any], action: str) -> StripeError:
    allowed = (
        CANCELABLE if action == "cancel" else ("requires_payment_method", "requires_confirmation")
    )
    return StripeError(
        f"You cannot {action} this PaymentIntent because it has a status of "
        f"{intent['status']}. Only a PaymentIntent with one of the following statuses may be "
        f"{action}ed: {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
        payment_intent=copy.deepcopy(intent),
    )


def check_currency(value: str | None, param: str) -> str:
    if value is None or not re.fullmatch(r"[A-Za-z]{3}", value):
        raise StripeError(
            f"Invalid currency: {value}. Use a three-letter ISO code.",
            code="parameter_invalid",
            param=param,
        )
    return value.lower()
