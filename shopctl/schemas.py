"""Input validation shared by both front doors: API handlers and CLI commands.

Each schema is a pydantic model; `validate()` turns its errors into the v1 API's
validation list `[{path, message}]` inside an `InvalidInput`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shopctl.errors import InvalidInput
from shopctl.pagination import Cursor
from shopctl.since import parse_since

Schema = TypeVar("Schema", bound=BaseModel)


class Strict(BaseModel):
    """Base for request bodies: unknown fields are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _path(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "body"


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        errors.append({"path": _path(error["loc"]), "message": message})
    return errors


def unstorable_text(value: Any, path: str = "") -> list[dict[str, str]]:
    """Text no database can store: NUL characters (PostgreSQL) and lone surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            return [{"path": path or "body", "message": "must not contain NUL characters"}]
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [{"path": path or "body", "message": "must be valid Unicode text"}]
        return []
    if isinstance(value, dict):
        pairs = value.items()
    elif isinstance(value, list):
        pairs = enumerate(value)
    else:
        return []
    errors = []
    for key, item in pairs:
        where = f"{path}.{key}" if path else str(key)
        errors += unstorable_text(key, where) + unstorable_text(item, where)
    return errors


def validate(schema: type[Schema], data: Any) -> Schema:
    """`data` parsed by `schema`, or InvalidInput listing every problem."""
    if not isinstance(data, dict):
        raise InvalidInput([{"path": "body", "message": "Expected a JSON object"}])
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_errors(exc)) from None


# --- orders ------------------------------------------------------------------------------

ORDER_STATUSES = ("UNPAID", "PROCESSING", "PAID", "FAILED", "CANCELED", "EXPIRED", "REFUNDED")
MAX_ORDER_LINES = 100
MAX_LINE_QUANTITY = 10_000


def _upper_status(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


OrderStatus = Annotated[Literal[ORDER_STATUSES], BeforeValidator(_upper_status)]
FULFILLMENT_STATUSES = ("UNFULFILLED", "PARTIALLY_FULFILLED", "FULFILLED", "RETURNED")
FulfillmentStatus = Annotated[Literal[FULFILLMENT_STATUSES], BeforeValidator(_upper_status)]


class OrderLine(Strict):
    productId: UUID
    # strict: "3" or 2.5 is a client bug worth reporting, not something to coerce
    quantity: Annotated[int, Field(strict=True, ge=1, le=MAX_LINE_QUANTITY)]

    @property
    def product_id(self) -> str:
        return str(self.productId)


class OrderCreate(Strict):
    items: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_ORDER_LINES)]


class OrderRef(Strict):
    orderId: UUID


def _printable_key(value: str) -> str:
    if not 1 <= len(value) <= 255 or not all(" " <= char <= "~" for char in value):
        raise ValueError("must be 1 to 255 printable ASCII characters")
    return value


class IdempotencyKey(Strict):
    key: Annotated[str, Field(alias="Idempotency-Key"), AfterValidator(_printable_key)]


class OrderListQuery(Strict):
    page: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    status: OrderStatus | None = None
    fulfillmentStatus: FulfillmentStatus | None = None
    cursor: Cursor | None = None


class OrderSearch(Strict):
    """`shopctl orders list` filters; `user` is an email or a user id."""

    status: OrderStatus | None = None
    fulfillment: FulfillmentStatus | None = None
    user: Annotated[str, Field(min_length=1, max_length=254)] | None = None
    since: Annotated[datetime, BeforeValidator(parse_since)] | None = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 50
    cursor: Cursor | None = None


# --- accounts ----------------------------------------------------------------------------

# bcrypt only reads a password's first 72 bytes (bcrypt 5 refuses longer ones).
MAX_PASSWORD_BYTES = 72


class Credentials(Strict):
    """Bodies that carry passwords: never trimmed, so a password is exactly what was typed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _normal_email(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _plausible_email(value: str) -> str:
    local, at, domain = value.partition("@")
    labels = domain.split(".")
    if (
        not at
        or not local
        or "@" in domain
        or len(labels) < 2
        or not all(labels)
        or any(char.isspace() for char in value)
    ):
        raise ValueError("Invalid email address")
    return value


Email = Annotated[
    str,
    BeforeValidator(_normal_email),
    Field(min_length=3, max_length=254),
    AfterValidator(_plausible_email),
]


def password_problems(password: str) -> list[str]:
    """The v1 API's password policy: one message per broken rule, as existing clients expect."""
    has_special = any(not c.isalnum() for c in password)
    rules = {
        "Password must be at least 8 characters long.": len(password) >= 8,
        "Password must contain at least 1 uppercase letter.": any(c.isupper() for c in password),
        "Password must contain at least 1 lowercase letter.": any(c.islower() for c in password),
        "Password must contain at least 1 number.": any(c.isdigit() for c in password),
        "Password must contain at least 1 special character.": has_special,
        "Password must be at most 72 bytes long.": len(password.encode()) <= MAX_PASSWORD_BYTES,
    }
    return [message for message, kept in rules.items() if not kept]


def _strong_password(value: str) -> str:
    if broken := password_problems(value):
        errors = [
            {"type": "value_error", "loc": (), "input": value, "ctx": {"error": ValueError(m)}}
            for m in broken
        ]
        raise ValidationError.from_exception_data("password", errors)
    return value


NewPassword = Annotated[str, AfterValidator(_strong_password)]
# A blank name is no name.
Name = Annotated[
    str | None,
    BeforeValidator(lambda v: (v.strip() or None) if isinstance(v, str) else v),
    Field(max_length=200),
]
# A password being checked, not set: any length a client may send, no policy (older accounts).
GivenPassword = Annotated[str, Field(min_length=1, max_length=1024)]


class Registration(Credentials):
    """`POST /user` and `shopctl users create`: one schema, two doors."""

    email: Email
    password: NewPassword
    name: Name | None = None


class Login(Credentials):
    email: Annotated[str, BeforeValidator(_normal_email), Field(min_length=1, max_length=254)]
    password: GivenPassword


class RefreshTokenBody(Strict):
    """`POST /auth/refresh-token` and `/auth/logout`: the token may also come in a cookie."""

    refreshToken: Annotated[str, Field(min_length=1, max_length=512)] | None = None


class PasswordChange(Credentials):
    old_password: Annotated[GivenPassword, Field(alias="oldPassword")]
    new_password: Annotated[NewPassword, Field(alias="newPassword")]


# --- products ----------------------------------------------------------------------------

from pydantic import WithJsonSchema  # noqa: E402

from shopctl.money import MAX_MINOR_UNITS  # noqa: E402

# The stock column is a 32-bit integer (at most 2,147,483,647). Stock on hand is bounded
# well below it, so units out in orders always fit when they come back; the catalog also
# checks that stock plus every unit held by orders fits (services/catalog/stock.py).
STOCK_COLUMN_MAX = 2**31 - 1
MAX_STOCK = 1_000_000_000
PRODUCT_SORTS = ("createdAt", "priceCents", "name")


def _no_control_characters(allowed: str):
    # PostgreSQL cannot store NUL in text, and a tab or newline in a name is a paste accident.
    def check(value: str) -> str:
        if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters")
        return value

    return AfterValidator(check)


def _blank_is_none(value: Any) -> Any:
    return (value.strip() or None) if isinstance(value, str) else value


def _amount(value: Any) -> Any:
    from shopctl.money import parse_amount

    return parse_amount(value)


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


ProductName = Annotated[str, Field(min_length=1, max_length=200), _no_control_characters("")]
Description = Annotated[
    Annotated[str, Field(max_length=1000), _no_control_characters("\t\n\r")] | None,
    BeforeValidator(_blank_is_none),
]
# A JSON number or a decimal string ("12.50"), kept as a Decimal; converted to minor units
# with the currency's exponent by the catalog service.
Amount = Annotated[
    Any,
    AfterValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$"},
            ],
            "examples": ["12.50"],
        }
    ),
]
PriceCents = Annotated[int, Field(strict=True, ge=0, le=MAX_MINOR_UNITS)]


def _within_stock_bound(value: int) -> int:
    if value > MAX_STOCK:
        raise ValueError(
            f"must be at most {MAX_STOCK:,} (the stock bound, which leaves room in the "
            f"{STOCK_COLUMN_MAX:,} column for every unit out in orders to come back)"
        )
    return value


Stock = Annotated[
    int,
    Field(strict=True, ge=0, json_schema_extra={"maximum": MAX_STOCK}),
    AfterValidator(_within_stock_bound),
]


def _exactly_one_price(value: Any, info) -> Any:
    if "price" not in info.data:
        return value  # price itself was invalid and is reported on its own
    if info.data["price"] is not None and value is not None:
        raise ValueError("give price or priceCents, not both")
    if info.data["price"] is None and value is None:
        raise ValueError("price (e.g. 12.50) or priceCents is required")
    return value


def _at_most_one_price(value: Any, info) -> Any:
    if info.data.get("price") is not None:
        raise ValueError("give price or priceCents, not both")
    return value


class ProductCreate(Strict):
    """`POST /product` and every row of `shopctl products seed --file`."""

    name: ProductName
    description: Description = None
    price: Amount | None = None
    priceCents: Annotated[PriceCents | None, AfterValidator(_exactly_one_price)] = Field(
        None, validate_default=True
    )
    quantity: Stock = 0


class ProductUpdate(Strict):
    """`PATCH /product/:id`: only the fields given change; null only clears the description."""

    name: ProductName = None
    description: Description = None
    price: Amount = None
    priceCents: Annotated[PriceCents, AfterValidator(_at_most_one_price)] = None
    quantity: Stock = None


class ProductRef(Strict):
    id: UUID


class StockLevel(Strict):
    quantity: Stock


class ProductListQuery(Strict):
    """`GET /product` and `shopctl products list`; a limit over 100 is refused, not clamped."""

    page: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    search: Annotated[
        Annotated[str, Field(max_length=200), _no_control_characters("")] | None,
        BeforeValidator(_blank_is_none),
    ] = None
    sortBy: Literal["createdAt", "priceCents", "name"] = "createdAt"
    sortOrder: Annotated[Literal["asc", "desc"], BeforeValidator(_lower)] = "desc"
    cursor: Cursor | None = None


class PaymentIdPath(Strict):
    paymentId: UUID


class EventSearch(Strict):
    """`shopctl events list` filters."""

    status: Literal["RECEIVED", "PROCESSED", "IGNORED", "FAILED"] | None = None
    type: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    since: Annotated[datetime, BeforeValidator(parse_since)] | None = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 50
    cursor: Cursor | None = None
