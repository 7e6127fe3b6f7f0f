"""One trace per run, from the API's request to the worker's execution, and the reaper's
work on the run linked back to it (docs/design.md §5, issue 8).

The spans come from the SDK's in-memory exporter (the session's tracer provider, the
same Django/Celery/psycopg instrumentation as production); the worker is a real Celery
worker consuming the filesystem broker in a thread of this process.
"""

import uuid
from datetime import timedelta

import pytest
from celery import signals
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from reaper import services as reaper
from runs import lifecycle, publishing
from runs.models import Run
from tests.e2e.stack import wait_until_terminal
from tests.factories import issue_token
from tests.observability.helpers import (
    in_trace,
    server_spans,
    span_id_of,
    trace_id_of,
    wait_for_span,
)
from tests.payloads import run_body

EXECUTE = "run/runs.execute_run"
PUBLISH = "apply_async/runs.execute_run"


@pytest.fixture
def tenant_client(api_client, funded_account):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(funded_account.tenant)}")
    return api_client


def submit(client, **headers: str):
    response = client.post(
        "/v1/runs", run_body(), format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex, **headers
    )
    assert response.status_code == 202, response.content
    return response


@pytest.mark.django_db(transaction=True)
def test_submit_publish_and_execute_are_one_trace_and_its_log_lines_share_the_trace_id(
    tenant_client, worker, spans, json_logs
):
    response = submit(tenant_client)
    run_id = response.json()["run_id"]
    (run,) = wait_until_terminal([run_id], timeout=30)
    assert run.status == Run.Status.COMPLETED
    trace_id = run.traceparent.split("-")[1]

    execute = wait_for_span(spans, lambda s: s.name == EXECUTE and trace_id_of(s) == trace_id)
    trace_spans = in_trace(spans.get_finished_spans(), trace_id)
    by_id = {span_id_of(span): span for span in trace_spans}
    (server,) = server_spans(trace_spans)
    (publish,) = [span for span in trace_spans if span.name == PUBLISH]

    # The API's server span, its publish span (producer) and the worker's execute span
    # (consumer): one trace, each the parent of the next.
    assert server.attributes["http.method"] == "POST"
    assert publish.kind == SpanKind.PRODUCER
    assert execute.kind == SpanKind.CONSUMER
    assert execute.parent.span_id == publish.context.span_id

    def ancestors(span):
        while span.parent is not None and f"{span.parent.span_id:016x}" in by_id:
            span = by_id[f"{span.parent.span_id:016x}"]
            yield span

    assert server in list(ancestors(publish))
    # The database work of both sides is in the trace too (psycopg instrumentation).
    assert any(span.kind == SpanKind.CLIENT and server in ancestors(span) for span in trace_spans)
    assert any(span.kind == SpanKind.CLIENT and execute in ancestors(span) for span in trace_spans)
    # Spans carry the ids the logs carry, so a trace backend finds them by either.
    assert server.attributes["dpp.request_id"] == response["X-Request-ID"]
    assert server.attributes["dpp.run_id"] == run_id
    assert server.attributes["dpp.tenant_id"] == str(run.tenant_id)
    assert execute.attributes["dpp.run_id"] == run_id
    assert execute.attributes["dpp.tenant_id"] == str(run.tenant_id)

    # The API's lines for the run are those of its request, the worker's those of its task.
    lines = json_logs.of_run(run_id)
    api_lines = [line for line in lines if line.get("request_id") == response["X-Request-ID"]]
    worker_lines = [line for line in lines if "task_id" in line]
    assert len(api_lines) + len(worker_lines) == len(lines)
    (access,) = [line for line in api_lines if line["logger"] == "dpp.access"]
    assert access["span_id"] == span_id_of(server)
    for line in api_lines:
        assert line["trace_id"] == trace_id, line
    assert {line["logger"] for line in worker_lines} >= {"runs.lifecycle", "celery.app.trace"}
    for line in worker_lines:
        assert line["trace_id"] == trace_id, line
        assert line["span_id"] == span_id_of(execute), line
        assert line["tenant_id"] == str(run.tenant_id), line
    # The ledger's transfers carry the trace id too: RESERVE from the API, SETTLE from the
    # worker.
    assert set(run.transfers.values_list("kind", "trace_id")) == {
        ("RESERVE", trace_id),
        ("SETTLE", trace_id),
    }


@pytest.mark.django_db
def test_the_publish_span_is_current_while_the_message_is_sent(fs_broker, spans):
    """The instrumentation closes a publish span only for a task registered in the
    process; publish_run goes through the task object so that the span covers the send
    and never stays attached to the caller's context."""
    seen = []

    def during_publish(**kwargs):
        seen.append(trace.get_current_span())

    signals.before_task_publish.connect(during_publish, weak=False)
    try:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            assert publishing.publish_run(run_id=uuid.uuid4())
            assert trace.get_current_span() is caller
    finally:
        signals.before_task_publish.disconnect(during_publish)

    (publish,) = [span for span in spans.get_finished_spans() if span.name == PUBLISH]
    assert seen[0].get_span_context().span_id == publish.context.span_id
    assert publish.parent.span_id == caller.get_span_context().span_id


@pytest.mark.django_db
def test_a_client_traceparent_is_honoured(tenant_client, spans):
    client_trace, client_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    response = submit(tenant_client, HTTP_TRACEPARENT=f"00-{client_trace}-{client_span}-01")

    run = Run.objects.get(id=response.json()["run_id"])
    assert run.traceparent.split("-")[1] == client_trace
    (server,) = server_spans(spans.get_finished_spans())
    assert trace_id_of(server) == client_trace
    assert f"{server.parent.span_id:016x}" == client_span


@pytest.mark.django_db
def test_the_reapers_span_for_a_run_links_to_the_runs_trace(
    tenant_client, fs_broker, settings, spans
):
    run_id = submit(tenant_client).json()["run_id"]
    run = Run.objects.get(id=run_id)
    run_trace, run_span = run.traceparent.split("-")[1:3]
    settings.DPP_LEASE_TTL_SEC = 0
    assert lifecycle.claim(run_id=run_id) is not None  # a worker that then died
    spans.clear()

    with trace.get_tracer("test").start_as_current_span("reaper.expire_leases task"):
        result = reaper.expire_leases(now=timezone.now() + timedelta(seconds=1))

    assert result.actions == {"requeued": 1}
    (reap,) = [s for s in spans.get_finished_spans() if s.name == "reaper.reap_expired_lease"]
    assert reap.attributes["dpp.run_id"] == run_id
    (link,) = reap.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (
        run_trace,
        run_span,
    )
    # Its own trace is the reaper's; the requeue's publish happens inside it, so the
    # next execution continues the reaper's trace, which links back to the run's.
    assert trace_id_of(reap) != run_trace
    (publish,) = [span for span in spans.get_finished_spans() if span.name == PUBLISH]
    assert publish.parent.span_id == reap.context.span_id
