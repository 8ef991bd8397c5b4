"""Peewee models: the tables, nothing else. Business rules live in shopctl.services.

Timestamps are naive UTC. Money is integer minor units plus a currency code.
The schema itself is created by the numbered scripts in migrations/.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    DeferredForeignKey,
    ForeignKeyField,
    IntegerField,
    Model,
    SmallIntegerField,
    TextField,
)

from shopctl.db import database


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return str(uuid.uuid4())


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class User(BaseModel):
    id = CharField(36, primary_key=True, default=new_id)
    email = CharField(254, unique=True)
    password_hash = CharField(100)
    name = CharField(200, null=True)
    role = CharField(10, default="USER")
    is_deleted = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class RefreshSession(BaseModel):
    id = CharField(36, primary_key=True, default=new_id)
    user = ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    token_hash = CharField(64, unique=True)
    family_id = CharField(36, index=True)
    revoked = BooleanField(default=False)
    rotated_at = DateTimeField(null=True)
    expires_at = DateTimeField(index=True)
    created_at = DateTimeField(default=utcnow)


class LoginThrottle(BaseModel):
    """Rate-limit counters per key (failed logins, registrations, orders: see
    services/accounts/throttle.py), shared by every worker and replica. `expires_at` is
    when a row stops mattering (its window and any lock-out over), for `db prune`."""

    key = CharField(300, primary_key=True)
    failures = IntegerField(default=0)
    window_started_at = DateTimeField(default=utcnow)
    locked_until = DateTimeField(null=True)
    expires_at = DateTimeField(null=True, index=True)


class Product(BaseModel):
    id = CharField(36, primary_key=True, default=new_id)
    name = CharField(200, unique=True)
    description = TextField(null=True)
    price_cents = BigIntegerField()
    currency = CharField(3, default="usd")
    quantity = IntegerField(default=0)
    is_archived = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class ProductCount(BaseModel):
    """How many products are for sale (not archived): one row, kept by database triggers
    (migration 0003) so that a listing's total is a read of one row, not a count."""

    id = SmallIntegerField(primary_key=True)
    live = BigIntegerField()


class Order(BaseModel):
    id = CharField(36, primary_key=True, default=new_id)
    user = ForeignKeyField(User, backref="orders")
    status = CharField(12, default="UNPAID")
    amount_cents = BigIntegerField()
    currency = CharField(3)
    pay_later = BooleanField(default=False)
    expires_at = DateTimeField()  # indexed with the status (migrations/0014)
    stock_released = BooleanField(default=False)
    idempotency_key = CharField(255, null=True)
    request_hash = CharField(64, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    fulfillment_status = CharField(20, default="UNFULFILLED")  # shipping, beside `status`
    # Where it ships and for how much, as the Checkout Session said when the payment was
    # applied (all null: nothing shipped). `amount_cents` includes `shipping_cents`.
    shipping_name = CharField(300, null=True)
    shipping_line1 = CharField(300, null=True)
    shipping_line2 = CharField(300, null=True)
    shipping_city = CharField(200, null=True)
    shipping_postal_code = CharField(40, null=True)
    shipping_state = CharField(200, null=True)
    shipping_country = CharField(2, null=True)
    shipping_phone = CharField(40, null=True)
    shipping_rate_id = IntegerField(null=True)
    shipping_rate_name = CharField(100, null=True)
    shipping_cents = BigIntegerField(null=True)
    disputed = BooleanField(default=False)  # a dispute is open or was lost (migration 0010)

    class Meta:
        # The listings' seek indexes (migrations/0011): each narrowing, then the whole sort.
        indexes = (
            (("user", "idempotency_key"), True),
            (("user", "created_at", "id"), False),
            (("created_at", "id"), False),
            (("status", "created_at", "id"), False),
            (("status", "expires_at"), False),
        )


class OrderItem(BaseModel):
    id = CharField(36, primary_key=True, default=new_id)
    order = ForeignKeyField(Order, backref="items", on_delete="CASCADE")
    product = ForeignKeyField(Product, backref="order_items")
    product_name = CharField(200)
    quantity = IntegerField()
    price_cents = BigIntegerField()
    shipped_quantity = IntegerField(default=0)
    refunded_quantity = IntegerField(default=0)
    restocked_quantity = IntegerField(default=0)


class Payment(BaseModel):
    id = CharField(36, primary_key=True, default=new_id)
    order = ForeignKeyField(Order, backref="payments", unique=True, on_delete="CASCADE")
    status = CharField(12, default="PENDING", index=True)
    amount_cents = BigIntegerField()
    currency = CharField(3)
    session_id = CharField(255, null=True, unique=True)
    payment_intent_id = CharField(255, null=True, unique=True)
    payment_url = TextField(null=True)
    session_expires_at = DateTimeField(null=True)
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)
    refunded_cents = BigIntegerField(default=0)
    late_outcome = CharField(20, null=True)
    paid_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class StripeEvent(BaseModel):
    id = CharField(255, primary_key=True)
    type = CharField(100)
    payload = TextField()
    status = CharField(10, default="RECEIVED")
    source = CharField(10, default="webhook")
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)
    payment = ForeignKeyField(Payment, null=True, backref="events", on_delete="SET NULL")
    stripe_created_at = DateTimeField(null=True)
    received_at = DateTimeField(default=utcnow)
    processed_at = DateTimeField(null=True)

    class Meta:
        # `events list` seeks in these (migrations/0011): each filter, then the whole sort.
        indexes = (
            (("received_at", "id"), False),
            (("status", "received_at", "id"), False),
            (("type", "received_at", "id"), False),
        )


class StockMovement(BaseModel):
    """Append-only stock ledger: a product's stock is the sum of its deltas."""

    id = AutoField()
    product = ForeignKeyField(Product, backref="movements", index=True)
    delta = IntegerField()
    reason = CharField(30)
    order = ForeignKeyField(Order, null=True, backref="movements", index=True)
    created_at = DateTimeField(default=utcnow)
    # A restock: the line refund that returned these units.
    refund = DeferredForeignKey("Refund", null=True, index=True, on_delete="SET NULL")


class OrderHistory(BaseModel):
    id = AutoField()
    order = ForeignKeyField(Order, backref="history", index=True, on_delete="CASCADE")
    from_status = CharField(12, null=True)
    to_status = CharField(12)
    reason = CharField(200)
    actor = CharField(255)
    created_at = DateTimeField(default=utcnow)
    # None for a status move; a fulfilment or line-refund change (from = to) otherwise.
    event = CharField(20, null=True)


class Refund(BaseModel):
    """One refund of a payment, followed to its end: PENDING → SUCCEEDED, or FAILED/CANCELED.

    An operator refund is a row (PENDING, no Stripe id yet) before Stripe is asked, so a
    second refund of the same payment sees the amount reserved; Stripe's id comes after.
    A row with no Stripe id and status SUCCEEDED is money a charge says was refunded before
    the refund itself was reported (refund events fill it in).
    """

    id = CharField(36, primary_key=True, default=new_id)
    stripe_refund_id = CharField(255, null=True, unique=True)
    payment = ForeignKeyField(Payment, backref="refunds", index=True, on_delete="CASCADE")
    order = ForeignKeyField(Order, backref="refunds", index=True, on_delete="CASCADE")
    amount_cents = BigIntegerField()
    status = CharField(10, default="PENDING")
    reason = CharField(200, null=True)
    failure_reason = CharField(100, null=True)
    actor = CharField(255)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    idempotency_key = CharField(255, null=True)
    request_hash = CharField(64, null=True)
    shipping_cents = BigIntegerField(default=0)  # of this refund, the order's shipping

    class Meta:
        indexes = ((("order", "idempotency_key"), True),)


class PaymentReview(BaseModel):
    """Money Stripe reported that we did not accept (amount, currency or ids disagree with
    the order): kept with what arrived until an operator settles it (refund or dismiss)."""

    id = CharField(36, primary_key=True, default=new_id)
    payment = ForeignKeyField(Payment, backref="reviews", index=True, on_delete="CASCADE")
    order = ForeignKeyField(Order, backref="reviews", index=True, on_delete="CASCADE")
    status = CharField(10, default="OPEN", index=True)
    reason = CharField(500)
    event_id = CharField(255, null=True)
    amount_cents = BigIntegerField(null=True)
    currency = CharField(10, null=True)
    session_id = CharField(255, null=True)
    payment_intent_id = CharField(255, null=True)
    note = TextField(null=True)
    settled_by = CharField(255, null=True)
    settled_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)


class SyncCursor(BaseModel):
    """Where a background job (e.g. `events sync`) stopped, so it can resume."""

    name = CharField(50, primary_key=True)
    value = CharField(255)
    updated_at = DateTimeField(default=utcnow)


class Shipment(BaseModel):
    """Units of an order sent together; canceled (never deleted) when it did not go."""

    id = CharField(36, primary_key=True, default=new_id)
    order = ForeignKeyField(Order, backref="shipments", index=True, on_delete="CASCADE")
    carrier = CharField(100, null=True)
    tracking_number = CharField(100, null=True)
    tracking_url = TextField(null=True)
    actor = CharField(255)
    idempotency_key = CharField(255, null=True)
    request_hash = CharField(64, null=True)
    created_at = DateTimeField(default=utcnow)
    canceled_at = DateTimeField(null=True)
    canceled_by = CharField(255, null=True)

    class Meta:
        indexes = ((("order", "idempotency_key"), True),)


class ShipmentLine(BaseModel):
    id = AutoField()
    shipment = ForeignKeyField(Shipment, backref="lines", index=True, on_delete="CASCADE")
    item = ForeignKeyField(OrderItem, backref="shipment_lines", index=True, on_delete="CASCADE")
    quantity = IntegerField()


class RefundLine(BaseModel):  # units a refund pays back: services/payments/refund_lines.py
    id = AutoField()
    refund = ForeignKeyField(Refund, backref="lines", index=True, on_delete="CASCADE")
    item = ForeignKeyField(OrderItem, backref="refund_lines", index=True, on_delete="CASCADE")
    quantity = IntegerField()
    restock = BooleanField()
    restocked_at = DateTimeField(null=True)
    released_at = DateTimeField(null=True)


class ShippingRate(BaseModel):
    """A shipping option offered at Checkout. Its amount never changes once offered (a
    session in flight was priced with it): a new price is a new rate, the old one disabled."""

    id = AutoField()
    name = CharField(100)
    amount_cents = BigIntegerField()
    currency = CharField(3)
    min_days = SmallIntegerField(null=True)
    max_days = SmallIntegerField(null=True)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)


class Dispute(BaseModel):
    """A Stripe dispute (chargeback or inquiry) of a charge, by Stripe's id (`du_…`).

    Linked to the payment and order through its PaymentIntent; both null when the
    PaymentIntent is not one of ours (doctor reports it). `last_event_at` is the
    `created` of the newest event applied: an older event never moves it back.
    """

    id = CharField(255, primary_key=True)
    charge_id = CharField(255, null=True)
    payment_intent_id = CharField(255, null=True, index=True)
    payment = ForeignKeyField(Payment, null=True, backref="disputes", on_delete="SET NULL")
    order = ForeignKeyField(Order, null=True, backref="disputes", on_delete="SET NULL")
    amount_cents = BigIntegerField()
    currency = CharField(10)
    reason = CharField(50)
    status = CharField(30, index=True)
    evidence_due_by = DateTimeField(null=True)
    funds_withdrawn_cents = BigIntegerField(default=0)
    funds_reinstated_cents = BigIntegerField(default=0)
    problem = CharField(500, null=True)  # e.g. more disputed than was paid
    stripe_created_at = DateTimeField(null=True)
    last_event_id = CharField(255)
    last_event_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class FraudWarning(BaseModel):
    """A Radar early fraud warning (`issfr_…`): the issuer reports a charge as likely fraud.
    `actionable` until the charge is disputed or fully refunded; shipping waits on it."""

    id = CharField(255, primary_key=True)
    charge_id = CharField(255, null=True)
    payment_intent_id = CharField(255, null=True, index=True)
    payment = ForeignKeyField(Payment, null=True, backref="fraud_warnings", on_delete="SET NULL")
    order = ForeignKeyField(Order, null=True, backref="fraud_warnings", on_delete="SET NULL")
    fraud_type = CharField(50)
    actionable = BooleanField()
    stripe_created_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class CheckoutSession(BaseModel):
    """Every Checkout Session created for a payment: the current one (`payment.session_id`)
    and those a new one replaced, so a payment on an older one is still known as this
    order's. Its events fill in its PaymentIntent and, with Adaptive Pricing before API
    2025-03-31 (`currency_conversion`), what the buyer was charged in their currency."""

    id = CharField(255, primary_key=True)
    payment = ForeignKeyField(Payment, backref="checkout_sessions", index=True, on_delete="CASCADE")
    payment_intent_id = CharField(255, null=True)
    presentment_amount = BigIntegerField(null=True)
    presentment_currency = CharField(10, null=True)
    created_at = DateTimeField(default=utcnow)


# The tables that hold data (ProductCount is derived from product by its triggers).
ALL_MODELS = [
    User,
    RefreshSession,
    LoginThrottle,
    Product,
    Order,
    OrderItem,
    Payment,
    StripeEvent,
    StockMovement,
    OrderHistory,
    SyncCursor,
    Refund,
    PaymentReview,
    Shipment,
    ShipmentLine,
    RefundLine,
    ShippingRate,
    Dispute,
    FraudWarning,
    CheckoutSession,
]
