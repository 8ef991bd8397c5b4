"""OpenTelemetry traces, optional: `pip install 'shopctl[otel]'` and set
OTEL_TRACES_EXPORTER (otlp or console) or OTEL_EXPORTER_OTLP_ENDPOINT.

One span per request (named by method and route template), one per write transaction
and one per Stripe call, each tagged `shopctl.request_id`. The SDK reads the standard
OTEL_* variables (service name, endpoint, headers, sampler). Off, or without the extra,
nothing here is imported and the request path pays one `is None` test.
"""

from __future__ import annotations

import contextlib
import logging

from shopctl.config import Settings
from shopctl.logs import REQUEST_ID
from shopctl.services.system.hooks import never_raises

log = logging.getLogger("shopctl.traces")
ATTRIBUTE = "shopctl.request_id"


class Spans:
    """Request spans for the API's middleware: started and made current on arrival,
    ended (with route and status) on response."""

    def __init__(self, tracer, otel_context, otel_trace):
        self.tracer, self.context, self.trace = tracer, otel_context, otel_trace

    def start(self, method: str, route: str, request_id: str):
        span = self.tracer.start_span(
            f"{method} {route}",
            kind=self.trace.SpanKind.SERVER,
            attributes={ATTRIBUTE: request_id, "http.request.method": method},
        )
        token = self.context.attach(self.trace.set_span_in_context(span))
        return span, token

    def end(self, started, route: str, status: int) -> None:
        span, token = started
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR))
        span.end()
        with contextlib.suppress(ValueError):  # detached in another context: harmless
            self.context.detach(token)


def _exporter(name: str):
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def install(settings: Settings) -> Spans | None:
    """Set up the SDK and the hooks; None (and a warning) when the extra is missing."""
    try:
        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("traces are configured but the otel extra is not installed")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "shopctl"}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings.traces)))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("shopctl")
    _hook_stripe(tracer, trace)
    _wrap_transactions(tracer)
    return Spans(tracer, context, trace)


def _hook_stripe(tracer, trace) -> None:
    from shopctl.services.payments import gateway

    @never_raises
    def stripe_span(operation: str, outcome: str, started: float, seconds: float) -> None:
        start = int(started * 1e9)
        span = tracer.start_span(
            f"stripe {operation}",
            kind=trace.SpanKind.CLIENT,
            start_time=start,
            attributes={"stripe.operation": operation, "stripe.outcome": outcome},
        )
        if request_id := REQUEST_ID.get():
            span.set_attribute(ATTRIBUTE, request_id)
        if outcome != "ok":
            span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
        span.end(end_time=start + int(seconds * 1e9))

    gateway.on_call(stripe_span)


def _wrap_transactions(tracer) -> None:
    from shopctl import db

    @contextlib.contextmanager
    def traced(atomic):
        attributes = {"db.system": "postgresql" if db.is_postgres() else "sqlite"}
        if request_id := REQUEST_ID.get():
            attributes[ATTRIBUTE] = request_id
        with tracer.start_as_current_span("db transaction", attributes=attributes), atomic:
            yield atomic

    db.transaction_wrapper = traced
