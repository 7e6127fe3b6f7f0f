"""A worker dies (kill -9) or loses its database connection at each step of a run; the
reaper repairs every run and no micro-dollar is lost or charged twice."""

import time
from collections import Counter

import pytest

from reaper.audit import audit
from reaper.services import resolve_audit
from runs.models import Run
from tests.chaos.harness import LEASE_TTL_SEC, Scenario, json_lines, pg_terminate

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_kill_9_while_the_pack_executes(scenario: Scenario):
    api = scenario.tenant()
    scenario.submit(api, 12)
    doomed = scenario.worker("doomed", fault="stall_in_pack", concurrency=3)
    stalled = scenario.wait_for_markers("in_pack", 3)

    doomed.kill9()
    scenario.worker("healthy", concurrency=2)
    runs = scenario.wait_settled()

    books = scenario.books()
    assert books.completed == 12
    executions = scenario.executions()
    for run in runs:
        if str(run.id) in stalled:
            # Retried by the reaper (no receipt, attempts left), executed again.
            assert run.attempts == 2
            assert scenario.events(run.id) == [
                ("CLAIMED", 1),
                ("REQUEUED", 1),
                ("CLAIMED", 2),
                ("FINALIZED", 2),
            ]
            assert executions[str(run.id)] == 2
        else:
            assert (run.attempts, executions[str(run.id)]) == (1, 1)
    scenario.report(books, killed_in_pack=len(stalled))


def test_kill_9_twice_exhausts_the_attempts_and_fails_with_the_minimum_fee(scenario: Scenario):
    api = scenario.tenant()
    scenario.submit(api, 3)
    first = scenario.worker("doomed-1", fault="stall_in_pack", concurrency=3)
    scenario.wait_for_markers("in_pack", 3)
    first.kill9()
    scenario.wait_until(
        lambda: all(r.status == "QUEUED" and r.attempts == 1 for r in scenario.runs()),
        timeout=30,
        what="all runs requeued",
    )
    scenario.clear_markers("in_pack")
    second = scenario.worker("doomed-2", fault="stall_in_pack", concurrency=3)
    scenario.wait_for_markers("in_pack", 3)

    second.kill9()
    runs = scenario.wait_settled()

    books = scenario.books()
    assert books.failed == 3
    for run in runs:
        assert (run.status, run.error_reason_code, run.attempts) == (
            "FAILED",
            "WORKER_TIMEOUT",
            2,
        )
        assert scenario.events(run.id)[-1] == ("FINALIZED", 2)
    assert books.charges == 3 * 5_000
    scenario.report(books)


def test_kill_9_after_the_receipt_before_finalize(scenario: Scenario):
    api = scenario.tenant()
    scenario.submit(api, 12)
    doomed = scenario.worker("doomed", fault="after_receipt", concurrency=3)
    paused = scenario.wait_for_markers("after_receipt", 3)

    doomed.kill9()
    scenario.worker("healthy", concurrency=2)
    runs = scenario.wait_settled()

    books = scenario.books()
    assert books.completed == 12
    executions = scenario.executions()
    for run in runs:
        # Rolled forward from the receipt: never executed twice, charged what it states.
        assert (run.attempts, executions[str(run.id)]) == (1, 1)
        assert scenario.events(run.id) == [("CLAIMED", 1), ("FINALIZED", 1)]
    assert {str(run.id) for run in runs} >= set(paused)
    scenario.report(books, killed_after_receipt=len(paused))


def test_kill_9_inside_the_finalize_transaction(scenario: Scenario):
    apis = [scenario.tenant() for _ in range(3)]
    for _ in range(4):
        for api in apis:  # interleaved, so the first runs belong to different tenants
            scenario.submit(api, 1)
    doomed = scenario.worker("doomed", fault="in_finalize", concurrency=3)
    scenario.wait_for_markers("in_finalize", 1)
    time.sleep(1)  # the others get there too, unless they wait for the same account row

    doomed.kill9()
    inside = scenario.markers("in_finalize")
    scenario.worker("healthy", concurrency=2)
    runs = scenario.wait_settled()

    books = scenario.books()  # one SETTLE each: the killed transactions left nothing
    assert books.completed == 12
    executions = scenario.executions()
    for run in runs:
        assert (run.attempts, executions[str(run.id)]) == (1, 1)
        assert scenario.events(run.id) == [("CLAIMED", 1), ("FINALIZED", 1)]
    scenario.report(books, killed_in_finalize=len(inside))


def test_postgres_connection_dropped_mid_finalize(scenario: Scenario):
    apis = [scenario.tenant() for _ in range(2)]
    for _ in range(5):
        for api in apis:
            scenario.submit(api, 1)
    worker = scenario.worker("cut-off", fault="in_finalize", concurrency=2)
    scenario.wait_for_markers("in_finalize", 1)
    time.sleep(1)  # the other process gets there too, unless it waits for the account row
    inside = scenario.markers("in_finalize")

    for marker in inside.values():
        assert pg_terminate(marker["backend_pid"])
    scenario.release()
    runs = scenario.wait_settled()

    books = scenario.books()
    assert books.completed == 10
    # The same worker survived its dropped connections and ran the rest of the batch.
    assert worker.running
    executions = scenario.executions()
    for run in runs:
        assert (run.attempts, executions[str(run.id)]) == (1, 1)
        assert scenario.events(run.id) == [("CLAIMED", 1), ("FINALIZED", 1)]
    cut = [run for run in runs if str(run.id) in inside]
    assert len(cut) == len(inside) >= 1
    assert all(run.status == Run.Status.COMPLETED for run in cut)
    scenario.report(books, connections_terminated=len(inside))


def test_damaged_receipt_is_flagged_never_settled_and_resolved_by_an_operator(
    scenario: Scenario,
):
    """The worker dies after its receipt, and the stored bytes no longer match the
    receipt's sha256: nobody can know what the run produced. The reaper flags the runs
    AUDIT_REQUIRED (their reservations stay pending, one alert each) and an operator's
    refund closes them."""
    api = scenario.tenant()
    scenario.submit(api, 8)
    doomed = scenario.worker("doomed", fault="bit_rot", concurrency=2)
    damaged = scenario.wait_for_markers("after_receipt", 2)

    doomed.kill9()
    scenario.worker("healthy", concurrency=2)
    runs = scenario.wait_settled()

    books = scenario.books()
    assert (books.completed, books.audit_required) == (6, 2)
    assert books.pending == 2 * 50_000
    flagged = [run for run in runs if run.money_state == Run.MoneyState.AUDIT_REQUIRED]
    assert {str(run.id) for run in flagged} == set(damaged)
    assert all(run.error_reason_code == "RECEIPT_INVALID" for run in flagged)
    # One alert per run, though every reaper scan and audit since has seen it.
    time.sleep(3)
    alerts = Counter(
        line["run_id"]
        for line in scenario.reaper_lines()
        if line.get("reconcile_type") == "no_receipt_audit" and line["run_id"] in damaged
    )
    assert alerts == Counter(dict.fromkeys(damaged, 1))
    scenario.report(books, damaged_receipts=len(damaged))

    for run in flagged:
        resolve_audit(
            run=run,
            actor="oncall",
            note="receipt bytes do not match their sha256; refunding",
            outcome="refund",
        )
    resolved = scenario.books()
    assert (resolved.refunded, resolved.audit_required, resolved.pending) == (2, 0, 0)
    assert audit() == []
    scenario.report(resolved, after="operator refund")


def test_postgres_connection_of_the_heartbeat_dropped_while_the_pack_runs(scenario: Scenario):
    """A database blip (failover, proxy restart) cuts the heartbeat thread's connection
    while a long pack runs. The heartbeat must reconnect and keep the lease: otherwise the
    reaper requeues a run that is still working, and a second blip fails it with the
    minimum fee: the tenant would pay for our outage."""
    api = scenario.tenant()
    scenario.submit(api, 3, sleep_sec=2 * LEASE_TTL_SEC)
    worker = scenario.worker("blip", fault="watch_heartbeat", concurrency=3)
    beating = scenario.wait_for_markers("heartbeat", 3)

    for marker in beating.values():
        assert pg_terminate(marker["backend_pid"])
    runs = scenario.wait_settled(timeout=90)

    books = scenario.books()
    assert books.completed == 3
    executions = scenario.executions()
    for run in runs:
        assert (run.attempts, executions[str(run.id)]) == (1, 1)
        assert scenario.events(run.id) == [("CLAIMED", 1), ("FINALIZED", 1)]
    failed_beats = sum(
        line.get("message", "").startswith("heartbeat failed") for line in json_lines(worker)
    )
    assert failed_beats >= 3
    scenario.report(books, heartbeat_connections_terminated=len(beating), failed_beats=failed_beats)
