"""create_sandbox_app(settings): the sandbox's own Sanic app, sharing nothing with shopctl."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from sanic import Request, Sanic
from sanic.exceptions import MethodNotAllowed, NotFound, SanicException
from sanic.response import HTTPResponse

from . import api, checkout, control, guard, page
from .instance import Sandbox, build_sandbox
from .params import StripeError
from .settings import SandboxSettings
from .shapes import API_VERSION, new_id

log = logging.getLogger("shopctl.sandbox")
_names = itertools.count(1)


def create_sandbox_app(settings: SandboxSettings) -> Sanic:
    sb = build_sandbox(settings)
    app = Sanic(_free_name(), env_prefix=None)
    app.config.AUTO_EXTEND = False  # no sanic-ext (OpenAPI, injection) in a Stripe look-alike
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.REQUEST_MAX_SIZE = 1024 * 1024
    app.ctx.sandbox = sb
    app.blueprint([api.bp, control.bp, page.bp])
    app.on_request(_start_request)
    app.on_request(_guard_controls)
    app.on_response(_finish_response)
    app.error_handler.add(Exception, _on_error)
    app.before_server_start(_start_background)
    app.before_server_stop(_stop_background)
    return app


def _free_name() -> str:
    name = "shopctl_sandbox"
    while name in Sanic._app_registry:
        name = f"shopctl_sandbox_{next(_names)}"
    return name


async def _start_request(request: Request) -> None:
    request.ctx.request_id = new_id("req_", 14)


async def _guard_controls(request: Request) -> HTTPResponse | None:
    """Every `/_sandbox/*` route, present and future: loopback, this host, JSON (guard.py)."""
    refusal = guard.refusal(request, request.app.ctx.sandbox.settings)
    return api.error_response(request, refusal) if refusal else None


async def _finish_response(request: Request, response: HTTPResponse) -> None:
    request_id = getattr(request.ctx, "request_id", None) or new_id("req_", 14)
    response.headers["Request-Id"] = request_id
    if request.path.startswith("/v1/"):
        response.headers["Stripe-Version"] = API_VERSION


async def _on_error(request: Request, exc: Exception) -> HTTPResponse:
    # An unknown route never reaches the middleware: the guard answers it here (a remote
    # client learns nothing about which control routes exist).
    if isinstance(exc, NotFound | MethodNotAllowed) and (
        refusal := guard.refusal(request, request.app.ctx.sandbox.settings)
    ):
        return api.error_response(request, refusal)
    if isinstance(exc, StripeError):
        return api.error_response(request, exc)
    if isinstance(exc, NotFound | MethodNotAllowed):
        error = StripeError(
            f"Unrecognized request URL ({request.method}: {request.path}).", status=404
        )
    elif isinstance(exc, SanicException) and 400 <= exc.status_code < 500:
        error = StripeError(str(exc), status=exc.status_code)
    else:
        log.exception("sandbox error on %s %s", request.method, request.path, exc_info=exc)
        error = StripeError(
            "An unknown error occurred in the sandbox.", status=500, type="api_error"
        )
    return api.error_response(request, error)


async def _start_background(app: Sanic) -> None:
    sb: Sandbox = app.ctx.sandbox
    sb.tasks = [asyncio.create_task(sb.persister.run()), asyncio.create_task(_sweep(sb))]


async def _sweep(sb: Sandbox) -> None:
    """Expire sessions whose time has come, as Stripe does on its own."""
    while True:
        await asyncio.sleep(5)
        checkout.expire_due(sb.engine)


async def _stop_background(app: Sanic) -> None:
    sb: Sandbox = app.ctx.sandbox
    for task in sb.tasks:
        task.cancel()
    for task in sb.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await sb.deliverer.close()
    sb.store.dirty = True
    await sb.persister.flush()
