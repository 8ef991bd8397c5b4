"""The Sanic application factory. Each worker process builds its own app, pool and threads."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic.response import empty

from shopctl.api import (
    auth,
    docs,
    fulfilment,
    observability,
    openapi,
    orders,
    pages,
    payments,
    products,
    system,
    users,
)
from shopctl.api.guards import frontend_origins
from shopctl.api.responses import error_response
from shopctl.config import Settings, load_settings
from shopctl.db import init_database
from shopctl.errors import ConfigError

MAX_BODY_BYTES = 1024 * 1024
# Database calls per worker at once; PostgreSQL connections per worker stay near this.
EXECUTOR_THREADS = 8
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _blueprints() -> list[Blueprint]:
    return [
        system.api,
        orders.api,
        users.api,
        auth.api,
        payments.api,
        products.api,
        docs.api,
        fulfilment.api,
    ]


def _register_lifecycle(app: Sanic, settings: Settings) -> None:
    @app.before_server_start
    async def open_resources(app: Sanic):
        app.ctx.executor = ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="shopctl-db")
        app.ctx.database = init_database(
            settings.database_url, max_connections=EXECUTOR_THREADS + 2, create=False
        )

    @app.after_server_stop
    async def close_resources(app: Sanic):
        app.ctx.executor.shutdown(wait=True)
        if hasattr(app.ctx.database, "close_all"):
            app.ctx.database.close_all()


def _request_ids() -> Callable[[], str]:
    """Unique ids without a system call each (uuid4 reads the OS's random source, a few
    percent of a cheap request): a random prefix per worker, then a counter."""
    prefix, serial = secrets.token_hex(8), itertools.count()
    return lambda: f"{prefix}{next(serial):08x}"


def _register_middleware(app: Sanic) -> None:
    new_request_id = _request_ids()

    @app.on_request(priority=100)
    async def assign_request_id(request: Request):
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        request.ctx.request_id = request_id
        observability.begin(request, request_id)

    @app.on_response(priority=100)
    async def stamp_response(request: Request, response):
        request_id = getattr(request.ctx, "request_id", None) or new_request_id()
        response.headers["X-Request-ID"] = request_id
        response.headers["X-Content-Type-Options"] = "nosniff"
        observability.finish(request, response, request_id)


async def _allow(request: Request, *args, allow: str, **kwargs) -> HTTPResponse:
    return empty(headers={"allow": allow})


def _add_preflight_routes(app: Sanic) -> None:
    """An OPTIONS route for every path, added before the server starts.

    sanic-ext would add them (and HEAD routes) as each worker starts, re-finalizing
    the router once per route added: worker start-up grew quadratically, by seconds
    with a few dozen routes (sanic-org/sanic#3087). Added here they cost almost
    nothing, and sanic-ext finds none missing; its CORS code still answers preflights.
    """
    for group in list(app.router.groups.values()):
        if "OPTIONS" not in group.methods:
            allow = ",".join([*sorted(group.methods), "OPTIONS"])
            app.add_route(
                partial(_allow, allow=allow),
                group.uri,
                methods=["OPTIONS"],
                name=f"{group[0].name}_options",
                strict_slashes=group.strict,
                unquote=group.unquote,
            )


def _enable_cors(app: Sanic, settings: Settings) -> None:
    """CORS for FRONTEND_URL's origins, with credentials, by sanic-ext.

    Only sanic-ext's HTTP extension is loaded (it answers preflights); its other
    built-ins (OpenAPI, injection, health, logging) stay off until a feature wants them.
    Other origins get no CORS headers at all.
    """
    from sanic_ext import Extend
    from sanic_ext.extensions.http.extension import HTTPExtension

    origins = frontend_origins(settings)
    if "*" in origins:
        raise ConfigError("FRONTEND_URL must list origins: '*' cannot allow credentials")
    _add_preflight_routes(app)
    config = {
        "cors_origins": list(origins),
        "cors_supports_credentials": True,
        "cors_always_send": False,
        # Listed, not "*": with credentials browsers read "*" as a header named "*".
        "cors_allow_headers": "authorization,content-type,idempotency-key,x-request-id",
        "cors_expose_headers": "x-request-id,retry-after",
        "cors_max_age": 600,
        "http_all_methods": False,
        "http_auto_head": False,
    }
    Extend(app, extensions=[HTTPExtension], built_in_extensions=False, config=config)


def create_app(settings: Settings | None = None, name: str = "shopctl") -> Sanic:
    """Build the API. Called once per worker process (Sanic's AppLoader factory)."""
    settings = settings or load_settings()
    settings.check_safe()
    app = Sanic(name, strict_slashes=False)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.ctx.settings = settings
    app.ctx.started_at = time.monotonic()
    app.ctx.openapi_document = partial(openapi.document, app)
    app.error_handler.add(Exception, error_response)
    _register_lifecycle(app, settings)
    _register_middleware(app)
    app.blueprint(Blueprint.group(*_blueprints(), url_prefix="/api/v1"))
    app.add_route(system.root, "/", methods=["GET"], name="root")
    app.add_route(payments.stripe_webhook, "/webhook", methods=["POST"], name="dashboard_webhook")
    app.blueprint(pages.api)  # outside /api/v1: pages for the buyer's browser
    observability.install(app, settings)  # metrics, /metrics, traces, business-event logs
    _enable_cors(app, settings)  # after every route: it adds their OPTIONS routes
    logging.getLogger("sanic.root").setLevel(logging.WARNING)
    return app


def standalone_document() -> dict:
    """The OpenAPI document without a server: an app is built, never started, for its routes."""
    app = create_app(Settings(), name=f"shopctl_openapi_{secrets.token_hex(8)}")
    return openapi.build_document(app)
