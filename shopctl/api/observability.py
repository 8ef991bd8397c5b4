"""Per request: a metric (when metrics are on), a log line, a trace span (when traces are
on); and `GET /metrics` for Prometheus, behind `Authorization: Bearer $METRICS_TOKEN`.

`/metrics` sits outside `/api/v1`, where Prometheus looks by default and where no v1
client expects it; without METRICS_TOKEN it is not routed at all (404 like any unknown
path) and `shopctl serve --metrics-port` offers the same series on a loopback port.
"""

from __future__ import annotations

import logging
import time

from sanic import Request, Sanic
from sanic.response import raw

from shopctl.api.common import call
from shopctl.config import Settings
from shopctl.errors import Unauthorized
from shopctl.logs import ACCESS, REQUEST_ID, WRITER, request_line

UNMATCHED_ROUTE = "unmatched"


def route_template(request: Request) -> str:
    """The route's template (`/api/v1/product/<product_id>`), never the raw path; every
    request no route answered (404, 405) shares one label."""
    route = request.route
    return "/" + route.path.lstrip("/") if route is not None else UNMATCHED_ROUTE


def begin(request: Request, request_id: str) -> None:
    request.ctx.started = time.perf_counter()
    REQUEST_ID.set(request_id)
    spans = request.app.ctx.spans
    if spans is not None:
        request.ctx.span = spans.start(request.method, route_template(request), request_id)


def finish(request: Request, response, request_id: str) -> None:
    """Count, log and close the span of one answered request."""
    started = getattr(request.ctx, "started", None)
    seconds = time.perf_counter() - started if started is not None else 0.0
    route = route_template(request)
    status = response.status
    observe = request.app.ctx.observe_request
    if observe is not None:
        observe(request.method, route, status, seconds)
    span = getattr(request.ctx, "span", None)
    if span is not None:
        request.app.ctx.spans.end(span, route, status)
    if ACCESS.isEnabledFor(logging.INFO):
        user = getattr(request.ctx, "user", None)
        fields = {
            "requestId": request_id,
            "method": request.method,
            "route": route,
            "status": status,
            "durationMs": round(seconds * 1000, 2),
            "userId": getattr(user, "id", None),
        }
        request_line(fields)


async def metrics_endpoint(request: Request):
    """Prometheus' text format, summed over every worker."""
    from shopctl.services.system import metrics

    settings: Settings = request.app.ctx.settings
    if not metrics.token_matches(settings, request.headers.get("authorization", "")):
        raise Unauthorized("Send Authorization: Bearer <METRICS_TOKEN>")
    metrics.flush()  # this worker's latest requests, then everything every worker wrote
    body = await call(request, metrics.exposition, settings)
    return raw(body, content_type=metrics.CONTENT_TYPE)


def install(app: Sanic, settings: Settings) -> None:
    """Metrics hooks and `/metrics` when metrics are on; trace spans when traces are on."""
    from shopctl.services.system import business_log

    business_log.install()
    # Log lines still queued when a worker stops (its atexit never runs: multiprocessing).
    app.after_server_stop(lambda app: WRITER.drain(timeout=2.0))
    app.ctx.observe_request = None
    app.ctx.spans = None
    if settings.metrics_enabled:
        from shopctl.services.system import metrics

        metrics.install(settings)
        app.ctx.observe_request = metrics.observe_request
        app.before_server_stop(lambda app: metrics.flush())  # a stopping worker's last second
    if settings.metrics_token:
        app.add_route(metrics_endpoint, "/metrics", methods=["GET"], name="metrics")
    if settings.traces:
        from shopctl.services.system import traces

        app.ctx.spans = traces.install(settings)
