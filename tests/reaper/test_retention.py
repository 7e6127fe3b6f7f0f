"""Retention (docs/design.md §2): results past ``retention_until`` are deleted, the run row
and its money stay; polling the run still shows its status and cost, with an expired
result, and only the result download answers 410 ``result-expired``."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Account
from reaper import tasks
from reaper.audit import audit
from runs import execution
from runs.models import Run
from runs.receipts import read_receipt
from tests.factories import issue_token
from tests.reaper.helpers import money, receipt_paths


@pytest.fixture
def completed(make_run):
    def make(*, retained_for: timedelta) -> Run:
        run = make_run()
        execution.execute_run(run_id=run.id)
        Run.objects.filter(id=run.id).update(retention_until=timezone.now() + retained_for)
        run.refresh_from_db()
        return run

    return make


@pytest.fixture
def client_of(funded_account: Account) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(funded_account.tenant)}")
    return client


def test_expired_result_is_deleted_the_run_stays_visible_and_only_the_download_is_410(
    completed, funded_account: Account, local_results: Path, client_of: APIClient
):
    expired = completed(retained_for=timedelta(days=30))
    # A link handed out while the result was kept stops working with the purge.
    old_link = client_of.get(f"/v1/runs/{expired.id}").json()["result"]
    Run.objects.filter(id=expired.id).update(retention_until=timezone.now() - timedelta(minutes=1))
    kept = completed(retained_for=timedelta(days=30))
    before = money(funded_account)

    assert tasks.purge_expired_results() == {"purged": 1}

    body, sidecar = receipt_paths(local_results, expired)
    assert not body.exists()
    assert not sidecar.exists()
    assert read_receipt(expired) is None
    expired.refresh_from_db()
    assert expired.result_purged_at is not None
    assert (expired.status, expired.money_state) == (Run.Status.COMPLETED, Run.MoneyState.SETTLED)
    assert (expired.result_key, expired.actual_cost_micros) != ("", None)
    assert money(funded_account) == before

    response = client_of.get(f"/v1/runs/{expired.id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["money_state"]) == ("COMPLETED", "SETTLED")
    assert body["cost"]["used_usd"] == "0.010100"
    assert body["result"]["expired"] is True
    assert body["result"]["expired_at"] <= expired.result_purged_at.isoformat().replace(
        "+00:00", "Z"
    )
    listed = {run["run_id"]: run for run in client_of.get("/v1/runs").json()["results"]}
    assert listed[str(expired.id)]["result"] == body["result"]

    download = client_of.get(old_link["download_url"])
    assert download.status_code == 410
    assert download["Content-Type"] == "application/problem+json"
    problem = download.json()
    assert (problem["type"], problem["status"]) == ("/problems/result-expired", 410)

    assert read_receipt(kept) is not None
    kept_body = client_of.get(f"/v1/runs/{kept.id}").json()
    assert client_of.get(kept_body["result"]["download_url"]).status_code == 200
    # Nothing left to purge; the row is never purged twice.
    assert tasks.purge_expired_results() == {}
    assert audit() == []


def test_purge_is_bounded_by_the_batch_size(completed, settings):
    settings.DPP_REAPER_BATCH_SIZE = 2
    for _ in range(3):
        completed(retained_for=-timedelta(days=1))

    assert tasks.purge_expired_results() == {"purged": 2}
    assert tasks.purge_expired_results() == {"purged": 1}
    assert tasks.purge_expired_results() == {}


def test_storage_error_leaves_the_run_for_the_next_purge(completed, monkeypatch):
    run = completed(retained_for=-timedelta(days=1))

    def storage_down(seen: Run) -> None:
        raise ConnectionError("object storage did not answer")

    with monkeypatch.context() as patched:
        patched.setattr("reaper.services.delete_receipt", storage_down)
        assert tasks.purge_expired_results() == {"error": 1}
    run.refresh_from_db()
    assert run.result_purged_at is None

    assert tasks.purge_expired_results() == {"purged": 1}
