"""Fulfilment, returns and line refunds (issue 18, items 2 and 3).

* `order.fulfillment_status`: the second axis beside the payment `status`
  (UNFULFILLED, PARTIALLY_FULFILLED, FULFILLED, RETURNED); every existing order starts
  UNFULFILLED, as nothing was ever recorded shipped.
* `order_item.shipped_quantity`, `refunded_quantity`, `restocked_quantity`: what of each
  line shipped, was refunded and came back to stock; only guarded UPDATEs change them.
* `order_history.event`: NULL for a status move (every existing row); the name of a
  fulfilment or line-refund change otherwise, whose from/to stay the payment status.
* `stock_movement.refund_id`: the refund a restock movement belongs to.
* `refund.idempotency_key`, `request_hash`: a retried refund request finds its refund;
  `refund.shipping_cents`: the order's shipping a refund pays back (`--shipping`).
* `shipment`, `shipment_line`, `refund_line`: new tables.

The models below are a frozen copy of shopctl.models as of this migration.
"""

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    Check,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

STATUSES = "'UNFULFILLED','PARTIALLY_FULFILLED','FULFILLED','RETURNED'"


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Order(Base):
        id = CharField(36, primary_key=True)

        class Meta:
            table_name = "order"

    class OrderItem(Base):
        id = CharField(36, primary_key=True)

    class Refund(Base):
        id = CharField(36, primary_key=True)

    class Shipment(Base):
        id = CharField(36, primary_key=True)
        order = ForeignKeyField(Order, index=True, on_delete="CASCADE")
        carrier = CharField(100, null=True)
        tracking_number = CharField(100, null=True)
        tracking_url = TextField(null=True)
        actor = CharField(255)
        idempotency_key = CharField(255, null=True)
        request_hash = CharField(64, null=True)
        created_at = DateTimeField()
        canceled_at = DateTimeField(null=True)
        canceled_by = CharField(255, null=True)

        class Meta:
            indexes = ((("order", "idempotency_key"), True),)

    class ShipmentLine(Base):
        id = AutoField()
        shipment = ForeignKeyField(Shipment, index=True, on_delete="CASCADE")
        item = ForeignKeyField(OrderItem, index=True, on_delete="CASCADE")
        quantity = IntegerField(constraints=[Check("quantity > 0")])

    class RefundLine(Base):
        id = AutoField()
        refund = ForeignKeyField(Refund, index=True, on_delete="CASCADE")
        item = ForeignKeyField(OrderItem, index=True, on_delete="CASCADE")
        quantity = IntegerField(constraints=[Check("quantity > 0")])
        restock = BooleanField()
        restocked_at = DateTimeField(null=True)
        released_at = DateTimeField(null=True)

    return Refund, Shipment, ShipmentLine, RefundLine


# Plain DDL, the same on both databases: ADD COLUMN … NOT NULL DEFAULT fills existing
# rows without the table rebuild SQLite's migrator would do for a NOT NULL column.
COLUMNS = (
    'ALTER TABLE "order" ADD COLUMN "fulfillment_status" VARCHAR(20) NOT NULL '
    f"DEFAULT 'UNFULFILLED' CHECK (\"fulfillment_status\" IN ({STATUSES}))",
    'ALTER TABLE "order_item" ADD COLUMN "shipped_quantity" INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE "order_item" ADD COLUMN "refunded_quantity" INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE "order_item" ADD COLUMN "restocked_quantity" INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE "order_history" ADD COLUMN "event" VARCHAR(20)',
    'ALTER TABLE "stock_movement" ADD COLUMN "refund_id" VARCHAR(36) '
    'REFERENCES "refund" ("id") ON DELETE SET NULL',
    'CREATE INDEX "stock_movement_refund_id" ON "stock_movement" ("refund_id")',
    'ALTER TABLE "refund" ADD COLUMN "idempotency_key" VARCHAR(255)',
    'ALTER TABLE "refund" ADD COLUMN "request_hash" VARCHAR(64)',
    'ALTER TABLE "refund" ADD COLUMN "shipping_cents" BIGINT NOT NULL DEFAULT 0',
    'CREATE UNIQUE INDEX "refund_order_id_idempotency_key" '
    'ON "refund" ("order_id", "idempotency_key")',
)


def up(migrator, db):
    for statement in COLUMNS:
        db.execute_sql(statement)
    db.create_tables(list(_tables(db)[1:]))


def down(migrator, db):
    _, shipment, shipment_line, refund_line = _tables(db)
    db.drop_tables([refund_line, shipment_line, shipment])
    migrator.migrate(
        migrator.drop_index("refund", "refund_order_id_idempotency_key"),
        migrator.drop_column("refund", "shipping_cents"),
        migrator.drop_column("refund", "request_hash"),
        migrator.drop_column("refund", "idempotency_key"),
        migrator.drop_index("stock_movement", "stock_movement_refund_id"),
        migrator.drop_column("stock_movement", "refund_id"),
        migrator.drop_column("order_history", "event"),
        migrator.drop_column("order_item", "restocked_quantity"),
        migrator.drop_column("order_item", "refunded_quantity"),
        migrator.drop_column("order_item", "shipped_quantity"),
        migrator.drop_column("order", "fulfillment_status"),
    )
