import http_sfv
import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from billing import services as billing
from runs.models import Run
from tests.factories import AccountFactory, issue_token
from tests.payloads import run_body


def parse(header: str) -> tuple[str, dict]:
    item = http_sfv.Item()
    item.parse(header.encode())
    return item.value, dict(item.params)


@pytest.fixture
def limited(api_client, db):
    """A funded tenant on a plan with a small submit quota, and its client."""
    account = AccountFactory()
    plan = account.plan
    plan.pk, plan.name = None, "tiny"
    plan.submit_per_minute, plan.poll_per_minute, plan.max_concurrent_runs = 3, 5, 100
    plan.save()
    account.plan = plan
    account.save()
    billing.top_up(account=account, amount_micros=10_000_000, reason="test")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(account.tenant)}")
    return account, api_client


def submit(client, key):
    return client.post("/v1/runs", run_body(), format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_headers_are_structured_fields_and_remaining_drops_by_one(limited):
    _, client = limited
    seen = []
    for _ in range(3):
        response = client.get("/v1/budget")
        assert response.status_code == 200
        name, params = parse(response["RateLimit-Policy"])
        assert (name, params) == ("poll", {"q": 5, "w": 60})
        name, params = parse(response["RateLimit"])
        assert name == "poll"
        seen.append(params)
    assert [p["r"] for p in seen] == [4, 3, 2]
    resets = [p["t"] for p in seen]
    assert all(1 <= t <= 60 for t in resets)
    assert resets == sorted(resets, reverse=True)


def test_over_the_limit_is_a_429_problem_with_retry_after_matching_t(limited):
    _, client = limited
    for _ in range(5):
        assert client.get("/v1/runs").status_code == 200

    response = client.get("/v1/runs")

    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/rate-limited"
    assert problem["violated-policies"] == [{"policy": "poll", "quota": 5, "window": 60}]
    _, params = parse(response["RateLimit"])
    assert params["r"] == 0
    assert response["Retry-After"] == str(params["t"])
    assert not any(h.lower().startswith("x-ratelimit") for h in response.headers)


def test_rate_limited_submit_reserves_nothing_and_keeps_the_key_unused(limited):
    account, client = limited
    for i in range(3):
        assert submit(client, f"key-limited-{i}").status_code == 202

    rejected = submit(client, "key-limited-3")

    assert rejected.status_code == 429
    assert Run.objects.filter(tenant=account.tenant).count() == 3
    account.refresh_from_db()
    assert account.debits_pending == 3 * 50_000
    cache.clear()  # the window ends
    fresh = submit(client, "key-limited-3")
    assert fresh.status_code == 202
    assert "Idempotent-Replayed" not in fresh


def test_replays_count_against_submit(limited):
    _, client = limited
    statuses = [submit(client, "key-replayed-1").status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]


def test_tenants_do_not_share_counters(limited, db):
    _, client = limited
    for _ in range(5):
        client.get("/v1/runs")
    assert client.get("/v1/runs").status_code == 429

    other = AccountFactory()
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(other.tenant)}")
    assert other_client.get("/v1/runs").status_code == 200


def test_a_plan_change_applies_on_the_next_request(limited):
    account, client = limited
    for _ in range(5):
        client.get("/v1/runs")
    assert client.get("/v1/runs").status_code == 429

    account.plan.poll_per_minute = 100
    account.plan.save()

    response = client.get("/v1/runs")
    assert response.status_code == 200
    assert parse(response["RateLimit-Policy"])[1]["q"] == 100


@pytest.mark.parametrize("path", ["/health", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_operational_endpoints_are_never_limited(limited, path):
    _, client = limited
    for _ in range(12):
        response = client.get(path)
        assert response.status_code == 200
        assert "RateLimit" not in response


def test_unauthenticated_v1_responses_carry_headers_too(api_client, db):
    response = api_client.get("/v1/budget")
    assert response.status_code == 401
    assert parse(response["RateLimit-Policy"])[0] == "poll"


def test_concurrency_policy_caps_in_flight_runs(limited):
    account, client = limited
    account.plan.max_concurrent_runs = 2
    account.plan.save()
    assert submit(client, "key-inflight-1").status_code == 202
    assert submit(client, "key-inflight-2").status_code == 202

    response = submit(client, "key-inflight-3")

    assert response.status_code == 429
    problem = response.json()
    assert problem["type"] == "/problems/rate-limited"
    assert problem["violated-policies"] == [{"policy": "concurrency", "quota": 2, "in_flight": 2}]
    assert response["Retry-After"] == "5"
    assert Run.objects.filter(tenant=account.tenant).count() == 2


REDIS_DOWN = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


def test_redis_down_fails_open_for_polls_and_closed_for_submits(limited):
    account, client = limited
    with override_settings(CACHES=REDIS_DOWN):
        poll = client.get("/v1/runs")
        refused = submit(client, "key-redis-down")
        ready = client.get("/readyz")

    assert poll.status_code == 200
    assert refused.status_code == 503
    assert refused.json()["type"] == "/problems/service-unavailable"
    assert Run.objects.filter(tenant=account.tenant).count() == 0
    assert ready.status_code == 503
    checks = {c["name"]: c["ok"] for c in ready.json()["checks"]}
    assert checks["cache"] is False
