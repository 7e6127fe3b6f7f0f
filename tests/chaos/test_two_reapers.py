"""Two reaper processes (beat + worker each) run every scan concurrently while workers
crash at every step and a broker outage strands runs: each repair happens once."""

from collections import Counter

import pytest

from runs.models import RunEvent
from tests.chaos.harness import Scenario, json_lines

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


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
    # Both reapers really scanned, and each lost some races to the other.
    scans = {
        process.name: Counter(
            line["scan"] for line in json_lines(process) if line.get("message") == "reaper scan"
        )
        for process in cluster.reapers
    }
    ran = {
        process.name: sum(
            "Task reaper.expire_leases" in line.get("message", "")
            and "succeeded" in line["message"]
            for line in json_lines(process)
        )
        for process in cluster.reapers
    }
    assert all(count > 0 for count in ran.values()), ran
    actions = Counter()
    for process in cluster.reapers:
        for line in json_lines(process):
            if line.get("message") == "reaper scan":
                actions.update(line["actions"])
    scenario.report(
        books,
        expire_scans=ran,
        acted_scans={name: sum(counts.values()) for name, counts in scans.items()},
        actions=dict(actions),
    )
