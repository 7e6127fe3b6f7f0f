"""Races: duplicates of the same message, two workers racing for one run, workers racing
the reaper on leases that lapsed while they were still working, two reapers (beat and
worker each) running every scan at once, and tenants' cancels racing all of them. Each
run executes at most as often as it is claimed, is repaired once, and settles once."""

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from runs.models import RunEvent
from tests.chaos.harness import LEASE_TTL_SEC, Scenario, json_lines

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def duplicate_every_message(scenario: Scenario, count: int, timeout: float = 30) -> int:
    """Send each waiting message on the runs queue once more, byte for byte (same task
    id): SQS's at-least-once delivery, made certain."""
    client = scenario.cluster.sqs.client()
    url = scenario.cluster.queue_urls["runs"]
    held: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(held) < count:
        assert time.monotonic() < deadline, f"only {len(held)} of {count} messages on the queue"
        held += client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    for message in held:
        copy = {"QueueUrl": url, "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            copy["MessageAttributes"] = message["MessageAttributes"]
        client.send_message(**copy)
        client.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return len(held)


def finalized_by(lines: list[dict], run_ids: set[str]) -> Counter:
    return Counter(
        line["run_id"]
        for line in lines
        if line.get("message") == "run finalized" and line.get("run_id") in run_ids
    )


def test_same_message_delivered_twice_to_two_racing_workers(scenario: Scenario):
    api = scenario.tenant()
    ids = scenario.submit(api, 12)
    copies = duplicate_every_message(scenario, len(ids))

    first = scenario.worker("racer-1", concurrency=2, wait=False)
    second = scenario.worker("racer-2", concurrency=2, wait=False)
    scenario.wait_consuming(first, second)
    runs = scenario.wait_settled()

    books = scenario.books()
    assert books.completed == 12
    executions = scenario.executions()
    for run in runs:
        assert (run.attempts, executions[str(run.id)]) == (1, 1)
        assert scenario.events(run.id) == [("CLAIMED", 1), ("FINALIZED", 1)]
    # Every duplicate was received by one of the workers, found the run taken, and acked.
    scenario.wait_until(
        lambda: (
            sum(
                line.get("message", "").startswith("run not claimable")
                for line in json_lines(first, second)
            )
            >= copies
        ),
        timeout=30,
        what="every duplicate acknowledged",
    )
    lines = json_lines(first, second)
    per_worker = [
        sum(line.get("message") == "run finalized" for line in json_lines(worker))
        for worker in (first, second)
    ]
    assert sum(per_worker) == 12
    assert set(finalized_by(lines, set(ids)).values()) == {1}
    scenario.report(books, duplicates=copies, finalized_per_worker=per_worker)


def test_workers_race_the_reaper_on_leases_that_lapsed_while_they_worked(scenario: Scenario):
    """A worker without a heartbeat, pausing on each run's first attempt:

    - after its receipt, longer than the lease: the reaper rolls the run forward from the
      receipt while the worker sleeps, and the worker's own finalize then loses;
    - inside the pack, longer than the lease: the reaper requeues the run, the worker's
      renewal after the pack loses, and the second attempt completes it;
    - inside the pack, just past the lease: either may win, never both.
    """
    slow = 2 * LEASE_TTL_SEC
    api = scenario.tenant()
    receipt_raced = scenario.submit(api, 3, pause_after_receipt_sec=slow)
    pack_raced = scenario.submit(api, 3, pause_pack_sec=slow)
    edge = scenario.submit(api, 2, pause_pack_sec=LEASE_TTL_SEC + 0.3)
    plain = scenario.submit(api, 2)
    worker = scenario.worker("no-heartbeat", fault="race", concurrency=8)
    runs = {str(run.id): run for run in scenario.wait_settled(timeout=120)}

    def lost(message: str) -> set[str]:
        return {
            line["run_id"]
            for line in json_lines(worker)
            if line.get("message", "").startswith(message)
        }

    # The reaper settled these while the worker slept; the worker wakes up and loses.
    scenario.wait_until(
        lambda: (
            lost("finalize lost the compare-and-set") >= set(receipt_raced)
            and lost("lease lost while the pack ran") >= set(pack_raced)
        ),
        timeout=3 * slow,
        what="the sleeping worker losing its races",
    )
    lost_finalize = lost("finalize lost the compare-and-set")
    lost_lease = lost("lease lost while the pack ran")
    books = scenario.books()
    assert books.completed == 10
    executions = scenario.executions()
    for run_id in receipt_raced:
        assert (runs[run_id].attempts, executions[run_id]) == (1, 1)
        assert scenario.events(run_id) == [("CLAIMED", 1), ("FINALIZED", 1)]
    for run_id in pack_raced:
        assert run_id in lost_lease
        assert (runs[run_id].attempts, executions[run_id]) == (2, 2)
        assert scenario.events(run_id) == [
            ("CLAIMED", 1),
            ("REQUEUED", 1),
            ("CLAIMED", 2),
            ("FINALIZED", 2),
        ]
    for run_id in plain:
        assert (runs[run_id].attempts, executions[run_id]) == (1, 1)
    for run_id in edge:
        assert executions[run_id] == runs[run_id].attempts
    # The reaper never finalized a run the worker finalized, nor the other way round.
    everyone = json_lines(worker) + scenario.reaper_lines()
    assert set(finalized_by(everyone, set(runs)).values()) == {1}
    assert all(
        scenario.events(run_id).count(("FINALIZED", runs[run_id].attempts)) == 1 for run_id in runs
    )
    scenario.report(
        books,
        reaper_won_finalize=len(lost_finalize),
        reaper_won_lease=len(lost_lease),
        edge_outcomes=sorted(runs[run_id].attempts for run_id in edge),
    )


def test_receipt_landing_after_its_lease_was_requeued(scenario: Scenario):
    """A worker freezes between renewing its lease and writing its receipt (a GC pause, a
    suspended VM) for longer than the lease. The reaper requeues the run, a second worker
    claims it and dies in the pack; then the first worker's receipt lands, under the
    lease the reaper took away. That receipt is the superseded lease's: it proves nothing
    about the current one, so the run is judged as having no receipt."""
    api = scenario.tenant()
    frozen = scenario.submit(api, 2, pause_before_receipt_sec=3 * LEASE_TTL_SEC)
    late_writer = scenario.worker("late-writer", fault="race", concurrency=2)
    scenario.wait_until(
        lambda: all(run.attempts == 1 for run in scenario.runs()),
        timeout=30,
        what="both runs claimed by the worker that will freeze",
    )
    # Both of its processes are frozen: the second attempts go to this worker.
    doomed = scenario.worker("doomed", fault="stall_in_pack", concurrency=2)
    scenario.wait_for_markers("in_pack", 2)
    assert all(scenario.events(run_id)[1] == ("REQUEUED", 1) for run_id in frozen)
    scenario.wait_until(
        lambda: (
            sum(
                line.get("message", "").startswith("finalize lost the compare-and-set")
                for line in json_lines(late_writer)
            )
            == 2
        ),
        timeout=30,
        what="the late receipts written and their finalize lost",
    )

    s3 = scenario.cluster.s3
    for run in scenario.runs():
        # The object in storage is the frozen worker's, under its first, requeued lease.
        stored = s3.client().head_object(
            Bucket=s3.bucket, Key=f"results/{run.tenant_id}/{run.id}.json"
        )
        first_lease = RunEvent.objects.filter(run=run, kind="CLAIMED", attempt=1).get()
        assert stored["Metadata"]["lease-token"] == str(first_lease.lease_token)

    doomed.kill9()
    runs = scenario.wait_settled()

    books = scenario.books()
    assert books.audit_required == 0
    assert books.failed == 2  # both attempts used: WORKER_TIMEOUT, the minimum fee
    for run in runs:
        assert (run.status, run.error_reason_code, run.attempts) == ("FAILED", "WORKER_TIMEOUT", 2)
        assert str(run.id) in frozen
    lines = scenario.reaper_lines()
    assert not [line for line in lines if line.get("reconcile_type") == "no_receipt_audit"]
    ignored = {line["run_id"] for line in lines if "requeued ignored" in line.get("message", "")}
    assert ignored == set(frozen)
    scenario.report(books, late_receipts=2)


def test_two_beat_and_reaper_processes_never_act_twice_on_a_run(scenario: Scenario):
    cluster = scenario.cluster
    cluster.reaper("reaper-2")
    apis = [scenario.tenant(), scenario.tenant()]

    # Leases with receipts (roll forward) and without (requeue), from two crashed workers.
    rolled = scenario.submit(apis[0], 2)
    after_receipt = scenario.worker("doomed-receipt", fault="after_receipt", concurrency=2)
    scenario.wait_for_markers("after_receipt", 2)
    stalled = scenario.submit(apis[1], 2)
    in_pack = scenario.worker("doomed-pack", fault="stall_in_pack", concurrency=2)
    scenario.wait_for_markers("in_pack", 2)
    after_receipt.kill9()
    in_pack.kill9()
    # Runs the API could not publish (requeue scan), and plain ones.
    cluster.broker_proxy.down()
    stranded = scenario.submit(apis[0], 3) + scenario.submit(apis[1], 3)
    cluster.broker_proxy.up()
    scenario.submit(apis[1], 4)
    scenario.worker("healthy", concurrency=2)
    runs = scenario.wait_settled(timeout=90)

    books = scenario.books()
    assert books.completed == 14
    executions = scenario.executions()
    by_id = {str(run.id): run for run in runs}
    for run_id in rolled:
        assert (by_id[run_id].attempts, executions[run_id]) == (1, 1)
    for run_id in stalled:
        assert (by_id[run_id].attempts, executions[run_id]) == (2, 2)
    for run_id in stranded:
        assert by_id[run_id].attempts == 1
    for run in runs:
        events = list(RunEvent.objects.filter(run=run).values_list("kind", "lease_token"))
        assert Counter(kind for kind, _ in events)["FINALIZED"] == 1
        requeues = [token for kind, token in events if kind == "REQUEUED"]
        assert len(requeues) == len(set(requeues)), "a lease was requeued twice"
    # Both reapers really ran the scans (what they found is in the report: lost_race
    # and skipped are one reaper finding the other's work done).
    expire_scans = {
        process.name: sum(
            line.get("message", "").startswith("Task reaper.expire_leases")
            and "succeeded" in line["message"]
            for line in json_lines(process, since=scenario.reaper_log_start)
        )
        for process in cluster.reapers
    }
    assert all(expire_scans.values()), expire_scans
    actions: Counter = Counter()
    for line in scenario.reaper_lines():
        if line.get("message") == "reaper scan":
            actions.update(line["actions"])
    scenario.report(books, expire_scans=expire_scans, actions=dict(actions))


def test_cancels_race_workers_the_reaper_and_finalize(scenario: Scenario):
    """Tenants cancel runs at every moment of their life:

    - inside a pack that never returns: the heartbeat stops it, the worker ends the run;
    - just before the worker is killed -9: the reaper ends the run once its lease lapses;
    - at random moments against a healthy worker, twice for some runs: before the claim
      (refunded whole), while processing (the minimum fee), or after the finish (409);
    - on runs whose publish never reached the broker, racing the requeue scan that
      republishes them and the worker that then claims them.

    Each run ends exactly once, each answer agrees with how the run ended, and the money
    adds up to the micro.
    """
    api = scenario.tenant()
    answers: dict[str, list[tuple[int, dict]]] = {}

    def cancel(run_id: str) -> None:
        answers.setdefault(run_id, []).append(api.cancel(run_id))

    stuck = scenario.submit(api, 3)
    stopper = scenario.worker("stopper", fault="stall_in_pack", concurrency=3)
    scenario.wait_for_markers("in_pack", 3)
    for run_id in stuck:
        cancel(run_id)
    scenario.wait_until(
        lambda: all(run.status == "CANCELED" for run in scenario.runs(stuck)),
        timeout=30,
        what="the heartbeat stopping the stalled packs",
    )
    stopper.stop(grace=5)
    scenario.clear_markers("in_pack")

    orphaned = scenario.submit(api, 3)
    doomed = scenario.worker("doomed", fault="stall_in_pack", concurrency=3)
    scenario.wait_for_markers("in_pack", 3)
    for run_id in orphaned:
        cancel(run_id)
    doomed.kill9()

    rng = random.Random(15)
    scenario.cluster.broker_proxy.down()
    stranded = scenario.submit(api, 4, sleep_sec=0.4)
    scenario.cluster.broker_proxy.up()
    scenario.worker("healthy", concurrency=2)
    raced = scenario.submit(api, 16, sleep_sec=0.4)
    twice = set(raced[::4])
    delays = {run_id: rng.uniform(0, 3) for run_id in raced}
    delays.update({run_id: rng.uniform(1, 7) for run_id in stranded})
    raced += stranded
    with ThreadPoolExecutor(max_workers=8) as pool:
        for run_id in raced:
            for _ in range(2 if run_id in twice else 1):
                pool.submit(lambda run_id=run_id: (time.sleep(delays[run_id]), cancel(run_id)))
    runs = {str(run.id): run for run in scenario.wait_settled(timeout=90)}

    books = scenario.books()
    for run_id in stuck:
        assert [status for status, _ in answers[run_id]] == [202]
        assert runs[run_id].error_detail == "The pack was stopped: the run was canceled."
    for run_id in orphaned:
        assert (runs[run_id].status, runs[run_id].money_state) == ("CANCELED", "SETTLED")
    for run_id, run in runs.items():
        finished = [
            kind
            for kind, _ in scenario.events(run_id)
            if kind in ("FINALIZED", "CANCELED", "QUEUE_TIMED_OUT")
        ]
        assert len(finished) == 1, (run_id, scenario.events(run_id))
        for status, body in answers[run_id]:
            if status == 409:
                assert (run.status, body["run_status"]) == ("COMPLETED", "COMPLETED")
            elif status == 202:
                assert (run.status, run.money_state) == ("CANCELED", "SETTLED")
            else:
                assert status == 200, body
                assert run.status == "CANCELED"
                assert body["money_state"] == run.money_state
    outcomes = Counter(runs[run_id].status for run_id in raced)
    reaper_canceled = sum(
        line["actions"].get("canceled", 0)
        for line in scenario.reaper_lines()
        if line.get("message") == "reaper scan"
    )
    assert books.completed == outcomes["COMPLETED"]
    assert books.canceled + books.refunded == 26 - books.completed
    scenario.report(
        books,
        answers=dict(Counter(status for replies in answers.values() for status, _ in replies)),
        reaper_canceled=reaper_canceled,
    )
