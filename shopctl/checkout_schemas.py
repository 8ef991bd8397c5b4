"""Input of the built-in checkout pages and of the payment status' sync, validated like
every other input (`shopctl.schemas.validate`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import Field

from shopctl.schemas import Strict


class PaymentStatusQuery(Strict):
    sync: Annotated[
        bool, Field(description="Ask Stripe first and apply what it says (owner; 429 if often)")
    ] = False


class CheckoutReturn(Strict):
    """The built-in success page's query: the Checkout Session Stripe sends back."""

    session_id: Annotated[str, Field(min_length=4, max_length=255, pattern=r"^cs_[A-Za-z0-9_]+$")]


class CheckoutCancel(Strict):
    """The built-in cancel page's query."""

    order_id: UUID
