"""Logs are JSON lines with the request context, and API keys never appear (docs/design.md §5)."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from dpp import api_keys, context
from dpp.services import api_key_issue
from tests.factories import TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.dpp.urls")]

BASE_FIELDS = {"timestamp", "level", "logger", "message", "request_id"}
ACCESS_FIELDS = BASE_FIELDS | {"method", "path", "status_code", "duration_ms"}


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def token(tenant) -> str:
    return api_key_issue(tenant=tenant, label="logs").token


def test_each_request_writes_one_access_line_with_its_fields(client, json_logs):
    response = client.get("/health")
    (line,) = json_logs.access()
    assert set(line) >= ACCESS_FIELDS
    assert line["method"] == "GET"
    assert line["path"] == "/health"
    assert line["status_code"] == 200
    assert line["duration_ms"] >= 0
    assert line["level"] == "INFO"
    assert line["request_id"] == response["X-Request-ID"]


def test_the_access_line_of_an_authenticated_request_carries_the_tenant(
    client, json_logs, tenant, token
):
    # The auth class adds tenant_id with context.update deep inside the view; the access
    # line is written by the middleware afterwards and must still carry it.
    assert client.get("/t/private", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    (line,) = json_logs.access()
    assert line["tenant_id"] == str(tenant.id)
    assert line["status_code"] == 200
    assert context.get("tenant_id") is None  # and it does not leak past the request


def test_the_tenant_of_one_request_is_not_in_the_next_ones_lines(client, json_logs, token):
    client.get("/t/private", headers={"Authorization": f"Bearer {token}"})
    client.get("/health")
    first, second = json_logs.access()
    assert "tenant_id" in first
    assert "tenant_id" not in second


def test_api_keys_never_appear_in_any_log_line(client, json_logs, token):
    unknown = api_keys.format_token(api_keys.new_prefix(), api_keys.new_secret())
    bearer = {"Authorization": f"Bearer {token}"}
    client.get("/t/private", headers=bearer)
    client.get("/t/private", headers={"Authorization": f"Bearer {unknown}"})
    client.get(f"/t/private?api_key={token}", headers=bearer)
    client.get(f"/nowhere/{token}")
    client.post("/t/orders", data={"title": token}, content_type="application/json")
    client.post("/t/orders", data={"lines": token}, content_type="application/json")
    client.raise_request_exception = False
    client.get("/t/boom", {"q": token})  # the key ends up in an exception message
    client.get("/t/boom-drf", {"q": unknown})

    raw = json_logs.raw
    lines = json_logs.all()
    assert len(json_logs.access()) == 8
    assert any("exc_info" in line for line in lines)
    for secret in (token, unknown):
        assert secret not in raw
        assert api_keys.parse_token(secret).secret not in raw
    assert "[REDACTED]" in raw


def test_a_log_line_inside_a_request_has_the_request_id(client, json_logs):
    client.raise_request_exception = False
    client.get("/t/boom", headers={"X-Request-ID": "trace-me-0001"})
    lines = json_logs.all()
    assert {line["request_id"] for line in lines} == {"trace-me-0001"}
    assert all(set(line) >= BASE_FIELDS for line in lines)


def test_logging_writes_json_lines_to_stdout():
    """Through the real settings.LOGGING in a fresh process, not a test handler."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('dpp.demo').warning('hello %s', 'world', extra={'run_id': 'r-1'})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["message"] == "hello world"
    assert line["level"] == "WARNING"
    assert line["logger"] == "dpp.demo"
    assert line["run_id"] == "r-1"
    assert set(line) >= {"timestamp", "level", "logger", "message"}
