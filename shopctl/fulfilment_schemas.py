"""Input of shipments and line refunds (admin API and CLI), validated like every other
input (`shopctl.schemas.validate`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import Field, model_validator

from shopctl.schemas import MAX_LINE_QUANTITY, MAX_ORDER_LINES, Strict


class ItemQuantity(Strict):
    itemId: UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=MAX_LINE_QUANTITY)]


Lines = Annotated[list[ItemQuantity], Field(min_length=1, max_length=MAX_ORDER_LINES)]


class ShipmentCreate(Strict):
    """Without `lines`: every unit not yet shipped (nor refunded)."""

    lines: Lines | None = None
    carrier: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    trackingNumber: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    trackingUrl: (
        Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://\S+$")] | None
    ) = None


class ShipmentRef(Strict):
    shipmentId: UUID


class LineRefundCreate(Strict):
    """Without `lines`: an amount-only refund, as `orders refund --amount`."""

    lines: Lines | None = None
    restock: bool = False
    shipping: bool = False  # also the order's shipping amount, once
    amountCents: Annotated[int, Field(strict=True, ge=1)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _restock_needs_lines(self) -> LineRefundCreate:
        if self.restock and self.lines is None:
            raise ValueError("restock needs the lines to restock")
        return self


def lines_of(lines: list[ItemQuantity] | None) -> dict[str, int] | None:
    """Item id → units, repeated items added up; None for no lines."""
    if lines is None:
        return None
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[str(line.itemId)] = wanted.get(str(line.itemId), 0) + line.quantity
    return wanted
