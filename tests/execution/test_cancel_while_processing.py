"""A run canceled while its pack runs: the worker finds the request at its next
heartbeat, stops the pack through its timebox, and finalizes CANCELED with the minimum fee.
A cancel that reaches the worker after the pack, or races its finalize, ends the same."""

import threading
from pathlib import Path

import pytest

from billing.models import Transfer
from reaper.audit import audit
from runs import execution, lifecycle
from runs.cancellation import cancel_run
from runs.execution import execute_run
from runs.models import Run
from runs.receipts import read_receipt
from tests.execution.packs import executions

pytestmark = pytest.mark.django_db(transaction=True)


def finalizations(run: Run) -> list[tuple[str, int, str]]:
    return list(
        Transfer.objects.filter(run=run, kind__in=["SETTLE", "VOID"]).values_list(
            "kind", "amount_micros", "outcome"
        )
    )


def cancel_once_processing(run: Run, stop: threading.Event) -> threading.Thread:
    """Cancel ``run`` through the service as soon as a worker has claimed it."""

    def cancel() -> None:
        from django.db import connection

        try:
            while not stop.wait(0.05):
                if Run.objects.filter(id=run.id, status=Run.Status.PROCESSING).exists():
                    cancel_run(run=run, actor="test")
                    return
        finally:
            connection.close()

    thread = threading.Thread(target=cancel)
    thread.start()
    return thread


def test_the_heartbeat_stops_the_pack_and_the_run_ends_canceled(make_run, settings):
    settings.DPP_LEASE_TTL_SEC = 0.6  # a beat every 0.2 s
    # The sleepy pack swallows every Exception: only the timebox's alarm can stop it.
    run = make_run(pack_type="sleepy", inputs={"sleep_sec": 60}, timebox_sec=90)
    stop = threading.Event()
    canceler = cancel_once_processing(run, stop)

    try:
        execute_run(run_id=run.id)
    finally:
        stop.set()
        canceler.join()

    run.refresh_from_db()
    assert (run.status, run.money_state) == (Run.Status.CANCELED, Run.MoneyState.SETTLED)
    assert run.error_detail == "The pack was stopped: the run was canceled."
    assert run.actual_cost_micros == run.minimum_fee_micros
    assert finalizations(run) == [("SETTLE", run.minimum_fee_micros, "CANCELED")]
    kinds = list(run.events.values_list("kind", flat=True))
    assert kinds[-2:] == ["CANCEL_REQUESTED", "FINALIZED"]
    assert read_receipt(run) is None
    assert audit() == []


def test_a_cancel_found_after_the_pack_ends_the_run_canceled_without_a_result(
    make_run, monkeypatch: pytest.MonkeyPatch, pack_log: Path
):
    run = make_run(pack_type="counting-decision")
    execute = execution.get_pack(run.pack_type).execute

    def cancel_meanwhile(inputs, ctx):
        # The request lands while the pack runs, between two heartbeats.
        cancel_run(run=Run.objects.get(id=ctx.run_id), actor="test")
        return execute(inputs, ctx)

    monkeypatch.setattr(execution.get_pack(run.pack_type), "execute", cancel_meanwhile)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert executions(pack_log, run.id) == 1
    assert (run.status, run.actual_cost_micros) == (Run.Status.CANCELED, run.minimum_fee_micros)
    assert run.error_detail == "Canceled while it was processing."
    assert read_receipt(run) is None
    assert audit() == []


def test_a_cancel_between_the_receipt_and_finalize_wins_and_the_receipt_is_removed(
    make_run, monkeypatch: pytest.MonkeyPatch
):
    run = make_run()
    write_receipt = execution.write_receipt

    def cancel_after_writing(**kwargs):
        receipt = write_receipt(**kwargs)
        cancel_run(run=kwargs["run"], actor="test")
        return receipt

    monkeypatch.setattr(execution, "write_receipt", cancel_after_writing)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.actual_cost_micros) == (Run.Status.CANCELED, run.minimum_fee_micros)
    assert finalizations(run) == [("SETTLE", run.minimum_fee_micros, "CANCELED")]
    assert read_receipt(run) is None
    assert audit() == []


def test_a_run_that_finished_first_stays_completed(make_run):
    run = make_run()
    execute_run(run_id=run.id)

    with pytest.raises(Exception, match="cannot be canceled"):
        cancel_run(run=run, actor="test")

    run.refresh_from_db()
    assert (run.status, run.cancel_requested_at) == (Run.Status.COMPLETED, None)
    assert [kind for kind, *_ in finalizations(run)] == ["SETTLE"]


def test_the_timebox_still_applies_to_a_pack_nobody_cancels(make_run, settings):
    settings.DPP_LEASE_TTL_SEC = 0.6
    run = make_run(pack_type="sleepy", inputs={"sleep_sec": 60}, timebox_sec=1)

    execute_run(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.error_reason_code) == (Run.Status.FAILED, execution.TIMEBOX_EXCEEDED)
    assert lifecycle.extend_lease(run_id=run.id, lease_token=run.lease_token) == "lost"
