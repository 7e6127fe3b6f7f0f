"""/health is liveness only; /readyz checks the real dependencies (docs/design.md §4).

A failing /readyz is a 503 problem document, like every error, with a `checks` member.
"""

import pytest
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import override_settings

from dpp import health
from dpp.metrics import READYZ_DATABASE
from tests.dpp.problem_assertions import assert_problem

pytestmark = pytest.mark.django_db

# A Redis that cannot answer: nothing listens on port 1.
_DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
}


def test_health_answers_200_without_touching_a_dependency(client, django_assert_num_queries):
    with django_assert_num_queries(0), override_settings(CACHES=_DEAD_REDIS):
        response = client.get("/health")
        caches["default"].close()
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_with_each_check_and_its_latency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    checks = {check["name"]: check for check in body["checks"]}
    assert {"database", "cache"} <= set(checks)
    for check in checks.values():
        assert check["ok"] is True
        assert isinstance(check["latency_ms"], int | float)
        assert check["latency_ms"] >= 0
    assert READYZ_DATABASE._value.get() == 1


def test_readyz_answers_503_naming_the_cache_when_redis_is_down(client, json_logs):
    with override_settings(CACHES=_DEAD_REDIS):
        try:
            response = client.get("/readyz")
        finally:
            caches["default"].close()
    body = assert_problem(response, 503, "service-unavailable")
    assert "cache" in body["detail"]
    checks = {check["name"]: check for check in body["checks"]}
    assert checks["database"]["ok"] is True
    assert checks["cache"]["ok"] is False
    assert checks["cache"]["latency_ms"] >= 0
    # The body names only the failure's class; host names stay in the log.
    assert "127.0.0.1" not in response.content.decode()
    (warning,) = [line for line in json_logs.all() if line["message"] == "readiness check failed"]
    assert warning["check"] == "cache"


def test_readyz_answers_503_when_the_database_is_unreachable(client, monkeypatch):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to be unreachable")
    # A real failure: the check connects to a port nothing listens on. (A second
    # connection object, so the test's own transaction stays untouched.)
    real = connections[DEFAULT_DB_ALIAS]
    unreachable = type(real)({**real.settings_dict, "HOST": "127.0.0.1", "PORT": "1"}, real.alias)
    monkeypatch.setattr(health, "connection", unreachable)
    try:
        response = client.get("/readyz")
    finally:
        unreachable.close()
    body = assert_problem(response, 503, "service-unavailable")
    checks = {check["name"]: check for check in body["checks"]}
    assert checks["database"]["ok"] is False
    assert checks["database"]["error"] == "OperationalError"
    assert checks["cache"]["ok"] is True
    assert READYZ_DATABASE._value.get() == 0


@pytest.mark.parametrize("path", ["/health", "/readyz"])
def test_health_endpoints_need_no_api_key(client, path):
    assert client.get(path, headers={"Authorization": "Bearer nonsense"}).status_code == 200
