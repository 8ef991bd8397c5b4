"""Every table of the first release, with the constraints that protect money and stock.

The models below are a frozen copy of shopctl.models as of this migration: later
changes to the application models must not change what this script creates.
"""

import uuid

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    Check,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

ORDER_STATUSES = "'UNPAID','PROCESSING','PAID','FAILED','CANCELED','EXPIRED','REFUNDED'"
PAYMENT_STATUSES = "'PENDING','PROCESSING','PAID','FAILED','CANCELED','EXPIRED','REFUNDED'"
EVENT_STATUSES = "'RECEIVED','PROCESSED','IGNORED','FAILED'"


def _uuid():
    return str(uuid.uuid4())


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        id = CharField(36, primary_key=True, default=_uuid)
        email = CharField(254, unique=True)
        password_hash = CharField(100)
        name = CharField(200, null=True)
        role = CharField(10, default="USER", constraints=[Check("role IN ('USER','ADMIN')")])
        is_deleted = BooleanField(default=False)
        created_at = DateTimeField()
        updated_at = DateTimeField()

    class RefreshSession(Base):
        id = CharField(36, primary_key=True)
        user = ForeignKeyField(User, on_delete="CASCADE")
        token_hash = CharField(64, unique=True)
        family_id = CharField(36, index=True)
        revoked = BooleanField(default=False)
        rotated_at = DateTimeField(null=True)
        expires_at = DateTimeField()
        created_at = DateTimeField()

    class LoginThrottle(Base):
        key = CharField(300, primary_key=True)
        failures = IntegerField(default=0)
        window_started_at = DateTimeField()
        locked_until = DateTimeField(null=True)

    class Product(Base):
        id = CharField(36, primary_key=True)
        name = CharField(200, unique=True)
        description = TextField(null=True)
        price_cents = BigIntegerField(constraints=[Check("price_cents >= 0")])
        currency = CharField(3, default="usd")
        quantity = IntegerField(default=0, constraints=[Check("quantity >= 0")])
        is_archived = BooleanField(default=False, index=True)
        created_at = DateTimeField(index=True)
        updated_at = DateTimeField()

    class Order(Base):
        id = CharField(36, primary_key=True)
        user = ForeignKeyField(User)
        status = CharField(12, index=True, constraints=[Check(f"status IN ({ORDER_STATUSES})")])
        amount_cents = BigIntegerField(constraints=[Check("amount_cents >= 0")])
        currency = CharField(3)
        pay_later = BooleanField(default=False)
        expires_at = DateTimeField(index=True)
        stock_released = BooleanField(default=False)
        idempotency_key = CharField(255, null=True)
        request_hash = CharField(64, null=True)
        created_at = DateTimeField(index=True)
        updated_at = DateTimeField()

        class Meta:
            table_name = "order"
            indexes = ((("user", "idempotency_key"), True), (("user", "created_at"), False))

    class OrderItem(Base):
        id = CharField(36, primary_key=True)
        order = ForeignKeyField(Order, on_delete="CASCADE")
        product = ForeignKeyField(Product)
        product_name = CharField(200)
        quantity = IntegerField(constraints=[Check("quantity > 0")])
        price_cents = BigIntegerField(constraints=[Check("price_cents >= 0")])

    class Payment(Base):
        id = CharField(36, primary_key=True)
        order = ForeignKeyField(Order, unique=True, on_delete="CASCADE")
        status = CharField(12, index=True, constraints=[Check(f"status IN ({PAYMENT_STATUSES})")])
        amount_cents = BigIntegerField(constraints=[Check("amount_cents >= 0")])
        currency = CharField(3)
        session_id = CharField(255, null=True, unique=True)
        payment_intent_id = CharField(255, null=True, unique=True)
        payment_url = TextField(null=True)
        session_expires_at = DateTimeField(null=True)
        attempts = IntegerField(default=0)
        last_error = TextField(null=True)
        refunded_cents = BigIntegerField(
            default=0, constraints=[Check("refunded_cents >= 0 AND refunded_cents <= amount_cents")]
        )
        late_outcome = CharField(20, null=True)
        paid_at = DateTimeField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()

    class StripeEvent(Base):
        id = CharField(255, primary_key=True)
        type = CharField(100, index=True)
        payload = TextField()
        status = CharField(10, index=True, constraints=[Check(f"status IN ({EVENT_STATUSES})")])
        source = CharField(10, default="webhook")
        attempts = IntegerField(default=0)
        last_error = TextField(null=True)
        payment = ForeignKeyField(Payment, null=True, on_delete="SET NULL")
        stripe_created_at = DateTimeField(null=True)
        received_at = DateTimeField(index=True)
        processed_at = DateTimeField(null=True)

    class StockMovement(Base):
        id = AutoField()
        product = ForeignKeyField(Product, index=True)
        delta = IntegerField()
        reason = CharField(30)
        order = ForeignKeyField(Order, null=True, index=True)
        created_at = DateTimeField()

    class OrderHistory(Base):
        id = AutoField()
        order = ForeignKeyField(Order, index=True, on_delete="CASCADE")
        from_status = CharField(12, null=True)
        to_status = CharField(12)
        reason = CharField(200)
        actor = CharField(255)
        created_at = DateTimeField()

    class SyncCursor(Base):
        name = CharField(50, primary_key=True)
        value = CharField(255)
        updated_at = DateTimeField()

    return [
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
    ]


def up(migrator, db):
    db.create_tables(_tables(db))


def down(migrator, db):
    db.drop_tables(list(reversed(_tables(db))))
