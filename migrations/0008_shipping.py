"""Shipping at checkout (issue 18, item 1).

* `shipping_rate`: the options Checkout offers (name, amount, currency, delivery estimate
  in business days, active). Rates are disabled, never edited or deleted, so a session
  priced with one can always be checked against it.
* `order.shipping_*`: the address, the rate chosen and its amount, stored when the payment
  is applied (null: nothing shipped, as for every order before this migration).
"""

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    Check,
    DateTimeField,
    IntegerField,
    Model,
    SmallIntegerField,
)

ORDER_COLUMNS = (
    ("shipping_name", CharField(300, null=True)),
    ("shipping_line1", CharField(300, null=True)),
    ("shipping_line2", CharField(300, null=True)),
    ("shipping_city", CharField(200, null=True)),
    ("shipping_postal_code", CharField(40, null=True)),
    ("shipping_state", CharField(200, null=True)),
    ("shipping_country", CharField(2, null=True)),
    ("shipping_phone", CharField(40, null=True)),
    ("shipping_rate_id", IntegerField(null=True)),
    ("shipping_rate_name", CharField(100, null=True)),
    ("shipping_cents", BigIntegerField(null=True)),
)


def _shipping_rate(db):
    """A frozen copy of shopctl.models.ShippingRate as of this migration."""

    class ShippingRate(Model):
        id = AutoField()
        name = CharField(100)
        amount_cents = BigIntegerField(constraints=[Check("amount_cents >= 0")])
        currency = CharField(3)
        min_days = SmallIntegerField(null=True)
        max_days = SmallIntegerField(null=True)
        active = BooleanField()
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "shipping_rate"

    return ShippingRate


def up(migrator, db):
    db.create_tables([_shipping_rate(db)])
    migrator.migrate(
        *(migrator.add_column("order", name, column) for name, column in ORDER_COLUMNS)
    )


def down(migrator, db):
    migrator.migrate(*(migrator.drop_column("order", name) for name, _ in ORDER_COLUMNS))
    db.drop_tables([_shipping_rate(db)])
