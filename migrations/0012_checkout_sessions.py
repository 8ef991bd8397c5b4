"""`checkout_session`: every Checkout Session created for a payment, not only the current
one (issue #15). A pay-later order paid again gets a new session when the old one is about
to expire; a payment that still lands on the old one is the order's, not money to review.
Its events fill in its PaymentIntent and, with legacy Adaptive Pricing, the amount and
currency the buyer was charged in. Each payment's current session becomes its first row.

The model below is a frozen copy of shopctl.models as of this migration.
"""

from peewee import BigIntegerField, CharField, DateTimeField, ForeignKeyField, Model


def _table(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Payment(Base):
        id = CharField(36, primary_key=True)

    class CheckoutSession(Base):
        id = CharField(255, primary_key=True)
        payment = ForeignKeyField(Payment, index=True, on_delete="CASCADE")
        payment_intent_id = CharField(255, null=True)
        presentment_amount = BigIntegerField(null=True)
        presentment_currency = CharField(10, null=True)
        created_at = DateTimeField()

    return CheckoutSession


def up(migrator, db):
    db.create_tables([_table(db)])
    db.execute_sql(
        'INSERT INTO "checkout_session" ("id", "payment_id", "payment_intent_id", "created_at") '
        'SELECT "session_id", "id", "payment_intent_id", "updated_at" FROM "payment" '
        'WHERE "session_id" IS NOT NULL'
    )


def down(migrator, db):
    db.drop_tables([_table(db)])
