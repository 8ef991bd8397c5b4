"""create_sandbox_app(settings): the sandbox's own Sanic app, sharing nothing with shopctl."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import MethodNotAllowed, NotFound, SanicException
from sanic.response import HTTPResponse

from . import api, checkout, control, page
from .engine import Engine
from .params import StripeError
from .settings import Runtime, SandboxSettings
from .shapes import API_VERSION, new_id
from .store import Persister, Store
from .webhooks import Deliverer

log = logging.getLogger("shopctl.sandbox")
_names = itertools.count(1)


@dataclass
class Sandbox:
    """Everything one sandbox app holds; reached from handlers as `request.app.ctx.sandbox`."""

    settings: SandboxSettings
    runtime: Runtime
    store: Store
    engine: Engine
    deliverer: Deliverer
    persister: Persister
    rng: random.Random = field(default_factory=random.Random)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def should_fail(self) -> bool:
        """Consume one injected failure (`fail_next`) or draw against `fail_rate`."""
        if self.runtime.fail_next > 0:
            self.runtime.fail_next -= 1
            return True
        return self.rng.random() < self.runtime.fail_rate


def build_sandbox(settings: SandboxSettings) -> Sandbox:
    settings.validate()
    store, runtime = Store(), Runtime.from_settings(settings)
    deliverer = Deliverer(store, runtime, settings.retry_backoffs, settings.delivery_timeout)
    engine = Engine(store, deliverer.on_event)
    persister = Persister(store, settings.state_file)
    persister.load()
    return Sandbox(settings, runtime, store, engine, deliverer, persister)


def create_sandbox_app(settings: SandboxSettings) -> Sanic:
    sb = build_sandbox(settings)
    app = Sanic(_free_name(), env_prefix=None)
    app.config.AUTO_EXTEND = False  # no sanic-ext (OpenAPI, injection) in a Stripe look-alike
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.REQUEST_MAX_SIZE = 1024 * 1024
    app.ctx.sandbox = sb
    app.blueprint([api.bp, control.bp, page.bp])
    app.on_request(_start_request)
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


async def _finish_response(request: Request, response: HTTPResponse) -> None:
    request_id = getattr(request.ctx, "request_id", None) or new_id("req_", 14)
    response.headers["Request-Id"] = request_id
    if request.path.startswith("/v1/"):
        response.headers["Stripe-Version"] = API_VERSION


async def _on_error(request: Request, exc: Exception) -> HTTPResponse:
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
