"""A Postman v2.1 collection of the API, like the Express API's, that runs top to bottom.

Each request is an operation of the OpenAPI document (method, path, name and expected
status and message come from there) played in an order that creates what the next one
needs: sign up a fresh buyer, log in (the test script stores `accessToken`), create a
product as admin, order it, pay, cancel, check the payment. Every request checks its
status code and `success`. Admins log in with `{{adminEmail}}` / `{{adminPassword}}`,
which the person running the collection sets (e.g. `newman run … --env-var`).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from shopctl.api.postman_steps import Step
from shopctl.api.postman_steps import expect as _expect
from shopctl.api.postman_steps import store as _store

SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
BEARER = {
    "type": "bearer",
    "bearer": [{"key": "token", "value": "{{accessToken}}", "type": "string"}],
}
ADMIN = {
    "type": "bearer",
    "bearer": [{"key": "token", "value": "{{adminToken}}", "type": "string"}],
}
NO_AUTH = {"type": "noauth"}


STAMP = 'const stamp = pm.variables.replaceIn("{{$timestamp}}{{$randomInt}}");'
LINE = {"items": [{"productId": "{{productId}}", "quantity": 2}]}

FOLDERS: dict[str, tuple[Step, ...]] = {
    "System": (
        Step("root", "Welcome"),
        Step("system_health", "Health check"),
        Step(
            "docs_openapi_json",
            "OpenAPI document",
            tests=(_expect("an OpenAPI 3 document", "body.openapi.charAt(0)", '"3"'),),
        ),
    ),
    "Auth": (
        Step(
            "users_register",
            "Sign up (a new buyer)",
            body={
                "email": "{{userEmail}}",
                "password": "{{userPassword}}",
                "name": "Postman Buyer",
            },
            prerequest=(
                STAMP,
                _store("userEmail", "`buyer.${stamp}@example.com`"),
                _store("userPassword", '"Str0ng!Pass"'),
            ),
            tests=(
                _expect(
                    "the new user", "body.data.email", 'pm.collectionVariables.get("userEmail")'
                ),
                _expect("no password shown", '"password" in body.data', "false"),
            ),
        ),
        Step(
            "auth_login",
            "Log in",
            body={"email": "{{userEmail}}", "password": "{{userPassword}}"},
            tests=(
                _store("accessToken", "body.data.accessToken"),
                _store("refreshToken", "body.data.refreshToken"),
            ),
        ),
        Step(
            "auth_refresh_token",
            "Get a new access token",
            body={"refreshToken": "{{refreshToken}}"},
            tests=(
                _store("accessToken", "body.data.accessToken"),
                _store("refreshToken", "body.data.refreshToken"),
            ),
        ),
        Step(
            "auth_change_password",
            "Change my password",
            body={"oldPassword": "{{userPassword}}", "newPassword": "{{newPassword}}"},
            prerequest=(_store("newPassword", '"Str0nger!Pass2"'),),
            tests=(_store("userPassword", 'pm.collectionVariables.get("newPassword")'),),
        ),
        Step(
            "auth_login",
            "Log in on a second device",
            body={"email": "{{userEmail}}", "password": "{{userPassword}}"},
            tests=(_store("secondRefreshToken", "body.data.refreshToken"),),
        ),
        Step(
            "auth_logout",
            "Log out the second device",
            body={"refreshToken": "{{secondRefreshToken}}"},
        ),
        Step(
            "auth_login",
            "Log in as admin",
            body={"email": "{{adminEmail}}", "password": "{{adminPassword}}"},
            tests=(
                _expect("an admin", "body.data.user.role", '"ADMIN"'),
                _store("adminToken", "body.data.accessToken"),
            ),
        ),
    ),
    "User": (
        Step(
            "users_me",
            "My profile",
            tests=(_expect("me", "body.data.email", 'pm.collectionVariables.get("userEmail")'),),
        ),
    ),
    "Product": (
        Step(
            "products_create_product",
            "Create a product (admin)",
            admin=True,
            body={
                "name": "{{productName}}",
                "description": "350 ml, stoneware",
                "price": "12.50",
                "quantity": 100,
            },
            prerequest=(STAMP, _store("productName", "`Postman mug ${stamp}`")),
            tests=(_expect("price in cents", "body.data.priceCents", "1250"),),
        ),
        Step(
            "products_list_products",
            "List products",
            query={"page": "1", "limit": "10", "search": "{{productName}}"},
            tests=(
                _expect("found", "body.meta.total", "1"),
                _expect("the last page", "body.meta.nextCursor", "null"),
                _store("productId", "body.data[0].id"),
            ),
        ),
        Step(
            "products_get_product",
            "Get a product",
            path={"id": "{{productId}}"},
            tests=(
                _expect(
                    "the product", "body.data.name", 'pm.collectionVariables.get("productName")'
                ),
            ),
        ),
        Step(
            "products_update_product",
            "Change a product (admin)",
            admin=True,
            path={"id": "{{productId}}"},
            body={"quantity": 90},
            tests=(_expect("new stock", "body.data.quantity", "90"),),
        ),
        Step(
            "products_create_product",
            "Create a product to delete (admin)",
            admin=True,
            body={"name": "{{productName}} (spare)", "priceCents": 500},
            tests=(_store("spareProductId", "body.data.id"),),
        ),
        Step(
            "products_delete_product",
            "Delete a product (admin)",
            admin=True,
            path={"id": "{{spareProductId}}"},
        ),
    ),
    "Order": (
        Step(
            "orders_create_pay_later_order",
            "Place an order, pay later",
            body=LINE,
            headers={"Idempotency-Key": "{{$guid}}"},
            tests=(
                _expect("pay later", "body.data.payLater", "true"),
                _store("orderId", "body.data.orderId"),
                _store("paymentId", "body.data.paymentId"),
            ),
        ),
        Step(
            "orders_get_order",
            "Get an order",
            path={"orderId": "{{orderId}}"},
            tests=(
                _expect("unpaid", "body.data.status", '"UNPAID"'),
                _expect("2 x 12.50", "body.data.amountCents", "2500"),
                _expect("nothing shipped before payment", "body.data.shipping", "null"),
                _expect("not disputed", "body.data.disputed", "false"),
                _expect("nothing shipped", "body.data.fulfillmentStatus", '"UNFULFILLED"'),
                _store("itemId", "body.data.items[0].id"),
            ),
        ),
        Step(
            "fulfilment_create_shipment",
            "Ship an unpaid order: refused (admin)",
            admin=True,
            path={"orderId": "{{orderId}}"},
            body={"carrier": "UPS", "trackingNumber": "1Z999AA10123456784"},
            fails_with=409,
        ),
        Step(
            "fulfilment_create_refund",
            "Refund a line of an unpaid order: refused (admin)",
            admin=True,
            path={"orderId": "{{orderId}}"},
            body={"lines": [{"itemId": "{{itemId}}", "quantity": 1}], "restock": True},
            fails_with=409,
        ),
        Step(
            "orders_list_orders",
            "List my orders",
            query={"limit": "10", "cursor": ""},  # a cursor walk's first page: not counted
            tests=(
                _expect("my order", "body.data[0].id", 'pm.collectionVariables.get("orderId")'),
                _expect("the last page", "body.meta.nextCursor", "null"),
            ),
        ),
        Step(
            "orders_pay_order",
            "Pay an order",
            path={"orderId": "{{orderId}}"},
            tests=(
                _expect(
                    "its payment", "body.data.paymentId", 'pm.collectionVariables.get("paymentId")'
                ),
            ),
        ),
        Step(
            "orders_create_order",
            "Place an order and pay now",
            body={"items": [{"productId": "{{productId}}", "quantity": 1}]},
            tests=(_expect("a payment page", '"paymentUrl" in body.data', "true"),),
        ),
        Step(
            "orders_cancel_order",
            "Cancel an order",
            path={"orderId": "{{orderId}}"},
            tests=(_expect("canceled", "body.data.status", '"CANCELED"'),),
        ),
        Step(
            "orders_list_orders",
            "List canceled orders (admin)",
            admin=True,
            query={"status": "CANCELED"},
            tests=(
                _expect(
                    "the canceled order", "body.data[0].id", 'pm.collectionVariables.get("orderId")'
                ),
            ),
        ),
    ),
    "Payment": (
        Step(
            "payments_status",
            "Payment status",
            path={"paymentId": "{{paymentId}}"},
            tests=(_expect("its order", "body.data.orderStatus", '"CANCELED"'),),
        ),
        Step(
            "payments_webhook",
            "Stripe webhook without a signature is refused",
            fails_with=400,
            body={
                "id": "evt_unsigned",
                "object": "event",
                "type": "checkout.session.completed",
                "data": {"object": {}},
            },
        ),
    ),
}

VARIABLES = (
    "accessToken",
    "refreshToken",
    "adminToken",
    "userEmail",
    "userPassword",
    "productId",
    "orderId",
    "paymentId",
    "itemId",
)


def build_collection(document: dict, base_url: str) -> dict[str, Any]:
    """The collection for `document` (the OpenAPI document) against `base_url`."""
    operations = _operations(document)
    variables = {
        "baseUrl": base_url.rstrip("/"),
        "adminEmail": "admin@example.com",
        "adminPassword": "",
    } | dict.fromkeys(VARIABLES, "")
    return {
        "info": {
            "_postman_id": str(uuid.uuid4()),
            "name": document["info"]["title"],
            "description": __doc__.strip(),
            "schema": SCHEMA,
        },
        "auth": BEARER,
        "variable": [{"key": k, "value": v, "type": "string"} for k, v in variables.items()],
        "item": [
            {"name": folder, "item": [_request(operations[step.operation], step) for step in steps]}
            for folder, steps in FOLDERS.items()
        ],
    }


def _operations(document: dict) -> dict[str, tuple[str, str, dict]]:
    """operationId → (method, path, operation)."""
    found = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            found[operation["operationId"]] = (method.upper(), path, operation)
    return found


def _request(found: tuple[str, str, dict], step: Step) -> dict[str, Any]:
    method, path, operation = found
    request: dict[str, Any] = {
        "method": method,
        "header": [{"key": k, "value": v} for k, v in step.headers.items()],
        "url": _url(path, step),
        "description": operation.get("description", operation["summary"]),
    }
    if step.admin:
        request["auth"] = ADMIN
    elif "security" not in operation:
        request["auth"] = NO_AUTH
    if step.body is not None:
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(step.body, indent=2),
            "options": {"raw": {"language": "json"}},
        }
    events = [_script("test", _checks(operation, step) + list(step.tests))]
    if step.prerequest:
        events.insert(0, _script("prerequest", list(step.prerequest)))
    return {"name": step.name, "event": events, "request": request}


def _url(path: str, step: Step) -> dict[str, Any]:
    path = re.sub(r"\{(\w+)\}", lambda m: step.path[m.group(1)], path)
    segments = [segment for segment in path.split("/") if segment]
    query = [{"key": k, "value": v} for k, v in step.query.items()]
    raw = "{{baseUrl}}/" + "/".join(segments)
    if query:
        raw += "?" + "&".join(f"{q['key']}={q['value']}" for q in query)
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": segments}
    if query:
        url["query"] = query
    return url


def _checks(operation: dict, step: Step) -> list[str]:
    """The status code; for the v1 API's envelopes `success` and the documented message."""
    status, response = next(
        (int(code), response)
        for code, response in operation["responses"].items()
        if code.startswith("2")
    )
    if step.fails_with is not None:
        return [
            _status(step.fails_with),
            "const body = pm.response.json();",
            _expect("success is false", "body.success", "false"),
        ]
    lines = [_status(status), "const body = pm.response.json();"]
    properties = _success_properties(response)
    if "success" in properties:
        lines.append(_expect("success is true", "body.success", "true"))
    message = properties.get("message", {})
    if "const" in message or "enum" in message:
        expected = message["const"] if "const" in message else message["enum"][0]
        lines.append(_expect("the documented message", "body.message", json.dumps(expected)))
    return lines


def _status(status: int) -> str:
    return f'pm.test("status is {status}", () => pm.response.to.have.status({status}));'


def _success_properties(response: dict) -> dict[str, Any]:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("properties", {})


def _script(listen: str, lines: list[str]) -> dict[str, Any]:
    return {"listen": listen, "script": {"type": "text/javascript", "exec": lines}}
