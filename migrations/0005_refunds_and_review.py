"""Refunds followed to their end, and payments flagged for review (issue #15).

`refund`: one row per refund with Stripe's states (PENDING, SUCCEEDED, FAILED, CANCELED);
operator refunds are reserved as a row before Stripe is asked. Existing refunded totals
become one row each (SUCCEEDED, no Stripe id: the charge said so, the refund is unnamed),
so the rows add up to `payment.refunded_cents` from the start.

`payment_review`: money Stripe reported that did not match the order (amount, currency,
session or PaymentIntent), with what arrived, until an operator settles it.

The models below are a frozen copy of shopctl.models as of this migration.
"""

import uuid
from datetime import UTC, datetime

from peewee import (
    BigIntegerField,
    CharField,
    Check,
    DateTimeField,
    ForeignKeyField,
    Model,
    TextField,
)

REFUND_STATUSES = "'PENDING','SUCCEEDED','FAILED','CANCELED'"
REVIEW_STATUSES = "'OPEN','REFUNDED','DISMISSED'"


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Order(Base):
        id = CharField(36, primary_key=True)

        class Meta:
            table_name = "order"

    class Payment(Base):
        id = CharField(36, primary_key=True)

    class Refund(Base):
        id = CharField(36, primary_key=True)
        stripe_refund_id = CharField(255, null=True, unique=True)
        payment = ForeignKeyField(Payment, index=True, on_delete="CASCADE")
        order = ForeignKeyField(Order, index=True, on_delete="CASCADE")
        amount_cents = BigIntegerField(constraints=[Check("amount_cents > 0")])
        status = CharField(10, constraints=[Check(f"status IN ({REFUND_STATUSES})")])
        reason = CharField(200, null=True)
        failure_reason = CharField(100, null=True)
        actor = CharField(255)
        created_at = DateTimeField()
        updated_at = DateTimeField()

    class PaymentReview(Base):
        id = CharField(36, primary_key=True)
        payment = ForeignKeyField(Payment, index=True, on_delete="CASCADE")
        order = ForeignKeyField(Order, index=True, on_delete="CASCADE")
        status = CharField(10, index=True, constraints=[Check(f"status IN ({REVIEW_STATUSES})")])
        reason = CharField(500)
        event_id = CharField(255, null=True)
        amount_cents = BigIntegerField(null=True)
        currency = CharField(10, null=True)
        session_id = CharField(255, null=True)
        payment_intent_id = CharField(255, null=True)
        note = TextField(null=True)
        settled_by = CharField(255, null=True)
        settled_at = DateTimeField(null=True)
        created_at = DateTimeField()

    return Refund, PaymentReview


def up(migrator, db):
    refund, review = _tables(db)
    db.create_tables([refund, review])
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = db.execute_sql(
        'SELECT "id", "order_id", "refunded_cents" FROM "payment" WHERE "refunded_cents" > 0'
    ).fetchall()
    for payment_id, order_id, cents in rows:
        refund.insert(
            id=str(uuid.uuid4()),
            payment=payment_id,
            order=order_id,
            amount_cents=cents,
            status="SUCCEEDED",
            reason="refunded before refunds were recorded one by one",
            actor="migration",
            created_at=now,
            updated_at=now,
        ).execute()


def down(migrator, db):
    refund, review = _tables(db)
    db.drop_tables([review, refund])
