"""What the router cannot tell about each route: its tag, auth, success message, data and
the statuses its rules can answer. Keyed by route name (blueprint.handler); `openapi`
adds the statuses every route of a kind can answer (400 for input, 401 for auth, …).

Request bodies and parameters are the pydantic models of `shopctl.schemas` that validate
them, and the examples here are what `shopctl api postman` sends.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel

from shopctl import checkout_schemas as c
from shopctl import schemas as s
from shopctl.api import openapi_models as out
from shopctl.api.docs import ASSETS, AssetPath
from shopctl.api.openapi_fulfilment import FULFILMENT_OPERATIONS, FULFILMENT_REQUESTS
from shopctl.api.openapi_operation import Operation

TAGS = {
    "System": "The welcome and the health check",
    "Auth": "Log in, refresh the access token, log out, change password",
    "User": "Sign up and the signed-in user's profile",
    "Product": "The catalog: anyone reads it, admins change it",
    "Order": "Place (pay now or later), pay, cancel, read and list orders",
    "Payment": "Payment status and Stripe's webhook",
    "Docs": "This document and its browsable page",
    "Checkout": "The pages Stripe Checkout returns the buyer to (HTML, outside /api/v1)",
}

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    s.Registration,
    s.Login,
    s.RefreshTokenBody,
    s.PasswordChange,
    s.ProductCreate,
    s.ProductUpdate,
    s.OrderCreate,
    *FULFILMENT_REQUESTS,
)

LOGIN_EXAMPLE = {"email": "buyer@example.com", "password": "Str0ng!Pass"}
ORDER_EXAMPLE = {"items": [{"productId": "3f2b6c1e-8a4d-4f7e-9b1a-2c3d4e5f6a7b", "quantity": 2}]}
SIGNATURE = {
    "name": "Stripe-Signature",
    "in": "header",
    "required": True,
    "description": "`t=<timestamp>,v1=<HMAC-SHA256>` made with STRIPE_WEBHOOK_SECRET",
    "schema": {"type": "string"},
}
WEBHOOK = Operation(
    "Payment",
    "Receive a Stripe event",
    "Webhook processed",
    out.WebhookReceipt,
    body=out.StripeEvent,
    headers=(SIGNATURE,),
    errors=(400,),
    description="Verified on the raw body before anything is stored; 400 for a bad "
    "signature (nothing stored), 2xx for processed, duplicate and ignored events, 500 when "
    "processing failed (stored as FAILED so Stripe retries).",
)


def _json(schema: dict, description: str, media: str = "application/json") -> dict:
    return {"description": description, "content": {media: {"schema": schema}}}


HTML_PAGE = {"type": "string", "contentMediaType": "text/html"}
PAGE_ERRORS = (400, 404, 500, 503)  # the statuses a page answers, each with a page


def page_error(description: str) -> dict:
    """The response component of a page's failure: a page that says what went wrong."""
    return _json(HTML_PAGE, description, "text/html")


WELCOME = {
    "type": "object",
    "required": ["statusCode", "success", "message", "data"],
    "properties": {
        "statusCode": {"const": 200},
        "success": {"const": True},
        "message": {"type": "string"},
        "data": {"$ref": "#/components/schemas/Welcome"},
    },
    "description": "The v1 API's welcome: `data`'s fields are also at the top level.",
}

ORDER_LIMITS = (
    "A buyer holds at most `MAX_OPEN_ORDERS` unpaid orders (409 says when one frees) and "
    "places at most `ORDER_RATE_LIMIT` orders (429 with `Retry-After`); admins are not "
    "limited. At most 10,000 units of one product per order, repeated lines included."
)

OPERATIONS: dict[str, Operation] = {
    "root": Operation("System", "Welcome", success=_json(WELCOME, "Welcome"), database=False),
    "system.health": Operation("System", "Health check", "Healthy", out.Health),
    # users
    "users.register": Operation(
        "User",
        "Sign up",
        "User created successfully.",
        out.User,
        status=201,
        body=s.Registration,
        errors=(409, 429),
        example={"email": "buyer@example.com", "password": "Str0ng!Pass", "name": "Ada"},
        description="Password: 8+ characters with an upper and a lower case letter, a digit "
        "and a special character. 409 when the email (case-insensitive) is taken; 429 past "
        "the registrations allowed per client address (`REGISTRATION_RATE_LIMIT`).",
    ),
    "users.me": Operation("User", "My profile", "User fetched successfully", out.User, auth="user"),
    # auth
    "auth.login": Operation(
        "Auth",
        "Log in",
        "User Logged In Successfully",
        out.Session,
        body=s.Login,
        example=LOGIN_EXAMPLE,
        errors=(401, 429),
        response_headers=("Set-Cookie",),
        description="Also sets the HttpOnly cookies `accessToken` and `refreshToken`. Failed "
        "attempts are rate limited per (email, client address), per client address and per "
        "email (429 with `Retry-After`).",
    ),
    "auth.refresh_token": Operation(
        "Auth",
        "Get a new access token",
        "New Access Token Retrived Successfully",
        out.TokenPair,
        body=s.RefreshTokenBody,
        body_required=False,
        example={"refreshToken": "<refreshToken from login>"},
        errors=(401, 403),
        response_headers=("Set-Cookie",),
        description="The refresh token comes in the body or the `refreshToken` cookie and is "
        "rotated; reusing a rotated one ends the whole session (401).",
    ),
    "auth.logout": Operation(
        "Auth",
        "Log out",
        "User Logged Out Successfully",
        body=s.RefreshTokenBody,
        body_required=False,
        example={"refreshToken": "<refreshToken from login>"},
        errors=(401, 403),
        response_headers=("Set-Cookie",),
        description="Clears the cookies and ends the session of the refresh token given in "
        "the body or the cookie.",
    ),
    "auth.change_password": Operation(
        "Auth",
        "Change my password",
        "Password Changed Successfully",
        auth="user",
        body=s.PasswordChange,
        errors=(429,),
        example={"oldPassword": "Str0ng!Pass", "newPassword": "Str0nger!Pass2"},
        description="Ends every other session of the user.",
    ),
    # products
    "products.list_products": Operation(
        "Product",
        "List products",
        "Products retrieved successfully",
        [out.Product],
        query=s.ProductListQuery,
        paged=True,
        description=out.PAGING,
    ),
    "products.get_product": Operation(
        "Product",
        "Get a product",
        "Product retrieved successfully",
        out.Product,
        path=s.ProductRef,
    ),
    "products.create_product": Operation(
        "Product",
        "Create a product",
        "Product created successfully",
        out.Product,
        status=201,
        auth="admin",
        body=s.ProductCreate,
        errors=(409,),
        example={
            "name": "Coffee mug",
            "description": "350 ml, stoneware",
            "price": "12.50",
            "quantity": 100,
        },
        description="`price` is a decimal number or string (`12.50`), converted with the "
        "currency's exponent; or give `priceCents`. 409 when the name is taken.",
    ),
    "products.update_product": Operation(
        "Product",
        "Change a product",
        "Product updated successfully",
        out.Product,
        auth="admin",
        body=s.ProductUpdate,
        path=s.ProductRef,
        errors=(409,),
        example={"description": "350 ml, stoneware, dishwasher safe", "quantity": 80},
    ),
    "products.delete_product": Operation(
        "Product",
        "Delete a product",
        ("Product deleted successfully", "Product archived"),
        auth="admin",
        path=s.ProductRef,
        description="A product that was ever ordered is archived instead, out of the catalog.",
    ),
    # orders
    "orders.create_order": Operation(
        "Order",
        "Place an order and pay now",
        "Order created successfully",
        out.OrderPlaced,
        status=201,
        auth="user",
        body=s.OrderCreate,
        example=ORDER_EXAMPLE,
        idempotent=True,
        errors=(404, 409, 422, 429),
        response_headers=("Idempotent-Replayed",),
        description="Reserves the stock until `expiresAt` and starts a Stripe Checkout "
        "Session: redirect the buyer to `paymentUrl`. " + ORDER_LIMITS,
    ),
    "orders.create_pay_later_order": Operation(
        "Order",
        "Place an order, pay later",
        "Order created (pay later)",
        out.OrderPlacedLater,
        status=201,
        auth="user",
        body=s.OrderCreate,
        example=ORDER_EXAMPLE,
        idempotent=True,
        errors=(404, 409, 422, 429),
        response_headers=("Idempotent-Replayed",),
        description="Reserves the stock until `expiresAt`; pay with `POST /order/{orderId}/pay`. "
        + ORDER_LIMITS,
    ),
    "orders.pay_order": Operation(
        "Order",
        "Pay an order",
        "Payment started",
        out.Checkout,
        auth="user",
        path=s.OrderRef,
        errors=(409, 410, 502),
        description="410 once the reservation expired, 409 when already paid.",
    ),
    "orders.cancel_order": Operation(
        "Order",
        "Cancel an order",
        "Order canceled successfully",
        out.CanceledOrder,
        auth="user",
        path=s.OrderRef,
        errors=(409,),
        description="Only UNPAID orders; the stock goes back and the Checkout Session is "
        "expired at Stripe first (within STRIPE_TIMEOUT). If Stripe cannot be reached, the "
        "order is canceled anyway and `stripe.message` says what follows. 409 when Stripe "
        "says it was paid meanwhile. The owner or an admin.",
    ),
    "orders.list_orders": Operation(
        "Order",
        "List orders",
        "Orders retrieved successfully",
        [out.Order],
        auth="user",
        query=s.OrderListQuery,
        paged=True,
        description="Newest first: the caller's orders, every order for an admin. " + out.PAGING,
    ),
    "orders.get_order": Operation(
        "Order",
        "Get an order",
        "Order retrieved successfully",
        out.Order,
        auth="user",
        path=s.OrderRef,
        description="The owner's or, for an admin, anyone's.",
    ),
    # payments
    "payments.status": Operation(
        "Payment",
        "Payment status",
        "Payment status",
        out.PaymentStatus,
        auth="user",
        path=s.PaymentIdPath,
        query=c.PaymentStatusQuery,
        errors=(429, 502),
        description="With `sync=true` the Checkout Session is retrieved from Stripe first "
        "and, if it completed, applied as its webhook would be (idempotent with it), as the "
        "built-in success page does. At most one sync per payment every 2 seconds (429).",
    ),
    "payments.webhook": WEBHOOK,
    "dashboard_webhook": replace(
        WEBHOOK, summary="Receive a Stripe event (the Express API's address)"
    ),
    # the built-in checkout pages
    "pages.checkout_success": Operation(
        "Checkout",
        "Checkout's success page",
        query=c.CheckoutReturn,
        errors=(404,),
        page=True,
        success=_json(HTML_PAGE, "The order as Stripe confirmed it", "text/html"),
        description="Where Checkout sends the buyer after paying (CHECKOUT_RETURN, by default "
        "while FRONTEND_URL is the development default). Retrieves the session from Stripe "
        "and applies a completed one as its webhook would, then shows the order's status, "
        "items, total and id; refreshes itself while the payment is processing.",
    ),
    "pages.checkout_cancel": Operation(
        "Checkout",
        "Checkout's cancel page",
        query=c.CheckoutCancel,
        errors=(404,),
        page=True,
        success=_json(HTML_PAGE, "The order, still reserved until its expiry", "text/html"),
        description="Where Checkout sends a buyer who canceled: the order stays reserved "
        "until its expiry, with a link to pay again.",
    ),
    # monitoring: routed only when METRICS_TOKEN is set (README, Monitoring)
    "metrics": Operation(
        "System",
        "Prometheus metrics, summed over every worker",
        database=False,
        headers=(
            {
                "name": "Authorization",
                "in": "header",
                "required": True,
                "description": "`Bearer <METRICS_TOKEN>`",
                "schema": {"type": "string"},
            },
        ),
        errors=(401,),
        success=_json({"type": "string"}, "Prometheus' text format", "text/plain"),
    ),
    # docs
    "docs.openapi_json": Operation(
        "Docs",
        "This OpenAPI document",
        database=False,
        success=_json(
            {"type": "object", "required": ["openapi", "info", "paths"]}, "The OpenAPI 3.1 document"
        ),
    ),
    "docs.docs_page": Operation(
        "Docs",
        "Browsable API docs",
        database=False,
        success=_json({"type": "string"}, "Swagger UI, served without any CDN", "text/html"),
    ),
    "docs.docs_asset": Operation(
        "Docs",
        "A file of the docs page",
        path=AssetPath,
        database=False,
        success={
            "description": "The file",
            "content": {media_type: {} for media_type in ASSETS.values()},
        },
    ),
} | FULFILMENT_OPERATIONS
