"""The v1 API's wire contract, as the Express API it replaces served it, through a real
`shopctl serve` wired to the Stripe sandbox: its messages verbatim, its camelCase field
names, the requests it accepted (what existing clients of the v1 API rely on)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from shopctl.schemas import Registration, validate
from shopctl.services.accounts import auth
from tests.conftest import WEBHOOK_SECRET

PASSWORD, NEW_PASSWORD = "Str0ng!Pass", "Str0nger!Pass2"
ADMIN = {"email": "ops@example.com", "password": "Adm1n!Secret"}


class V1Client:
    """A client that checks every answer against the v1 API's envelope and keeps them all."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30)
        self.bodies: list[dict] = []

    def call(
        self, method: str, path: str, status: int, message: str, token: str = "", **kwargs
    ) -> dict | list | None:
        headers = kwargs.pop("headers", {}) | (
            {"Authorization": f"Bearer {token}"} if token else {}
        )
        response = self.http.request(method, path, headers=headers, **kwargs)
        body = response.json()
        assert (response.status_code, body.get("message")) == (status, message), body
        assert body["success"] is True and body["statusCode"] == status, body
        self.bodies.append(body)
        return body["data"]


@pytest.fixture
def client(stripe_stack) -> Iterator[V1Client]:
    client = V1Client(stripe_stack.server.url)
    yield client
    client.http.close()


def _keys(value) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def signed(event: dict) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    moment = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{moment}.".encode() + body, hashlib.sha256)
    return body, {
        "Stripe-Signature": f"t={moment},v1={digest.hexdigest()}",
        "Content-Type": "application/json",
    }


def sign_up_and_log_in(client: V1Client) -> str:
    user = client.call(
        "POST",
        "/user",
        201,
        "User created successfully.",
        json={"email": "Buyer@Example.com", "password": PASSWORD, "name": "Ada"},
    )
    assert user.keys() >= {"id", "email", "name", "role", "createdAt", "updatedAt"}
    assert user["email"] == "buyer@example.com"
    # the Express API's validateRequest: a body {"data": "<json>"} is that JSON
    wrapped = {"data": json.dumps({"email": "buyer@example.com", "password": PASSWORD})}
    session = client.call("POST", "/auth/login", 200, "User Logged In Successfully", json=wrapped)
    assert session.keys() >= {"accessToken", "refreshToken", "user"}
    cookies = client.http.cookies
    assert cookies.get("accessToken") and cookies.get("refreshToken")
    me = client.call(
        "GET", "/user/me", 200, "User fetched successfully", token=session["accessToken"]
    )
    assert me["id"] == user["id"]
    pair = client.call(
        "POST",
        "/auth/refresh-token",
        200,
        "New Access Token Retrived Successfully",
        json={"refreshToken": session["refreshToken"]},
    )
    return pair["accessToken"]


def admin_token(client: V1Client, settings) -> str:
    auth.register(settings, validate(Registration, ADMIN), role="ADMIN")
    session = client.call("POST", "/auth/login", 200, "User Logged In Successfully", json=ADMIN)
    return session["accessToken"]


def catalog(client: V1Client, admin: str) -> str:
    mug = client.call(
        "POST",
        "/product",
        201,
        "Product created successfully",
        token=admin,
        json={"name": "Mug", "price": "12.50", "quantity": 10},
    )
    assert mug.keys() >= {"id", "name", "priceCents", "quantity", "createdAt", "updatedAt"}
    assert (mug["priceCents"], mug["quantity"]) == (1250, 10)
    cup = client.call(
        "POST",
        "/product",
        201,
        "Product created successfully",
        token=admin,
        json={"name": "Cup", "price": 7.5},
    )  # the Express API took numbers too
    assert cup["priceCents"] == 750
    listing = client.call(
        "GET",
        "/product",
        200,
        "Products retrieved successfully",
        params={"sortBy": "priceCents", "sortOrder": "asc"},
    )
    assert [p["name"] for p in listing] == ["Cup", "Mug"]
    # The Express API's page meta, and the cursor of a next page (none: this is the last).
    assert client.bodies[-1]["meta"] == {
        "page": 1,
        "limit": 10,
        "total": 2,
        "totalPage": 1,
        "nextCursor": None,
    }
    client.call("GET", f"/product/{mug['id']}", 200, "Product retrieved successfully")
    changed = client.call(
        "PATCH",
        f"/product/{mug['id']}",
        200,
        "Product updated successfully",
        token=admin,
        json={"price": 13},
    )
    assert changed["priceCents"] == 1300
    return mug["id"]


def orders(client: V1Client, buyer: str, product_id: str) -> str:
    items = {"items": [{"productId": product_id, "quantity": 1}]}
    now = client.call("POST", "/order", 201, "Order created successfully", token=buyer, json=items)
    assert now.keys() >= {"orderId", "paymentId", "paymentUrl", "sessionId"}
    assert now["paymentUrl"] and now["sessionId"].startswith("cs_")
    later = client.call(
        "POST", "/order/pay-later", 201, "Order created (pay later)", token=buyer, json=items
    )
    assert later.keys() >= {"orderId", "paymentId", "payLater"} and later["payLater"] is True
    rows = client.call("GET", "/order", 200, "Orders retrieved successfully", token=buyer)
    assert {row["id"] for row in rows} == {now["orderId"], later["orderId"]}
    item = rows[0]["items"][0]
    assert item.keys() >= {"orderId", "productId", "quantity", "priceCents"}
    status = client.call(
        "GET", f"/payment/{now['paymentId']}/status", 200, "Payment status", token=buyer
    )
    assert status.keys() >= {"paymentId", "status", "sessionId", "paymentUrl"}
    return now["sessionId"]


def webhooks(client: V1Client) -> None:
    event = {
        "id": "evt_v1_contract",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1"}},
    }
    for url in ("/payment/webhook", str(client.http.base_url.join("/webhook"))):
        body, headers = signed(event)
        client.call("POST", url, 200, "Webhook processed", content=body, headers=headers)


def sign_off(client: V1Client, buyer: str) -> None:
    client.call(
        "POST",
        "/auth/change-password",
        200,
        "Password Changed Successfully",
        token=buyer,
        json={"oldPassword": PASSWORD, "newPassword": NEW_PASSWORD},
    )
    client.call("POST", "/auth/logout", 200, "User Logged Out Successfully")
    assert not client.http.cookies.get("accessToken")


def test_the_v1_messages_and_field_names(client, settings):
    buyer = sign_up_and_log_in(client)
    admin = admin_token(client, settings)
    product_id = catalog(client, admin)
    orders(client, buyer, product_id)
    webhooks(client)
    sign_off(client, buyer)
    snake = {key for body in client.bodies for key in _keys(body) if "_" in key or key[0].isupper()}
    assert snake == set(), "the v1 API's JSON is camelCase"


def test_the_v1_error_envelopes(server):
    missing = server.request("GET", "/no/such/route")
    assert missing.status_code == 404
    assert missing.json() == {
        "statusCode": 404,
        "success": False,
        "message": "API NOT FOUND!",
        "error": {"path": "/api/v1/no/such/route", "message": "Your requested path is not found!"},
    }
    invalid = server.request("POST", "/user", json={"email": "not-an-email", "password": "x"})
    body = invalid.json()
    assert (invalid.status_code, body["success"], body["message"]) == (
        400,
        False,
        "Validation Error",
    )
    assert {issue["path"] for issue in body["error"]} == {"email", "password"}
    assert all(issue.keys() == {"path", "message"} for issue in body["error"])
