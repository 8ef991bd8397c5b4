"""One route's description for the OpenAPI document (see openapi_operations.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Operation:
    tag: str
    summary: str
    message: str | tuple[str, ...] = ""  # the success message(s), verbatim
    data: Any = None  # a response model, [model] for a list, None for null
    status: int = 200
    auth: str = ""  # "" anyone, "user" any signed-in user, "admin" admins only
    body: type[BaseModel] | None = None
    body_required: bool = True
    example: dict | None = None  # request body example
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None  # a model with the one path parameter
    idempotent: bool = False  # accepts an Idempotency-Key header
    headers: tuple[dict, ...] = ()  # other request headers
    errors: tuple[int, ...] = ()  # statuses beyond those implied by the kind of route
    paged: bool = False
    description: str = ""
    database: bool = True
    response_headers: tuple[str, ...] = ()
    success: dict | None = None  # a success response that is no envelope
    page: bool = False  # an HTML page for a browser: its errors are pages too
