"""The OpenAPI 3.1 document of the API, built from what the app really serves.

Paths and methods come from the app's router. Request bodies and the query, path and
header parameters come from the pydantic models in `shopctl.schemas` that validate the
requests, so the document cannot drift from the validation (one source of truth).
Responses are the v1 API's envelopes around the models in `openapi_models`; auth, the
success message and the status codes of each route are in `OPERATIONS`, keyed by route
name. A served route missing from `OPERATIONS` is an error, not a silent gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sanic import Sanic

from shopctl import __version__
from shopctl.api import openapi_models as out
from shopctl.api.guards import UNSAFE_METHODS
from shopctl.api.openapi_operations import OPERATIONS, TAGS, Operation
from shopctl.schemas import IdempotencyKey

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
_ROUTE_PARAM = re.compile(r"<([^:>]+)(?::[^>]*)?>")
USER_AUTH = [{"bearerAuth": []}, {"cookieAuth": []}]
IDEMPOTENCY_KEY = (
    "Any unique string (1 to 255 printable ASCII): a retry with the same key "
    "returns the first order instead of placing another"
)

DESCRIPTION = """\
The shop's REST API: the JSON contract of the Express API it replaces, served by shopctl.

* Success: `{statusCode, success: true, message, meta?, data}`.
* Error: `{statusCode, success: false, message, error}`; validation errors are status 400,
  message `Validation Error`, `error` a list of `{path, message}`.
* A JSON body of the form `{"data": "<json string>"}` is read as that JSON (as the Express API's
  `validateRequest` did). Bodies over 1 MiB get 413. Every response has `X-Request-ID`.
* Auth: `Authorization: Bearer <accessToken>` or the `accessToken` cookie set by
  `POST /api/v1/auth/login`.
* Every path also answers CORS preflight requests (OPTIONS) from the origins in
  FRONTEND_URL.
"""


@dataclass(frozen=True)
class Route:
    """One served (method, path) and the name the router knows its handler by."""

    method: str
    path: str  # Sanic's syntax: /api/v1/order/<order_id:str>
    name: str  # without the app's name: "orders.get_order", "root"


def served_routes(app: Sanic, *, automatic: bool = False) -> list[Route]:
    """Every (method, path) the app's router serves, in registration order; with
    `automatic`, only their CORS preflight (OPTIONS) and HEAD twins instead."""
    routes = []
    for route in app.router.routes:
        if _is_automatic(route) != automatic:
            continue
        name = route.name.removeprefix(f"{app.name}.")
        for method in sorted(route.methods):
            routes.append(Route(method, "/" + route.path.lstrip("/"), name))
    return routes


def _is_automatic(route) -> bool:
    """A CORS preflight (OPTIONS) or HEAD twin of a route, added for every path by the
    app factory or sanic-ext: described once in the document's description."""
    methods = set(route.methods)
    return methods <= {"OPTIONS", "HEAD"} and route.name.endswith(("_options", "_head"))


def template(route: Route, operation: Operation) -> str:
    """The OpenAPI path: Sanic's `<order_id:str>` becomes the path model's `{orderId}`."""
    if operation.path is None:
        return route.path
    (name,) = operation.path.model_fields
    return _ROUTE_PARAM.sub("{" + name + "}", route.path)


def build_document(app: Sanic) -> dict[str, Any]:
    """The OpenAPI document for every route `app` serves; KeyError names an undocumented one."""
    paths: dict[str, dict] = {}
    for route in served_routes(app):
        if route.name not in OPERATIONS:
            raise KeyError(f"route {route.name!r} ({route.method} {route.path}) is undocumented")
        operation = OPERATIONS[route.name]
        paths.setdefault(template(route, operation), {})[route.method.lower()] = _operation(
            route, operation
        )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "shopctl API", "version": __version__, "description": DESCRIPTION},
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": _components(),
    }


def document(app: Sanic) -> dict[str, Any]:
    """The app's document, built once: its routes are fixed once it serves."""
    if getattr(app.ctx, "openapi", None) is None:
        app.ctx.openapi = build_document(app)
    return app.ctx.openapi


# --- operations --------------------------------------------------------------------------


def _operation(route: Route, op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": route.name.replace(".", "_"),
        "tags": [op.tag],
        "summary": op.summary,
        "responses": _responses(route.method, op),
    }
    if op.description or op.auth == "admin":
        role = "Admins only. " if op.auth == "admin" else ""
        spec["description"] = role + op.description
    if parameters := _parameters(op):
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = _request_body(op)
    if op.auth:
        spec["security"] = USER_AUTH
    return spec


def _request_body(op: Operation) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": REF.format(model=op.body.__name__)}}
    if op.example is not None:
        media["example"] = op.example
    return {"required": op.body_required, "content": {"application/json": media}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters = []
    if op.path is not None:
        parameters += _from_model(op.path, "path")
    if op.query is not None:
        parameters += _from_model(op.query, "query")
    if op.idempotent:
        (key,) = _from_model(IdempotencyKey, "header", required=False)
        parameters.append(key | {"description": IDEMPOTENCY_KEY})
    parameters += [dict(header) for header in op.headers]
    return parameters


def _from_model(model: type[BaseModel], where: str, required: bool | None = None) -> list[dict]:
    """Parameters from the fields of the model that validates them; an absent optional
    parameter is simply not sent, so its `null` alternative is dropped."""
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    needed = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        field = _without_null(field)
        parameter = {
            "name": name,
            "in": where,
            "required": where == "path" or (name in needed if required is None else required),
            "schema": field,
        }
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    schema = {key: value for key, value in schema.items() if key != "title"}
    if schema.get("default", ...) is None:
        del schema["default"]
    options = [o for o in schema.get("anyOf", ()) if o != {"type": "null"}]
    if "anyOf" in schema and len(options) == 1:
        del schema["anyOf"]
        schema = {**options[0], **schema}
    return schema


# --- responses ---------------------------------------------------------------------------


def _responses(method: str, op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {str(op.status): op.success or _success(op)}
    for status in sorted(set(op.errors) | _implied_errors(method, op)):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    return responses


def _implied_errors(method: str, op: Operation) -> set[int]:
    """Statuses any route of this kind can answer, whatever its own rules."""
    statuses = {500}
    if op.database:
        statuses.add(503)
    if op.body is not None or op.query is not None or op.path is not None or op.idempotent:
        statuses.add(400)
    if op.body is not None:
        statuses.add(413)
    if op.path is not None:
        statuses.add(404)
    if op.auth:
        statuses.add(401)
    if op.auth == "admin" or (op.auth and method in UNSAFE_METHODS):
        statuses.add(403)  # the role, or a cookie-authenticated request from another site
    return statuses


def _success(op: Operation) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "statusCode": {"type": "integer", "const": op.status},
        "success": {"const": True},
        "message": _message(op.message),
        "data": _schema_of(op.data),
    }
    required = ["statusCode", "success", "message", "data"]
    if op.paged:
        properties["meta"] = {"$ref": REF.format(model="PageMeta")}
        required.append("meta")
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    headers |= {name: {"$ref": f"#/components/headers/{name}"} for name in op.response_headers}
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "description": op.summary,
        "headers": headers,
        "content": {"application/json": {"schema": schema}},
    }


def _message(message: str | tuple[str, ...]) -> dict[str, Any]:
    if isinstance(message, str):
        return {"type": "string", "const": message}
    return {"type": "string", "enum": list(message)}


def _schema_of(data: Any) -> dict[str, Any]:
    """`data`'s schema: a response model, a list of one, null, or a JSON schema as is."""
    if data is None:
        return {"type": "null"}
    if isinstance(data, list):
        return {"type": "array", "items": _schema_of(data[0])}
    if isinstance(data, type) and issubclass(data, BaseModel):
        return {"$ref": REF.format(model=data.__name__)}
    return data


# --- components --------------------------------------------------------------------------

# status: (component name, description)
ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "Invalid input: `Validation Error` with a list of `{path, message}`, or an amount "
        "Stripe cannot charge (the message names the limit)",
    ),
    401: ("Unauthorized", "Missing, invalid or expired credentials"),
    403: ("Forbidden", "Authenticated, but this role may not (or a cross-site cookie request)"),
    404: ("NotFound", "No such resource (someone else's order or payment is also 404)"),
    409: ("Conflict", "The request conflicts with the current state"),
    410: ("Gone", "The order's reservation has expired"),
    413: ("PayloadTooLarge", "The body is over 1 MiB"),
    422: ("Unprocessable", "The Idempotency-Key was used before with a different request"),
    429: ("TooManyRequests", "Too many failed login attempts: retry after `Retry-After` seconds"),
    500: (
        "ServerError",
        "Unexpected failure (never internals), or a webhook whose processing "
        "failed (stored as FAILED; Stripe retries)",
    ),
    502: ("PaymentProviderError", "Stripe could not be reached or refused the call"),
    503: (
        "Unavailable",
        "The database is unavailable, or the request ran out of the server's response time "
        "(`error.code` `database_unavailable` or `response_timeout`)",
    ),
}

VALIDATION_EXAMPLE = {
    "statusCode": 400,
    "success": False,
    "message": "Validation Error",
    "error": [{"path": "email", "message": "Invalid email address"}],
}


def _components() -> dict[str, Any]:
    from shopctl.api.openapi_operations import REQUEST_MODELS

    models = [(model, "validation") for model in (*REQUEST_MODELS, *out.RESPONSE_MODELS)]
    _, definitions = models_json_schema(models, by_alias=True, ref_template=REF)
    for schema in definitions["$defs"].values():
        _drop_impossible_defaults(schema)
    schemas = definitions["$defs"] | {
        "ErrorEnvelope": ERROR_ENVELOPE,
        "ValidationErrorEnvelope": VALIDATION_ENVELOPE,
    }
    return {
        "schemas": schemas,
        "responses": {name: _error_response(status) for status, (name, _) in ERRORS.items()},
        "headers": HEADERS,
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "accessToken"},
        },
    }


def _drop_impossible_defaults(model: dict[str, Any]) -> None:
    """A body field declared `x: int = None` means "absent: leave it unchanged", yet
    pydantic writes `default: null` for it, which its own schema refuses (and validators
    reject). The default is dropped; the field stays optional."""
    for field in model.get("properties", {}).values():
        nullable = field.get("type") == "null" or {"type": "null"} in field.get("anyOf", ())
        if "default" in field and field["default"] is None and not nullable:
            del field["default"]


ERROR_ENVELOPE = {
    "type": "object",
    "required": ["statusCode", "success", "message", "error"],
    "properties": {
        "statusCode": {"type": "integer", "minimum": 400, "maximum": 599},
        "success": {"const": False},
        "message": {"type": "string"},
        "error": {
            "description": "What went wrong, in detail: e.g. `{path, message}` for an unknown "
            "route, `[{productId, …}]` for the products an order could not get",
            "anyOf": [{"type": "object"}, {"type": "array"}, {"type": "null"}],
        },
    },
}

VALIDATION_ENVELOPE = {
    "allOf": [{"$ref": REF.format(model="ErrorEnvelope")}],
    "properties": {
        "statusCode": {"const": 400},
        "message": {"const": "Validation Error"},
        "error": {"type": "array", "items": {"$ref": REF.format(model="ValidationIssue")}},
    },
}


HEADERS = {
    "X-Request-ID": {
        "description": "The request's id (the caller's `X-Request-ID` when well-formed)",
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Set-Cookie": {
        "description": "`accessToken` and `refreshToken`, HttpOnly",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when the Idempotency-Key was seen before: the first order is "
        "returned and nothing new is created",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def _error_response(status: int) -> dict[str, Any]:
    name, description = ERRORS[status]
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if status == 429:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    example = (
        VALIDATION_EXAMPLE
        if status == 400
        else {
            "statusCode": status,
            "success": False,
            "message": description.split(":")[0],
            "error": {"code": re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()},
        }
    )
    schema = {"$ref": REF.format(model="ErrorEnvelope")}
    if status == 400:  # mostly validation errors; a bad webhook signature is not one
        schema = {"anyOf": [{"$ref": REF.format(model="ValidationErrorEnvelope")}, schema]}
    media = {"schema": schema, "example": example}
    return {"description": description, "headers": headers, "content": {"application/json": media}}
