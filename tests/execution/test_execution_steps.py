"""The execution steps of a worker, in-process: claim, lease, execute, finalize."""

import dataclasses
import hashlib
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from billing.models import Account, Transfer
from reaper.audit import audit
from runs import execution, lifecycle
from runs.execution import execute_run
from runs.lifecycle import Completed, Failed, Renewal, extend_lease
from runs.models import Run
from runs.packs.decision import price_micros
from runs.receipts import read_receipt, receipt_matches
from tests.execution.packs import CRASH_MESSAGE, SLEEPY_PRICE_MICROS, executions
from tests.payloads import decision_inputs

DECISION_PRICE = price_micros(n_options=4, n_criteria=3)


def settles(run: Run) -> list[int]:
    return list(
        Transfer.objects.filter(run=run, kind=Transfer.Kind.SETTLE).values_list(
            "amount_micros", flat=True
        )
    )


def test_claim_moves_a_queued_run_to_processing_under_a_new_lease(make_run):
    run = make_run()

    lease = lifecycle.claim(run_id=run.id)

    run.refresh_from_db()
    assert lease is not None
    assert (run.status, run.lease_token, run.attempts, run.version) == (
        Run.Status.PROCESSING,
        lease.token,
        1,
        2,
    )
    assert run.lease_expires_at == lease.expires_at
    assert run.started_at is not None


def test_a_second_claim_of_the_same_run_gets_nothing(make_run):
    run = make_run()
    lifecycle.claim(run_id=run.id)

    assert lifecycle.claim(run_id=run.id) is None
    run.refresh_from_db()
    assert run.attempts == 1


def test_extend_lease_needs_the_current_token(make_run):
    run = make_run()
    lease = lifecycle.claim(run_id=run.id)

    assert extend_lease(run_id=run.id, lease_token=uuid.uuid4()) == Renewal.LOST
    assert extend_lease(run_id=run.id, lease_token=lease.token) == Renewal.HELD
    run.refresh_from_db()
    assert run.lease_expires_at > lease.expires_at


def test_completed_run_is_charged_its_price_once_and_its_receipt_matches(
    make_run, funded_account: Account, local_results: Path
):
    run = make_run()

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.money_state) == (Run.Status.COMPLETED, Run.MoneyState.SETTLED)
    assert run.actual_cost_micros == DECISION_PRICE
    assert settles(run) == [DECISION_PRICE]
    stored = (local_results / run.result_key).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == run.result_sha256
    assert run.result_size == len(stored)
    assert run.result_key == f"results/{run.tenant_id}/{run.id}.json"
    receipt = read_receipt(run)
    assert receipt is not None
    assert receipt_matches(run, receipt) == []
    assert receipt.charge_micros == DECISION_PRICE
    funded_account.refresh_from_db()
    assert (funded_account.debits_posted, funded_account.debits_pending) == (DECISION_PRICE, 0)
    assert audit() == []


def test_a_duplicate_delivery_executes_the_pack_once(make_run, pack_log: Path):
    run = make_run(pack_type="counting-decision")

    execute_run(run_id=run.id)
    execute_run(run_id=run.id)

    assert executions(pack_log, run.id) == 1
    assert settles(run) == [DECISION_PRICE]


def test_domain_failure_keeps_its_reason_code_and_charges_the_minimum_fee(make_run):
    # Two options that trade places under small weight changes: reliability near 50%.
    inputs = {
        "question": "Coin toss?",
        "method": "weighted_sum",
        "criteria": [
            {"id": "a", "weight": 1, "direction": "max"},
            {"id": "b", "weight": 1, "direction": "max"},
        ],
        "options": [
            {"id": "x", "name": "X", "scores": {"a": 1, "b": 0}},
            {"id": "y", "name": "Y", "scores": {"a": 0, "b": 1}},
        ],
    }
    run = make_run(inputs=inputs, min_reliability_score=0.99)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.money_state) == (Run.Status.FAILED, Run.MoneyState.SETTLED)
    assert run.error_reason_code == "RELIABILITY_BELOW_MINIMUM"
    assert "weight perturbations" in run.error_detail
    assert run.actual_cost_micros == run.minimum_fee_micros == 5_000
    assert settles(run) == [5_000]
    assert read_receipt(run) is None
    assert audit() == []


def test_crashing_pack_fails_with_pack_error_and_no_internals_in_the_detail(make_run):
    run = make_run(pack_type="crashing")

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_reason_code == execution.PACK_ERROR
    assert "RuntimeError" in run.error_detail
    assert CRASH_MESSAGE not in run.error_detail
    assert "Traceback" not in run.error_detail
    assert settles(run) == [run.minimum_fee_micros]


def test_pack_overrunning_its_timebox_fails_with_timebox_exceeded_and_the_minimum_fee(make_run):
    run = make_run(pack_type="sleepy", inputs={"sleep_sec": 30}, timebox_sec=1)

    started = time.monotonic()
    execute_run(run_id=run.id)

    assert time.monotonic() - started < 5
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error_reason_code == execution.TIMEBOX_EXCEEDED
    assert settles(run) == [run.minimum_fee_micros]


def test_pack_finishing_inside_its_timebox_is_charged_normally(make_run):
    run = make_run(pack_type="sleepy", inputs={"sleep_sec": 0.2}, timebox_sec=2)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert settles(run) == [SLEEPY_PRICE_MICROS]


def test_metered_cost_is_capped_at_the_reservation(make_run):
    run = make_run(pack_type="overcharging", reserved_micros=30_000)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert settles(run) == [30_000]
    assert read_receipt(run).charge_micros == 30_000


def test_finalize_after_the_lease_was_taken_writes_nothing(make_run):
    run = make_run()
    lease = lifecycle.claim(run_id=run.id)
    Run.objects.filter(id=run.id).update(lease_token=uuid.uuid4())  # the reaper re-leased it

    won = lifecycle.finalize(
        run_id=run.id, lease_token=lease.token, outcome=Failed("WORKER_TIMEOUT", "late")
    )

    assert won is False
    run.refresh_from_db()
    assert (run.status, run.money_state) == (Run.Status.PROCESSING, Run.MoneyState.RESERVED)
    assert settles(run) == []


def test_reaper_finalize_spares_a_lease_the_worker_renewed(make_run):
    run = make_run()
    lease = lifecycle.claim(run_id=run.id)
    timeout = Failed("WORKER_TIMEOUT", "The worker stopped renewing its lease.")
    seen_expired_at = lease.expires_at - timedelta(seconds=1)  # before the renewal

    spared = lifecycle.finalize(
        run_id=run.id, lease_token=lease.token, outcome=timeout, expired_before=seen_expired_at
    )
    failed = lifecycle.finalize(
        run_id=run.id,
        lease_token=lease.token,
        outcome=timeout,
        expired_before=lease.expires_at + timedelta(seconds=1),
    )

    assert (spared, failed) == (False, True)
    run.refresh_from_db()
    assert (run.status, run.error_reason_code) == (Run.Status.FAILED, "WORKER_TIMEOUT")
    assert settles(run) == [run.minimum_fee_micros]


def test_a_second_finalize_of_the_same_lease_moves_no_money(make_run):
    run = make_run()
    lease = lifecycle.claim(run_id=run.id)
    outcome = Completed(charge_micros=1_234, result_key="k", result_sha256="0" * 64, result_size=1)

    first = lifecycle.finalize(run_id=run.id, lease_token=lease.token, outcome=outcome)
    second = lifecycle.finalize(
        run_id=run.id, lease_token=lease.token, outcome=Failed("PACK_ERROR", "again")
    )

    assert (first, second) == (True, False)
    run.refresh_from_db()
    assert (run.status, run.actual_cost_micros) == (Run.Status.COMPLETED, 1_234)
    assert settles(run) == [1_234]


def test_finalize_leaves_a_run_flagged_for_audit_alone(make_run):
    run = make_run()
    lease = lifecycle.claim(run_id=run.id)
    Run.objects.filter(id=run.id).update(money_state=Run.MoneyState.AUDIT_REQUIRED)

    won = lifecycle.finalize(run_id=run.id, lease_token=lease.token, outcome=Failed("X", "y"))

    assert won is False
    assert settles(run) == []


def test_a_worker_that_lost_its_lease_writes_no_receipt_and_does_not_finalize(
    make_run, monkeypatch: pytest.MonkeyPatch
):
    run = make_run()
    monkeypatch.setattr(lifecycle, "extend_lease", lambda **kwargs: Renewal.LOST)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.money_state) == (Run.Status.PROCESSING, Run.MoneyState.RESERVED)
    assert read_receipt(run) is None
    assert settles(run) == []


@pytest.mark.django_db(transaction=True)
def test_heartbeat_extends_the_lease_while_the_pack_runs(make_run, settings):
    settings.DPP_LEASE_TTL_SEC = 3  # a beat every second
    run = make_run(pack_type="sleepy", inputs={"sleep_sec": 2.5}, timebox_sec=10)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    # claim + at least two beats + the renewal before the receipt + finalize
    assert run.version >= 1 + 1 + 2 + 1 + 1


def test_completed_outcome_from_a_receipt_without_a_charge_is_refused(make_run):
    run = make_run()
    execute_run(run_id=run.id)
    receipt = read_receipt(Run.objects.get(id=run.id))

    with pytest.raises(ValueError, match="states no charge"):
        Completed.from_receipt(dataclasses.replace(receipt, charge_micros=None))


def test_decision_inputs_of_every_size_settle_at_the_published_price(make_run):
    run = make_run(inputs=decision_inputs(n_options=50, n_criteria=10), reserved_micros=200_000)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert settles(run) == [price_micros(n_options=50, n_criteria=10)]


def test_execution_records_the_heartbeat_the_terminal_state_and_the_duration(
    make_run, django_capture_on_commit_callbacks
):
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    labels = {"pack_type": "decision", "status": "COMPLETED"}
    completed_before = sample("dpp_runs_total", **labels)
    durations_before = sample("dpp_run_duration_seconds_count", **labels)
    started = time.time()
    run = make_run()

    with django_capture_on_commit_callbacks(execute=True):
        execute_run(run_id=run.id)

    assert sample("dpp_worker_last_heartbeat_timestamp") >= int(started)
    assert sample("dpp_runs_total", **labels) == completed_before + 1
    assert sample("dpp_run_duration_seconds_count", **labels) == durations_before + 1
