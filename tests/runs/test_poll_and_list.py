import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Run
from tests.factories import AccountFactory
from tests.payloads import run_body


def submit(client, key, **overrides):
    response = client.post(
        "/v1/runs", run_body(**overrides), format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 202, response.content
    return response.json()["run_id"]


def test_poll_shows_status_money_and_costs(funded_client):
    run_id = submit(funded_client, "key-poll-0001")

    body = funded_client.get(f"/v1/runs/{run_id}").json()

    assert body["run_id"] == run_id
    assert body["status"] == "QUEUED"
    assert body["money_state"] == "RESERVED"
    assert body["cost"] == {
        "reserved_usd": "0.050000",
        "used_usd": None,
        "minimum_fee_usd": "0.005000",
    }
    assert body["result"] is None
    assert body["error"] is None


def test_failed_run_shows_its_reason(funded_client):
    run_id = submit(funded_client, "key-poll-0002")
    Run.objects.filter(id=run_id).update(
        status=Run.Status.FAILED, error_reason_code="WORKER_TIMEOUT", error_detail="lease lost"
    )
    body = funded_client.get(f"/v1/runs/{run_id}").json()
    assert body["error"] == {"reason_code": "WORKER_TIMEOUT", "detail": "lease lost"}


@pytest.mark.parametrize("run_id", ["not-a-uuid", str(uuid.uuid4()), "0" * 36])
def test_unknown_or_malformed_run_ids_are_the_same_404(funded_client, run_id):
    response = funded_client.get(f"/v1/runs/{run_id}")
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/run-not-found"


def test_another_tenants_run_is_indistinguishable_from_a_missing_one(funded_client, client_for, db):
    run_id = submit(funded_client, "key-iso-00001")
    intruder = client_for(AccountFactory())

    theirs = intruder.get(f"/v1/runs/{run_id}")
    missing = intruder.get(f"/v1/runs/{uuid.uuid4()}")

    assert theirs.status_code == missing.status_code == 404
    strip = lambda b: {k: v for k, v in b.items() if k != "instance"}  # noqa: E731
    assert strip(theirs.json()) == strip(missing.json())
    assert intruder.get("/v1/runs").json()["results"] == []
    assert intruder.get("/v1/runs?status=QUEUED").json()["results"] == []


def test_a_run_past_retention_stays_visible_with_its_status_and_cost(funded_client):
    run_id = submit(funded_client, "key-expired-1")
    retention_end = timezone.now() - timedelta(seconds=1)
    Run.objects.filter(id=run_id).update(
        status=Run.Status.COMPLETED,
        money_state=Run.MoneyState.SETTLED,
        actual_cost_micros=10_100,
        result_key="results/x.json",
        result_sha256="0" * 64,
        retention_until=retention_end,
    )

    response = funded_client.get(f"/v1/runs/{run_id}")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["money_state"]) == ("COMPLETED", "SETTLED")
    assert body["cost"]["used_usd"] == "0.010100"
    assert body["result"] == {
        "expired": True,
        "expired_at": retention_end.isoformat().replace("+00:00", "Z"),
    }


def test_list_is_newest_first_with_cursor_pages_and_status_filter(funded_client):
    ids = [submit(funded_client, f"key-list-{i:04d}") for i in range(5)]
    Run.objects.filter(id=ids[0]).update(status=Run.Status.FAILED)

    first = funded_client.get("/v1/runs?limit=2").json()
    second = funded_client.get(first["next"]).json()
    third = funded_client.get(second["next"]).json()
    listed = [r["run_id"] for page in (first, second, third) for r in page["results"]]

    assert listed == list(reversed(ids))
    assert third["next"] is None
    failed = funded_client.get("/v1/runs?status=FAILED").json()["results"]
    assert [r["run_id"] for r in failed] == [ids[0]]


@pytest.mark.parametrize("query", ["status=DONE", "limit=abc", "limit=0", "limit=101"])
def test_bad_list_queries_are_problems(funded_client, query):
    response = funded_client.get(f"/v1/runs?{query}")
    assert response["Content-Type"] == "application/problem+json"
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/" + query.split("=")[0]
