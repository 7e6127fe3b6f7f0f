"""OpenTelemetry, set up once per process and configured only by ``OTEL_*`` variables.

The SDK reads the standard variables itself (sampler, resource attributes, exporter
endpoint and headers); an OTLP exporter is attached only when an endpoint is set, so a
process without one still creates spans (and trace ids for logs and receipts) but sends
nothing. ``OTEL_SERVICE_NAME`` overrides the default name each process passes in.
"""

import os
import threading
from contextlib import AbstractContextManager

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span

_lock = threading.Lock()
_configured = False


def configure(service_name: str, *, processors: list[SpanProcessor] = ()) -> None:
    """Install the tracer provider and the instrumentations; later calls do nothing."""
    global _configured
    with _lock:
        if _configured:
            return
        _configured = True
        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        ):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        for processor in processors:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _instrument()


def _instrument() -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    # Behind dpp.middleware.UnroutablePathMiddleware (index 0), ahead of everything else.
    DjangoInstrumentor().instrument(middleware_position=1)
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    BotocoreInstrumentor().instrument()


def current_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the active span, for log lines; empty without one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the active span, stored on a run to link later work."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def span_linked_to(name: str, traceparent: str, **attributes: str) -> AbstractContextManager[Span]:
    """A new span for work on a run (the reaper's) that links back to the run's trace.

    The span's parent is whatever is current (the reaper task's span); the link is what
    leads from the run's trace to this work. Attributes are named ``dpp.<name>``.
    """
    links = []
    if traceparent:
        linked = trace.get_current_span(propagate.extract({"traceparent": traceparent}))
        if linked.get_span_context().is_valid:
            links.append(Link(linked.get_span_context()))
    return trace.get_tracer("dpp").start_as_current_span(
        name, links=links, attributes={f"dpp.{key}": value for key, value in attributes.items()}
    )


def annotate(values: dict[str, object]) -> None:
    """Put log-context fields (request, tenant, run ids) on the active span as ``dpp.*``
    attributes, so a trace backend finds a request's or a run's spans by those ids."""
    span = trace.get_current_span()
    if values and span.is_recording():
        span.set_attributes({f"dpp.{key}": str(value) for key, value in values.items()})
