"""A dependency goes off the network: the broker while runs are submitted, object storage
while workers write their receipts. Nothing is lost and nothing is guessed."""

import time

import pytest

from runs.models import Run
from tests.chaos.harness import LEASE_TTL_SEC, Scenario, json_lines

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_broker_unreachable_at_submit_time(scenario: Scenario):
    scenario.worker("healthy", concurrency=2)
    api = scenario.tenant()

    scenario.cluster.broker_proxy.down()
    started = time.monotonic()
    stranded = scenario.submit(api, 10)
    per_submit = (time.monotonic() - started) / 10
    scenario.cluster.broker_proxy.up()

    # Accepted (202) and reserved, every publish failed: the runs table is the outbox.
    failed_publishes = {
        line["run_id"]
        for line in json_lines(scenario.cluster.api)
        if line.get("message", "").startswith("publish failed")
    }
    assert failed_publishes >= set(stranded)
    assert per_submit < 5
    published_directly = scenario.submit(api, 2)
    runs = scenario.wait_settled(timeout=60)

    books = scenario.books()
    assert books.completed == 12
    executions = scenario.executions()
    for run in runs:
        assert (run.attempts, executions[str(run.id)]) == (1, 1)
    # Published by the reaper's requeue scan, after DPP_REQUEUE_AFTER_SEC.
    republished = [run for run in runs if str(run.id) in stranded]
    assert all((run.started_at - run.created_at).total_seconds() >= 6 for run in republished)
    scenario.report(
        books,
        stranded=len(stranded),
        published_directly=len(published_directly),
        submit_sec=f"{per_submit:.2f}",
    )


def test_object_storage_unreachable_while_receipts_are_written(scenario: Scenario):
    worker = scenario.worker("healthy", concurrency=2)
    api = scenario.tenant()

    scenario.cluster.s3_proxy.down()
    ids = scenario.submit(api, 8)
    scenario.wait_until(
        lambda: all(run.attempts == 1 for run in scenario.runs(ids)),
        timeout=60,
        what="every run attempted once",
    )
    # Leases lapse while storage is away: the reaper cannot tell whether a receipt
    # exists, so it must neither requeue nor fail these runs.
    time.sleep(LEASE_TTL_SEC + 3)
    waiting = scenario.runs(ids)
    assert all((run.status, run.attempts) == ("PROCESSING", 1) for run in waiting)
    assert all(run.lease_expires_at is not None for run in waiting)
    reaper_errors = sum(
        line.get("message") == "lease expiry of one run failed; retried next scan"
        for line in scenario.reaper_lines()
    )
    assert reaper_errors > 0
    write_errors = sum(
        "raised unexpected" in line.get("message", "") for line in json_lines(worker)
    )
    assert write_errors >= 1

    scenario.cluster.s3_proxy.up()
    runs = scenario.wait_settled(timeout=60)

    books = scenario.books()
    assert books.completed == 8
    executions = scenario.executions()
    for run in runs:
        # No receipt reached storage: retried once storage was back.
        assert run.status == Run.Status.COMPLETED
        assert executions[str(run.id)] == run.attempts
    scenario.report(
        books,
        receipt_write_failures=write_errors,
        reaper_scans_deferred=reaper_errors,
        retried=sum(run.attempts == 2 for run in runs),
    )
