"""Runs over the real pipeline, every process configured only by the environment: the API
(gunicorn) and a 4-process Celery worker on SQS (moto) with results on S3 (SeaweedFS)."""

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from billing.models import Transfer
from reaper.audit import audit
from runs.execution import PACK_ERROR, TIMEBOX_EXCEEDED
from runs.models import Run
from runs.packs.decision import price_micros
from runs.publishing import publish_run
from tests.e2e.stack import WORKER_PROCESSES, Stack, publishing_to, wait_until_terminal
from tests.execution.packs import CRASH_MESSAGE, executions
from tests.external import S3Server, SqsServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DECISION_PRICE = price_micros(n_options=4, n_criteria=3)  # $0.010100, docs/design.md §7


def settle_amounts(run_id: object) -> list[int]:
    return list(
        Transfer.objects.filter(run_id=run_id, kind=Transfer.Kind.SETTLE).values_list(
            "amount_micros", flat=True
        )
    )


def wait_for_empty_queue(sqs: SqsServer, timeout: float = 15) -> None:
    """Every message, duplicates included, was received and acknowledged."""
    deadline = time.monotonic() + timeout
    while sqs.depth("runs") or sqs.in_flight("runs"):
        assert time.monotonic() < deadline, "the runs queue did not drain"
        time.sleep(0.2)


def test_submitted_run_completes_in_seconds_settles_once_and_downloads_with_its_sha256(
    sqs_s3_stack: Stack, s3_server: S3Server, new_tenant
):
    api, account = new_tenant(sqs_s3_stack)
    started = time.monotonic()

    run_id = api.submit()
    (run,) = wait_until_terminal([run_id], timeout=15)

    assert time.monotonic() - started < 10
    assert (run.status, run.money_state) == (Run.Status.COMPLETED, Run.MoneyState.SETTLED)
    assert run.actual_cost_micros == DECISION_PRICE
    assert settle_amounts(run_id) == [DECISION_PRICE]
    account.refresh_from_db()
    assert (account.credits_posted, account.debits_posted, account.debits_pending) == (
        10_000_000,
        DECISION_PRICE,
        0,
    )
    body = api.run(run_id)
    assert body["cost"]["used_usd"] == "0.010100"
    url = body["result"]["download_url"]
    assert url.startswith(f"{s3_server.endpoint_url}/{s3_server.bucket}/results/")
    assert "X-Amz-Expires=600" in url
    downloaded = api.download(url)
    assert hashlib.sha256(downloaded).hexdigest() == body["result"]["sha256"] == run.result_sha256
    assert len(downloaded) == body["result"]["size_bytes"]
    assert audit() == []


def test_two_hundred_runs_at_once_on_four_processes_each_execute_once_at_the_exact_price(
    sqs_s3_stack: Stack, sqs_server: SqsServer, new_tenant
):
    api, account = new_tenant(sqs_s3_stack)

    with ThreadPoolExecutor(max_workers=16) as pool:
        run_ids = list(pool.map(lambda _: api.submit(pack_type="counting-decision"), range(200)))
    runs = wait_until_terminal(run_ids, timeout=120)

    assert {run.status for run in runs} == {Run.Status.COMPLETED}
    assert {run.actual_cost_micros for run in runs} == {DECISION_PRICE}
    assert {run.attempts for run in runs} == {1}
    settles = Transfer.objects.filter(run_id__in=run_ids, kind=Transfer.Kind.SETTLE)
    assert sorted(str(settle.run_id) for settle in settles) == sorted(run_ids)
    assert {settle.amount_micros for settle in settles} == {DECISION_PRICE}
    account.refresh_from_db()
    assert (account.debits_posted, account.debits_pending) == (200 * DECISION_PRICE, 0)
    assert account.available_micros == 10_000_000 - 200 * DECISION_PRICE
    assert {executions(sqs_s3_stack.pack_log, run_id) for run_id in run_ids} == {1}
    wait_for_empty_queue(sqs_server)
    assert audit() == []
    (setup,) = [
        json.loads(line)
        for line in sqs_s3_stack.worker.log_path.read_text().splitlines()
        if '"worker starting"' in line
    ]
    assert (setup["concurrency"], setup["pool"]) == (WORKER_PROCESSES, "celery.concurrency.prefork")


def test_duplicate_deliveries_execute_and_settle_once(
    sqs_s3_stack: Stack, sqs_server: SqsServer, new_tenant
):
    api, account = new_tenant(sqs_s3_stack)

    run_id = api.submit(pack_type="counting-decision")
    with publishing_to(
        broker_url=sqs_server.broker_url, transport_options=sqs_server.broker_transport_options()
    ):
        assert publish_run(run_id=run_id)  # a second delivery while the first may still run
        wait_until_terminal([run_id], timeout=15)
        assert publish_run(run_id=run_id)  # and a late one, after it finished
    wait_for_empty_queue(sqs_server)

    assert executions(sqs_s3_stack.pack_log, run_id) == 1
    assert settle_amounts(run_id) == [DECISION_PRICE]
    account.refresh_from_db()
    assert (account.debits_posted, account.debits_pending) == (DECISION_PRICE, 0)
    assert audit() == []


def test_crashing_pack_fails_with_its_reason_and_exactly_the_minimum_fee(
    sqs_s3_stack: Stack, new_tenant
):
    api, account = new_tenant(sqs_s3_stack)

    run_id = api.submit(pack_type="crashing")
    (run,) = wait_until_terminal([run_id], timeout=15)

    assert (run.status, run.money_state) == (Run.Status.FAILED, Run.MoneyState.SETTLED)
    assert run.actual_cost_micros == run.minimum_fee_micros == 5_000
    assert settle_amounts(run_id) == [5_000]
    account.refresh_from_db()
    assert (account.debits_posted, account.debits_pending) == (5_000, 0)
    body = api.run(run_id)
    assert body["error"]["reason_code"] == PACK_ERROR
    assert CRASH_MESSAGE not in body["error"]["detail"]
    assert body["result"] is None
    assert audit() == []


def test_pack_overrunning_its_timebox_fails_with_timebox_exceeded_and_the_minimum_fee(
    sqs_s3_stack: Stack, new_tenant
):
    api, account = new_tenant(sqs_s3_stack)
    started = time.monotonic()

    run_id = api.submit(pack_type="sleepy", inputs={"sleep_sec": 60}, timebox_sec=1)
    (run,) = wait_until_terminal([run_id], timeout=15)

    assert time.monotonic() - started < 10
    assert run.status == Run.Status.FAILED
    assert run.error_reason_code == TIMEBOX_EXCEEDED
    assert settle_amounts(run_id) == [run.minimum_fee_micros]
    account.refresh_from_db()
    assert (account.debits_posted, account.debits_pending) == (run.minimum_fee_micros, 0)
    assert api.run(run_id)["error"]["reason_code"] == TIMEBOX_EXCEEDED
    assert audit() == []


def test_readyz_of_the_api_checks_the_sqs_broker_and_the_s3_bucket(sqs_s3_stack: Stack, new_tenant):
    api, _ = new_tenant(sqs_s3_stack)

    status, body = api.request("GET", "/readyz")

    assert status == 200, body
    checks = {check["name"]: check["ok"] for check in body["checks"]}
    assert checks == {"database": True, "cache": True, "broker": True, "storage": True}
