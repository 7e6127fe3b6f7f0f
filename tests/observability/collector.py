"""A minimal OTLP/HTTP trace receiver for tests: what DPP's subprocesses export when
``OTEL_EXPORTER_OTLP_ENDPOINT`` points at it (the only configuration they get)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from tests.external import HOST


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: str  # SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)


def _value(any_value) -> object:
    field = any_value.WhichOneof("value")
    return None if field is None else getattr(any_value, field)


def _spans(request: ExportTraceServiceRequest) -> Iterator[ExportedSpan]:
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ExportedSpan(
                    service=str(resource.get("service.name", "")),
                    name=span.name,
                    kind=SpanProto.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                )


class OtlpCollector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ExportedSpan] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    with collector._lock:
                        collector._spans.extend(_spans(request))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self.endpoint = f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def spans(self) -> list[ExportedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, match: Callable[[list[ExportedSpan]], bool], timeout: float = 20
    ) -> list[ExportedSpan]:
        """All spans received, once ``match`` accepts them (exports arrive in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.spans
            if match(received):
                return received
            if time.monotonic() > deadline:
                seen = sorted({(span.service, span.name) for span in received})
                raise AssertionError(f"spans not received after {timeout} s; got {seen}")
            time.sleep(0.1)

    @contextmanager
    def running(self) -> Iterator[OtlpCollector]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
