"""Lease expiry (docs/design.md §2, "Reaper"): what an expired lease becomes, decided from what
object storage proves. Driven through the ``reaper.expire_leases`` task."""

import uuid
from pathlib import Path

import pytest

from billing.models import Account
from reaper import services, tasks
from reaper.audit import audit
from runs import execution, lifecycle
from runs.models import Run, RunEvent
from tests.factories import issue_token
from tests.reaper.helpers import (
    RESULT_BODY,
    Broker,
    JsonLines,
    corrupt_bytes,
    exhaust_attempts,
    finalizations,
    history,
    lease,
    money,
    receipt_for,
    rewrite_metadata,
)

pytestmark = pytest.mark.usefixtures("instant_leases")

USD = 1_000_000
RESERVED = 50_000  # make_run's default reservation; its minimum fee is 5_000


def test_valid_receipt_rolls_the_run_forward_with_the_receipts_charge(
    make_run, funded_account: Account, broker: Broker
):
    run = make_run()
    current = lease(run)
    receipt = receipt_for(current, charge_micros=9_000)

    actions = tasks.expire_leases()

    run.refresh_from_db()
    assert actions == {"rolled_forward": 1}
    assert (run.status, run.money_state) == (Run.Status.COMPLETED, Run.MoneyState.SETTLED)
    assert (run.actual_cost_micros, run.result_key, run.result_sha256, run.result_size) == (
        9_000,
        receipt.key,
        receipt.body_sha256,
        len(RESULT_BODY),
    )
    assert finalizations(run) == [("SETTLE", 9_000)]
    assert money(funded_account) == (10 * USD, 9_000, 0)
    assert broker.drain() == []
    assert history(run) == [("CLAIMED", 1), ("FINALIZED", 1)]
    assert audit() == []


def test_no_receipt_with_attempts_left_queues_the_run_again_and_republishes_it(
    make_run, funded_account: Account, broker: Broker
):
    run = make_run()
    current = lease(run)

    actions = tasks.expire_leases()

    run.refresh_from_db()
    assert actions == {"requeued": 1}
    assert (run.status, run.money_state, run.attempts) == (
        Run.Status.QUEUED,
        Run.MoneyState.RESERVED,
        1,
    )
    assert (run.lease_token, run.lease_expires_at) == (None, None)
    assert run.published_at is not None
    assert broker.drain() == [str(run.id)]
    assert finalizations(run) == []
    assert money(funded_account) == (10 * USD, 0, RESERVED)
    events = list(RunEvent.objects.filter(run=run).values_list("kind", "lease_token"))
    assert events == [("CLAIMED", current.token), ("REQUEUED", current.token)]
    assert audit() == []


def test_requeued_run_is_claimed_again_and_its_lease_history_tells_the_story(
    make_run, broker: Broker, settings
):
    run = make_run()
    first = lease(run)
    tasks.expire_leases()
    settings.DPP_LEASE_TTL_SEC = 120

    execution.execute_run(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.attempts) == (Run.Status.COMPLETED, 2)
    events = list(
        RunEvent.objects.filter(run=run).values_list("kind", "attempt", "lease_token", "detail")
    )
    second = run.lease_token
    assert events == [
        ("CLAIMED", 1, first.token, ""),
        ("REQUEUED", 1, first.token, "lease expired without a receipt"),
        ("CLAIMED", 2, second, ""),
        # The worker renews its lease after the pack, before it writes the receipt.
        ("LEASE_EXTENDED", 2, second, ""),
        ("FINALIZED", 2, second, "COMPLETED"),
    ]
    assert first.token != second
    assert audit() == []


def test_no_receipt_on_the_last_attempt_fails_worker_timeout_with_exactly_the_minimum_fee(
    make_run, funded_account: Account, broker: Broker
):
    run = make_run()
    exhaust_attempts(run, tasks.expire_leases)
    broker.drain()

    actions = tasks.expire_leases()

    run.refresh_from_db()
    assert actions == {"failed": 1}
    assert (run.status, run.money_state, run.error_reason_code) == (
        Run.Status.FAILED,
        Run.MoneyState.SETTLED,
        services.WORKER_TIMEOUT,
    )
    assert run.minimum_fee_micros == 5_000
    assert run.actual_cost_micros == 5_000
    assert finalizations(run) == [("SETTLE", 5_000)]
    assert money(funded_account) == (10 * USD, 5_000, 0)
    assert broker.drain() == []
    assert history(run)[-1] == ("FINALIZED", 2)
    assert audit() == []


INVALID_RECEIPTS = {
    "wrong run": lambda results, run, current: (
        receipt_for(current),
        rewrite_metadata(results, run, run_id=str(uuid.uuid4())),
    ),
    "wrong tenant": lambda results, run, current: (
        receipt_for(current),
        rewrite_metadata(results, run, tenant_id=str(uuid.uuid4())),
    ),
    "wrong lease token": lambda results, run, current: receipt_for(
        current, lease_token=uuid.uuid4()
    ),
    "sha256 mismatch": lambda results, run, current: (
        receipt_for(current),
        corrupt_bytes(results, run),
    ),
    "charge above the reservation": lambda results, run, current: receipt_for(
        current, charge_micros=RESERVED + 1
    ),
    "charge not a number": lambda results, run, current: (
        receipt_for(current),
        rewrite_metadata(results, run, charge_usd_micros="lots"),
    ),
}


@pytest.mark.parametrize("plant", INVALID_RECEIPTS.values(), ids=INVALID_RECEIPTS.keys())
def test_invalid_receipt_flags_the_run_audit_required_and_leaves_the_reservation_alone(
    plant,
    make_run,
    funded_account: Account,
    local_results: Path,
    broker: Broker,
    json_logs: JsonLines,
    django_capture_on_commit_callbacks,
):
    run = make_run()
    current = lease(run)
    plant(local_results, run, current)

    with django_capture_on_commit_callbacks(execute=True):
        actions = tasks.expire_leases()

    run.refresh_from_db()
    assert actions == {"audit_required": 1}
    assert (run.status, run.money_state, run.error_reason_code) == (
        Run.Status.PROCESSING,
        Run.MoneyState.AUDIT_REQUIRED,
        lifecycle.RECEIPT_INVALID,
    )
    assert run.actual_cost_micros is None
    assert finalizations(run) == []
    assert money(funded_account) == (10 * USD, 0, RESERVED)
    assert broker.drain() == []
    (line,) = json_logs.critical()
    assert line["reconcile_type"] == "no_receipt_audit"
    assert (line["run_id"], line["tenant_id"]) == (str(run.id), str(run.tenant_id))
    # The reasons go to the log and the run's history; the tenant reads a generic detail.
    assert line["detail"] == run.events.get(kind="AUDIT_FLAGGED").detail != ""
    assert run.error_detail == lifecycle.RECEIPT_INVALID_DETAIL
    assert history(run) == [("CLAIMED", 1), ("AUDIT_FLAGGED", 1)]
    # Flagged is known: the ledger is consistent and the next scans leave the run alone.
    assert audit() == []
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_leases() == {}
    assert len(json_logs.critical()) == 1


def test_late_receipt_of_a_lease_the_reaper_requeued_counts_as_no_receipt(
    make_run,
    funded_account: Account,
    broker: Broker,
    json_logs: JsonLines,
    settings,
    django_capture_on_commit_callbacks,
):
    # A worker froze between renewing its lease and writing its receipt; the reaper gave
    # the run to a second attempt, which died too; then the first worker's receipt landed.
    settings.DPP_MAX_ATTEMPTS = 3
    run = make_run()
    first = lease(run)
    tasks.expire_leases()
    second = lease(run)
    receipt_for(first, charge_micros=9_000)
    broker.drain()

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_leases() == {"requeued": 1}

    run.refresh_from_db()
    assert (run.status, run.money_state, run.attempts) == ("QUEUED", "RESERVED", 2)
    assert broker.drain() == [str(run.id)]
    assert json_logs.critical() == []
    (ignored,) = [line for line in json_logs.read() if "requeued ignored" in line["message"]]
    assert (ignored["run_id"], ignored["lease_token"]) == (str(run.id), str(first.token))
    assert second.token != first.token
    assert money(funded_account) == (10 * USD, 0, RESERVED)
    assert audit() == []


def test_late_receipt_of_a_requeued_lease_on_the_last_attempt_fails_worker_timeout(
    make_run, funded_account: Account, broker: Broker, json_logs: JsonLines
):
    run = make_run()
    first = lease(run)
    tasks.expire_leases()
    lease(run)
    receipt_for(first, charge_micros=9_000)

    assert tasks.expire_leases() == {"failed": 1}

    run.refresh_from_db()
    assert (run.status, run.error_reason_code) == ("FAILED", services.WORKER_TIMEOUT)
    assert finalizations(run) == [("SETTLE", 5_000)]
    assert json_logs.critical() == []
    assert audit() == []


def test_late_receipt_of_a_requeued_lease_that_is_also_corrupt_is_flagged(
    make_run,
    local_results: Path,
    broker: Broker,
    json_logs: JsonLines,
    django_capture_on_commit_callbacks,
):
    run = make_run()
    first = lease(run)
    tasks.expire_leases()
    lease(run)
    receipt_for(first)
    corrupt_bytes(local_results, run)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_leases() == {"audit_required": 1}

    run.refresh_from_db()
    assert run.money_state == Run.MoneyState.AUDIT_REQUIRED
    assert len(json_logs.critical()) == 1


def test_lease_renewed_while_the_reaper_looks_for_a_receipt_wins_over_worker_timeout(
    make_run, funded_account: Account, broker: Broker, monkeypatch, settings
):
    run = make_run()
    current = exhaust_attempts(run, tasks.expire_leases)
    broker.drain()
    read_receipt = services.read_receipt

    def heartbeat_lands_meanwhile(seen: Run):
        settings.DPP_LEASE_TTL_SEC = 120
        assert lifecycle.extend_lease(run_id=seen.id, lease_token=current.token) == "held"
        return read_receipt(seen)

    monkeypatch.setattr(services, "read_receipt", heartbeat_lands_meanwhile)

    actions = tasks.expire_leases()

    run.refresh_from_db()
    assert actions == {"lost_race": 1}
    assert (run.status, run.money_state, run.lease_token) == (
        Run.Status.PROCESSING,
        Run.MoneyState.RESERVED,
        current.token,
    )
    assert finalizations(run) == []
    # The worker still owns its run and finalizes it.
    assert lifecycle.finalize(
        run_id=run.id, lease_token=current.token, outcome=lifecycle.Failed("PACK_ERROR", "boom")
    )
    assert finalizations(run) == [("SETTLE", 5_000)]
    assert money(funded_account) == (10 * USD, 5_000, 0)
    assert audit() == []


def test_lease_renewed_while_the_reaper_looks_keeps_the_run_from_being_requeued(
    make_run, broker: Broker, monkeypatch, settings
):
    run = make_run()
    current = lease(run)
    read_receipt = services.read_receipt

    def heartbeat_lands_meanwhile(seen: Run):
        settings.DPP_LEASE_TTL_SEC = 120
        lifecycle.extend_lease(run_id=seen.id, lease_token=current.token)
        return read_receipt(seen)

    monkeypatch.setattr(services, "read_receipt", heartbeat_lands_meanwhile)

    assert tasks.expire_leases() == {"lost_race": 1}
    run.refresh_from_db()
    assert (run.status, run.lease_token) == (Run.Status.PROCESSING, current.token)
    assert broker.drain() == []


def test_unexpired_leases_and_finished_runs_are_left_alone(make_run, broker: Broker, settings):
    settings.DPP_LEASE_TTL_SEC = 120
    alive = make_run()
    lease(alive)
    finished = make_run()
    execution.execute_run(run_id=finished.id)
    queued = make_run()

    assert tasks.expire_leases() == {}

    for run, status in ((alive, "PROCESSING"), (finished, "COMPLETED"), (queued, "QUEUED")):
        run.refresh_from_db()
        assert run.status == status
    assert broker.drain() == []


def test_a_receipt_that_cannot_be_read_skips_only_that_run(make_run, broker: Broker, monkeypatch):
    unreadable, fine = make_run(), make_run()
    lease(unreadable)
    lease(fine)
    read_receipt = services.read_receipt

    def storage_fails_for_one(seen: Run):
        if seen.id == unreadable.id:
            raise ConnectionError("object storage did not answer")
        return read_receipt(seen)

    monkeypatch.setattr(services, "read_receipt", storage_fails_for_one)

    actions = tasks.expire_leases()

    assert actions == {"error": 1, "requeued": 1}
    unreadable.refresh_from_db()
    fine.refresh_from_db()
    # Never "no receipt" from an error: the run waits, still leased, for the next scan.
    assert (unreadable.status, unreadable.money_state) == ("PROCESSING", "RESERVED")
    assert fine.status == "QUEUED"
    assert broker.drain() == [str(fine.id)]


def test_each_scan_handles_at_most_the_batch_size(make_run, broker: Broker, settings):
    settings.DPP_REAPER_BATCH_SIZE = 2
    batch = [make_run() for _ in range(5)]
    for run in batch:
        lease(run)

    scans = [tasks.expire_leases() for _ in range(4)]

    assert scans == [{"requeued": 2}, {"requeued": 2}, {"requeued": 1}, {}]
    assert sorted(broker.drain()) == sorted(str(run.id) for run in batch)
    # Oldest expiry first.
    assert Run.objects.filter(status="QUEUED").count() == 5


def test_a_flagged_runs_public_error_never_carries_the_receipts_content(
    make_run,
    funded_account: Account,
    local_results: Path,
    api_client,
    json_logs: JsonLines,
    django_capture_on_commit_callbacks,
):
    """A damaged receipt may name another tenant: the tenant's API says only that the
    result could not be verified; the reasons stay in the admin and the logs."""
    other_tenant = str(uuid.uuid4())
    run = make_run()
    current = lease(run)
    receipt = receipt_for(current)
    rewrite_metadata(local_results, run, tenant_id=other_tenant, lease_token="lease-of-someone")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_leases() == {"audit_required": 1}

    client = api_client
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(funded_account.tenant)}")
    one = client.get(f"/v1/runs/{run.id}")
    listing = client.get("/v1/runs")

    assert one.status_code == listing.status_code == 200
    assert one.json()["error"] == {
        "reason_code": "RECEIPT_INVALID",
        "detail": lifecycle.RECEIPT_INVALID_DETAIL,
    }
    for public in (one.content.decode(), listing.content.decode()):
        for secret in (other_tenant, "lease-of-someone", receipt.key, receipt.body_sha256):
            assert secret not in public
    flagged = run.events.get(kind="AUDIT_FLAGGED").detail
    assert f"tenant-id '{other_tenant}' is not the run's tenant" in flagged
    assert "lease-of-someone" in flagged
    (alert,) = json_logs.critical()
    assert other_tenant in alert["detail"]
