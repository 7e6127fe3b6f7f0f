"""A request that fails still has its server span and its access-log line, and the two
share the trace id; the line carries the request id the client got back (issue 8)."""

import uuid

import pytest
from django.test import Client
from opentelemetry.trace import StatusCode

from billing.models import Account
from tests.factories import issue_token
from tests.observability.helpers import server_spans, span_id_of, status_code, trace_id_of
from tests.payloads import run_body


def assert_correlated(response, spans, json_logs, *, status: int) -> dict:
    """The response's one server span and one access line agree; returns the line."""
    assert response.status_code == status
    (line,) = [line for line in json_logs.access() if line["status_code"] == status]
    (span,) = [
        span for span in server_spans(spans.get_finished_spans()) if status_code(span) == status
    ]
    assert line["request_id"] == response["X-Request-ID"]
    assert span.attributes["dpp.request_id"] == response["X-Request-ID"]
    assert line["trace_id"] == trace_id_of(span)
    assert line["span_id"] == span_id_of(span)
    # Every other line the request wrote carries the same ids.
    for other in json_logs.all():
        if other.get("request_id") == response["X-Request-ID"]:
            assert other["trace_id"] == trace_id_of(span), other
    return line


@pytest.mark.django_db
def test_a_rate_limited_submit_has_a_server_span_and_a_correlated_access_line(
    api_client, funded_account, spans, json_logs
):
    plan = funded_account.plan
    plan.pk, plan.name, plan.submit_per_minute = None, "one-a-minute", 1
    plan.save()
    # update(), not save(): the in-memory account predates its top-up.
    Account.objects.filter(pk=funded_account.pk).update(plan=plan)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(funded_account.tenant)}")

    def submit():
        return api_client.post(
            "/v1/runs", run_body(), format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
        )

    assert submit().status_code == 202
    response = submit()

    line = assert_correlated(response, spans, json_logs, status=429)
    assert line["budget_decision"] == "rate_limited"
    assert line["plan"] == "one-a-minute"
    assert line["tenant_id"] == str(funded_account.tenant_id)


@pytest.mark.django_db
@pytest.mark.urls("tests.dpp.urls")
@pytest.mark.parametrize("path", ["/t/boom", "/t/boom-drf"])
def test_an_unhandled_error_has_a_server_span_and_a_correlated_access_line(path, spans, json_logs):
    response = Client(raise_request_exception=False).get(
        path, HTTP_X_REQUEST_ID="boom-request-0001"
    )

    assert response["X-Request-ID"] == "boom-request-0001"
    assert_correlated(response, spans, json_logs, status=500)
    (span,) = server_spans(spans.get_finished_spans())
    assert span.status.status_code == StatusCode.ERROR
    # The error line with the stack is in the same trace, so the trace leads to it.
    (error,) = [line for line in json_logs.all() if line["level"] == "ERROR"]
    assert error["trace_id"] == trace_id_of(span)
    assert "RuntimeError: boom" in error["exc_info"]
