"""Reading what the tests capture: JSON log lines, finished spans, Prometheus expositions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# docs/design.md §5, as the names appear in an exposition (the parser drops a counter's
# ``_total`` from its family name; ``metric_names`` puts it back).
DESIGN_METRICS = (
    "http_requests_total",
    "django_http_requests_latency_seconds_by_view_method",  # django-prometheus latency
    "dpp_runs_total",
    "dpp_run_duration_seconds",
    "dpp_money_usd_micros_total",
    "dpp_readyz_database_status",
    "dpp_worker_last_heartbeat_timestamp",
    "dpp_queue_depth",
    "dpp_audit_required_total",
    "log_entries_total",
)


@dataclass(frozen=True)
class JsonLines:
    read: Callable[[], list[dict[str, Any]]]

    def all(self) -> list[dict[str, Any]]:
        return self.read()

    def access(self) -> list[dict[str, Any]]:
        return [line for line in self.read() if line["logger"] == "dpp.access"]

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        return [line for line in self.read() if line.get("run_id") == run_id]


def trace_id_of(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def span_id_of(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


def in_trace(spans: Iterable[ReadableSpan], trace_id: str) -> list[ReadableSpan]:
    return [span for span in spans if trace_id_of(span) == trace_id]


def server_spans(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind == SpanKind.SERVER]


def wait_for_span(
    exporter: InMemorySpanExporter, match: Callable[[ReadableSpan], bool], timeout: float = 10
) -> ReadableSpan:
    """The first finished span ``match`` accepts; a span ends a moment after the work it
    covers (the worker's ends after the run is already committed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [span for span in exporter.get_finished_spans() if match(span)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            names = sorted({span.name for span in exporter.get_finished_spans()})
            raise AssertionError(f"no matching span after {timeout} s; finished: {names}")
        time.sleep(0.05)


def status_code(span: ReadableSpan) -> int | None:
    """The HTTP status of a server span, under the old or the stable semantic convention."""
    attributes = span.attributes or {}
    value = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    return None if value is None else int(value)


def families(text: str) -> dict[str, Any]:
    """An exposition parsed by prometheus_client's own parser, by family name."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def metric_names(text: str) -> set[str]:
    """Every name a query could use: family names (with a counter's ``_total``) and
    sample names."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        names.update(sample.name for sample in family.samples)
    return names


def samples(text: str, name: str, **labels: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(sample.value for sample in samples(text, name, **labels))
