"""One exception hierarchy for both front doors.

A `ShopError` carries the HTTP status the API answers with and a message safe to
show to a client or an operator; the CLI prints the message and exits with 1.
"""

from __future__ import annotations

from typing import Any


class ShopError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.detail = detail


class InvalidInput(ShopError):
    """Input that failed validation; `detail` is a list of {path, message}."""

    status = 400
    code = "validation_error"

    def __init__(self, errors: list[dict[str, str]], message: str = "Validation Error"):
        super().__init__(message, detail=errors)
        self.errors = errors


class NotChargeable(ShopError):
    """An amount Stripe would refuse to charge (under its minimum, over its maximum)."""

    status = 400
    code = "amount_not_chargeable"


class Unauthorized(ShopError):
    status = 401
    code = "unauthorized"


class Forbidden(ShopError):
    status = 403
    code = "forbidden"


class NotFound(ShopError):
    status = 404
    code = "not_found"


class Conflict(ShopError):
    status = 409
    code = "conflict"


class Gone(ShopError):
    status = 410
    code = "gone"


class UnsupportedMediaType(ShopError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(ShopError):
    status = 422
    code = "unprocessable"


class TooManyRequests(ShopError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, detail={"retryAfter": retry_after})
        self.retry_after = retry_after


class ServiceUnavailable(ShopError):
    status = 503
    code = "unavailable"


class PaymentProviderError(ShopError):
    """Stripe could not be reached or refused the call."""

    status = 502
    code = "payment_provider_error"


class StripeUnreachable(PaymentProviderError):
    """Stripe did not answer within STRIPE_TIMEOUT (or refused the connection)."""

    status = 503
    code = "stripe_unreachable"


class ConfigError(ShopError):
    """Configuration that cannot work; raised before anything starts."""

    status = 500
    code = "config_error"


class Ambiguous(ShopError):
    """A shortened id that matches several rows; `detail` lists them."""

    status = 409
    code = "ambiguous"
