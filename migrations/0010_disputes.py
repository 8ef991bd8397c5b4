"""Disputes and early fraud warnings (issue 18, item 4).

* `order.disputed`: true while the order has a dispute that is open or was lost (the
  money is, or went, back to the buyer); shipping waits on it.
* `dispute`: one row per Stripe dispute (`du_…`, the primary key), linked to the payment
  and order through its PaymentIntent when we know it, and unlinked (both null) when we
  do not. `last_event_at` is the `created` of the newest event applied, so an older
  event delivered late never moves a dispute back.
* `fraud_warning`: one row per Radar early fraud warning (`issfr_…`).

The models below are a frozen copy of shopctl.models as of this migration.
"""

from peewee import BigIntegerField, BooleanField, CharField, DateTimeField, ForeignKeyField, Model

ADD_DISPUTED = 'ALTER TABLE "order" ADD COLUMN "disputed" BOOLEAN NOT NULL DEFAULT FALSE'


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

    class Dispute(Base):
        id = CharField(255, primary_key=True)
        charge_id = CharField(255, null=True)
        payment_intent_id = CharField(255, null=True, index=True)
        payment = ForeignKeyField(Payment, null=True, index=True, on_delete="SET NULL")
        order = ForeignKeyField(Order, null=True, index=True, on_delete="SET NULL")
        amount_cents = BigIntegerField()
        currency = CharField(10)
        reason = CharField(50)
        status = CharField(30, index=True)
        evidence_due_by = DateTimeField(null=True)
        funds_withdrawn_cents = BigIntegerField(default=0)
        funds_reinstated_cents = BigIntegerField(default=0)
        problem = CharField(500, null=True)
        stripe_created_at = DateTimeField(null=True)
        last_event_id = CharField(255)
        last_event_at = DateTimeField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()

    class FraudWarning(Base):
        id = CharField(255, primary_key=True)
        charge_id = CharField(255, null=True)
        payment_intent_id = CharField(255, null=True, index=True)
        payment = ForeignKeyField(Payment, null=True, index=True, on_delete="SET NULL")
        order = ForeignKeyField(Order, null=True, index=True, on_delete="SET NULL")
        fraud_type = CharField(50)
        actionable = BooleanField()
        stripe_created_at = DateTimeField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()

    return Dispute, FraudWarning


def up(migrator, db):
    db.execute_sql(ADD_DISPUTED)
    db.create_tables(_tables(db))


def down(migrator, db):
    db.drop_tables(list(reversed(_tables(db))))
    db.execute_sql('ALTER TABLE "order" DROP COLUMN "disputed"')
