"""Every reaper step is a compare-and-set: two reapers, or a reaper and a worker, racing on
the same runs never both act. Each racer is a thread with its own database connection."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Account, Transfer
from reaper import services, tasks
from reaper.audit import audit
from runs import execution, lifecycle
from runs.models import Run, RunEvent
from tests.billing.helpers import run_concurrently
from tests.reaper.helpers import Broker, JsonLines, lease, money, receipt_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("instant_leases")]

ROUNDS = 3
RESERVED = 50_000


def combined(outcomes) -> Counter:
    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    total: Counter = Counter()
    for outcome in outcomes:
        total.update(outcome.value)
    return total


def one_finalization_each(run_ids) -> None:
    for run_id in run_ids:
        assert Transfer.objects.filter(run_id=run_id, kind__in=("SETTLE", "VOID")).count() == 1
        assert RunEvent.objects.filter(run_id=run_id, kind="FINALIZED").count() <= 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_lease_scans_racing_act_once_on_each_run(
    round_, make_run, funded_account: Account, broker: Broker
):
    exhausted = [make_run() for _ in range(3)]
    for run in exhausted:
        lease(run)
    tasks.expire_leases()
    for run in exhausted:
        lease(run)
    with_receipt = [make_run() for _ in range(3)]
    for run in with_receipt:
        receipt_for(lease(run), charge_micros=8_000)
    without_receipt = [make_run() for _ in range(3)]
    for run in without_receipt:
        lease(run)
    broker.drain()

    actions = combined(run_concurrently([tasks.expire_leases, tasks.expire_leases]))

    assert (actions["rolled_forward"], actions["requeued"], actions["failed"]) == (3, 3, 3)
    assert set(actions) <= {"rolled_forward", "requeued", "failed", "lost_race", "skipped"}
    assert sorted(broker.drain()) == sorted(str(run.id) for run in without_receipt)
    one_finalization_each(run.id for run in exhausted + with_receipt)
    for run in without_receipt:
        assert RunEvent.objects.filter(run=run, kind="REQUEUED").count() == 1
    assert money(funded_account)[1:] == (3 * 8_000 + 3 * 5_000, 3 * RESERVED)
    assert audit() == []


def test_two_requeue_scans_racing_publish_each_stale_run_once_and_refund_once(
    make_run, funded_account: Account, broker: Broker, settings
):
    settings.DPP_REQUEUE_AFTER_SEC, settings.DPP_MAX_QUEUE_AGE_SEC = 120, 900
    stale, too_old = [make_run() for _ in range(6)], [make_run() for _ in range(3)]
    now = timezone.now()
    five_minutes_ago, an_hour_ago = now - timedelta(minutes=5), now - timedelta(hours=1)
    Run.objects.filter(id__in=[r.id for r in stale]).update(
        created_at=five_minutes_ago, published_at=five_minutes_ago
    )
    Run.objects.filter(id__in=[r.id for r in too_old]).update(
        created_at=an_hour_ago, published_at=an_hour_ago
    )

    actions = combined(run_concurrently([tasks.requeue_stale, tasks.requeue_stale]))

    assert (actions["republished"], actions["refunded"]) == (6, 3)
    assert sorted(broker.drain()) == sorted(str(run.id) for run in stale)
    one_finalization_each(run.id for run in too_old)
    assert money(funded_account)[1:] == (0, 6 * RESERVED)
    assert audit() == []


def test_two_audits_racing_flag_and_alert_once_per_run(make_run, json_logs: JsonLines):
    corrupted = [make_run() for _ in range(4)]
    for run in corrupted:
        execution.execute_run(run_id=run.id)
    Run.objects.filter(id__in=[r.id for r in corrupted]).update(actual_cost_micros=1)

    actions = combined(run_concurrently([tasks.audit_ledger, tasks.audit_ledger]))

    assert actions["flagged"] == 4
    alerts = Counter(line["run_id"] for line in json_logs.critical())
    assert alerts == Counter({str(run.id): 1 for run in corrupted})
    for run in corrupted:
        assert RunEvent.objects.filter(run=run, kind="AUDIT_FLAGGED").count() == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_worker_finalizing_and_reaper_rolling_forward_settle_each_run_once(
    round_, make_run, funded_account: Account, broker: Broker
):
    leases = []
    for _ in range(6):
        current = lease(make_run())
        leases.append((current, receipt_for(current, charge_micros=8_000)))

    def worker() -> Counter:
        won = Counter()
        for current, receipt in leases:
            outcome = lifecycle.Completed.from_receipt(receipt)
            finalized = lifecycle.finalize(
                run_id=current.run.id, lease_token=current.token, outcome=outcome
            )
            won["worker" if finalized else "worker_lost"] += 1
        return won

    actions = combined(run_concurrently([worker, tasks.expire_leases]))

    assert actions["worker"] + actions["rolled_forward"] == 6
    assert actions["worker_lost"] == actions["rolled_forward"]
    one_finalization_each(current.run.id for current, _ in leases)
    assert money(funded_account)[1:] == (6 * 8_000, 0)
    assert audit() == []


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_worker_renewing_its_lease_and_reaper_failing_it_never_both_win(
    round_, make_run, funded_account: Account, broker: Broker
):
    batch = [make_run() for _ in range(6)]
    for run in batch:
        lease(run)
    tasks.expire_leases()  # all requeued: the next claim is the last attempt
    leases = [lease(run) for run in batch]
    broker.drain()

    def worker() -> Counter:
        won = Counter()
        for current in leases:
            # The heartbeat then finalize of a worker that was only slow, not dead.
            renewed = lifecycle.extend_lease(run_id=current.run.id, lease_token=current.token)
            finalized = renewed == lifecycle.Renewal.HELD and lifecycle.finalize(
                run_id=current.run.id,
                lease_token=current.token,
                outcome=lifecycle.Failed(execution.PACK_ERROR, "the pack failed"),
            )
            won["worker" if finalized else "worker_lost"] += 1
        return won

    actions = combined(run_concurrently([worker, tasks.expire_leases]))

    reasons = Counter(
        Run.objects.filter(id__in=[c.run.id for c in leases]).values_list(
            "error_reason_code", flat=True
        )
    )
    assert reasons[execution.PACK_ERROR] == actions["worker"]
    assert reasons[services.WORKER_TIMEOUT] == actions["failed"]
    assert actions["worker"] + actions["failed"] == 6
    one_finalization_each(current.run.id for current in leases)
    assert money(funded_account)[1:] == (6 * 5_000, 0)
    assert audit() == []
