"""The v1 API's JSON envelopes, and the one place that turns errors into them."""

from __future__ import annotations

import logging
from typing import Any

from peewee import InterfaceError, OperationalError
from sanic import HTTPResponse, Request
from sanic import exceptions as sanic_errors
from sanic.response import json as json_response

from shopctl.errors import InvalidInput, ShopError, TooManyRequests

log = logging.getLogger("shopctl.api")

NOT_FOUND_MESSAGE = "API NOT FOUND!"


def ok(data: Any, message: str, *, status: int = 200, meta: dict | None = None) -> HTTPResponse:
    body: dict[str, Any] = {"statusCode": status, "success": True, "message": message}
    if meta is not None:
        body["meta"] = meta
    body["data"] = data
    return json_response(body, status=status)


def failure(status: int, message: str, error: Any, headers: dict | None = None) -> HTTPResponse:
    body = {"statusCode": status, "success": False, "message": message, "error": error}
    return json_response(body, status=status, headers=headers)


def _from_sanic(request: Request, exc: sanic_errors.SanicException) -> HTTPResponse:
    status = getattr(exc, "status_code", 500) or 500
    if isinstance(exc, sanic_errors.NotFound):
        error = {"path": request.path, "message": "Your requested path is not found!"}
        return failure(404, NOT_FOUND_MESSAGE, error)
    if isinstance(exc, sanic_errors.PayloadTooLarge):
        return failure(413, "Request body too large", {"limitBytes": 1024 * 1024})
    if isinstance(exc, sanic_errors.ServiceUnavailable):  # Sanic's RESPONSE_TIMEOUT passed
        log.warning("response timeout: %s %s", request.method, request.path)
        error = {"code": "response_timeout", "path": request.path}
        return failure(503, "The request took too long; retry later", error)
    if isinstance(exc, sanic_errors.MethodNotAllowed):
        return failure(405, "Method not allowed", {"path": request.path, "method": request.method})
    if status >= 500:
        return _unexpected(request, exc)
    return failure(status, str(exc) or "Bad request", {"path": request.path})


def _unexpected(request: Request, exc: BaseException) -> HTTPResponse:
    request_id = getattr(request.ctx, "request_id", None) if request else None
    log.error("unhandled error (request %s)", request_id, exc_info=exc)
    return failure(500, "Something went wrong", {"requestId": request_id})


def error_response(request: Request, exc: BaseException) -> HTTPResponse:
    """Every error the API can raise, as the v1 API's error envelope. Never internals."""
    if isinstance(exc, InvalidInput):
        return failure(400, exc.message, exc.errors)
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
        return failure(429, exc.message, exc.detail, headers=headers)
    if isinstance(exc, ShopError):
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        return failure(exc.status, exc.message, exc.detail or {"code": exc.code})
    if isinstance(exc, sanic_errors.SanicException):
        return _from_sanic(request, exc)
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database unavailable: %s", type(exc).__name__)
        return failure(503, "Database unavailable", {"code": "database_unavailable"})
    return _unexpected(request, exc)
