"""What the API answers with, as pydantic models: used only to describe responses in the
OpenAPI document (requests are described by the models in `shopctl.schemas` that validate
them). Field names are the v1 API's; clients must accept fields added later, so none of
these forbids extra properties.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shopctl.schemas import FULFILLMENT_STATUSES, ORDER_STATUSES

OrderStatus = Literal[ORDER_STATUSES]  # type: ignore[valid-type]
FulfillmentStatus = Literal[FULFILLMENT_STATUSES]  # type: ignore[valid-type]


class User(BaseModel):
    """A user as the API shows it: never a password or its hash."""

    id: UUID
    email: str
    name: str | None
    role: Literal["USER", "ADMIN"]
    isDeleted: bool
    createdAt: datetime
    updatedAt: datetime


class Product(BaseModel):
    id: UUID
    name: str
    description: str | None
    priceCents: int
    currency: str
    quantity: int
    isArchived: bool
    createdAt: datetime
    updatedAt: datetime


class OrderItem(BaseModel):
    """A line of an order: the product's name and unit price as they were when ordered."""

    id: UUID
    orderId: UUID
    productId: UUID
    productName: str
    quantity: int
    priceCents: int
    shippedQuantity: int = 0
    refundedQuantity: int = 0
    restockedQuantity: int = 0


class PaymentSummary(BaseModel):
    id: UUID
    status: str
    paymentUrl: str | None
    sessionId: str | None


class Refund(BaseModel):
    """One refund of the order's payment, followed to its end. PENDING and SUCCEEDED
    refunds count as refunded; a FAILED or CANCELED one gave its amount back."""

    id: UUID
    stripeRefundId: str | None
    amountCents: int
    status: Literal["PENDING", "SUCCEEDED", "FAILED", "CANCELED"]
    reason: str | None
    failureReason: str | None = None
    createdAt: datetime
    updatedAt: datetime | None = None


class ShipmentLine(BaseModel):
    itemId: UUID
    quantity: int


class Shipment(BaseModel):
    """Units of the order sent together. A canceled one (`canceledAt`) did not go: its
    units are owed again."""

    id: UUID
    orderId: UUID
    carrier: str | None
    trackingNumber: str | None
    trackingUrl: str | None
    lines: list[ShipmentLine]
    actor: str
    createdAt: datetime
    canceledAt: datetime | None


class ShippingAddress(BaseModel):
    """Where the order ships, as the buyer gave it at Checkout."""

    name: str | None
    line1: str | None
    line2: str | None
    city: str | None
    postalCode: str | None
    state: str | None
    country: str | None  # ISO 3166-1 alpha-2
    phone: str | None


class ShippingRateRef(BaseModel):
    """The shipping rate the buyer chose (null id and name: an address without a rate)."""

    id: int | None
    name: str | None


class OrderShipping(BaseModel):
    """Stored when the payment is applied; `amountCents` is part of the order's amountCents."""

    address: ShippingAddress
    rate: ShippingRateRef
    amountCents: int


class Order(BaseModel):
    """An order. `status` is the payment's life cycle; `fulfillmentStatus` the shipping
    one: UNFULFILLED, PARTIALLY_FULFILLED, FULFILLED, RETURNED (all that shipped came
    back). `disputed`: a dispute (chargeback) of its payment is open or was lost, so the
    money is, or went, back to the buyer; `status` stays PAID and it does not ship."""

    id: UUID
    userId: UUID
    status: OrderStatus
    fulfillmentStatus: FulfillmentStatus = "UNFULFILLED"
    amountCents: int
    currency: str
    expiresAt: datetime | None
    createdAt: datetime
    updatedAt: datetime
    payLater: bool
    disputed: bool = False
    items: list[OrderItem]
    payment: PaymentSummary | None
    refunds: list[Refund] = []
    # Null while nothing ships (not paid yet, or SHIPPING_COUNTRIES empty: digital goods).
    shipping: OrderShipping | None = None
    shipments: list[Shipment] = []


class RefundLine(BaseModel):
    itemId: UUID
    quantity: int
    restock: bool
    restocked: bool  # the units are back in stock (once Stripe accepted the refund)


class RefundCreated(BaseModel):
    """The refund as Stripe answered: PENDING (also when Stripe could not be reached:
    it is settled by its webhook or `payments reconcile --apply`) or SUCCEEDED."""

    id: UUID
    orderId: UUID
    paymentId: UUID
    refundId: str | None
    status: Literal["PENDING", "SUCCEEDED", "FAILED", "CANCELED"]
    amountCents: int
    refundedCents: int
    shippingCents: int = 0  # of this refund, the order's shipping (`shipping: true`)
    lines: list[RefundLine]


class StripeNotice(BaseModel):
    """Whether Stripe confirmed the Checkout Session closed; when not, what follows."""

    sessionClosed: bool
    outcome: Literal["no-session", "closed", "unknown", "unreachable", "refused"]
    message: str | None


class CanceledOrder(Order):
    """The canceled order. The cancel happens whatever Stripe answers: `stripe.message`
    (also the envelope's message) says when Stripe could not be reached and what follows."""

    stripe: StripeNotice


class Session(BaseModel):
    """Also set as HttpOnly cookies `accessToken` and `refreshToken`."""

    accessToken: str
    refreshToken: str
    user: User


class TokenPair(BaseModel):
    accessToken: str
    refreshToken: str


class Checkout(BaseModel):
    """A Stripe Checkout Session for the order. When Stripe cannot be reached the order
    stays reserved, `paymentUrl` is null and `message` says why: retry with
    `POST /order/{orderId}/pay`."""

    paymentId: UUID
    paymentUrl: str | None
    sessionId: str | None
    paymentIntent: str | None = None
    message: str | None = None


class OrderPlaced(Checkout):
    orderId: UUID
    expiresAt: datetime


class OrderPlacedLater(BaseModel):
    orderId: UUID
    paymentId: UUID
    payLater: Literal[True]
    expiresAt: datetime


class PaymentStatus(BaseModel):
    paymentId: UUID
    status: str
    sessionId: str | None
    paymentUrl: str | None
    orderId: UUID
    orderStatus: OrderStatus
    amountCents: int
    refundedCents: int
    currency: str


class WebhookReceipt(BaseModel):
    received: Literal[True]
    eventId: str
    result: Literal["processed", "duplicate", "ignored"]


class StripeEvent(BaseModel):
    """A Stripe event, verified with `Stripe-Signature` on the raw bytes."""

    model_config = ConfigDict(json_schema_extra={"additionalProperties": True})

    id: str
    object: Literal["event"]
    type: str
    data: dict[str, Any]


class Health(BaseModel):
    status: str
    database: str


class Welcome(BaseModel):
    message: str
    environment: str
    uptime: str
    timeStamp: datetime


PAGING = (
    "Pages by `page` and `limit` (the Express API's, counted: `meta.total`) down to row "
    "10,000; deeper is a 400 that points to `cursor`. Every page's `meta.nextCursor` (null "
    "on the last) given as `cursor` reads the next one at the same cost however deep, with "
    "the same filters and sort (a cursor of another sort or listing, or edited, is a 400); "
    "`cursor=` (empty) starts there. Cursor pages are not counted: `meta` is "
    "`{limit, nextCursor}`. Rows inserted or deleted meanwhile never repeat or skip a row."
)


class PageMeta(BaseModel):
    """A page by number (the Express API's paging) has all of these; a page asked for by
    `cursor` only `limit` and `nextCursor`, as counting every match is what it avoids."""

    limit: int
    nextCursor: str | None = Field(
        description="Give it as `cursor` for the next page; null on the last page."
    )
    page: int = Field(None, description="Not on cursor pages.")
    total: int = Field(None, description="Not on cursor pages.")
    totalPage: int = Field(None, description="Not on cursor pages.")


class ValidationIssue(BaseModel):
    path: str
    message: str


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    User,
    Product,
    OrderItem,
    PaymentSummary,
    Refund,
    ShipmentLine,
    Shipment,
    ShippingAddress,
    ShippingRateRef,
    OrderShipping,
    Order,
    RefundLine,
    RefundCreated,
    StripeNotice,
    CanceledOrder,
    Session,
    TokenPair,
    Checkout,
    OrderPlaced,
    OrderPlacedLater,
    PaymentStatus,
    WebhookReceipt,
    StripeEvent,
    Health,
    Welcome,
    PageMeta,
    ValidationIssue,
)
