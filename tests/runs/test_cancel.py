"""``POST /v1/runs/{id}/cancel``: queued runs are canceled at once with their whole
reservation returned, processing ones by request; finished runs are a 409; the answer
repeats; another tenant's run is the poll's 404. Raced against claims and finalizes on
real connections, exactly one side wins and the money adds up."""

import uuid

import pytest
from django.urls import reverse

from billing.models import Account, Transfer
from reaper.audit import audit
from runs import lifecycle
from runs.models import Run
from tests.billing.helpers import run_concurrently
from tests.factories import AccountFactory
from tests.runs.test_poll_and_list import submit

PROBLEM = "application/problem+json"


def cancel(client, run_id: str):
    return client.post(f"/v1/runs/{run_id}/cancel")


def budget(client) -> dict:
    return client.get("/v1/budget").json()


def test_a_queued_run_is_canceled_at_once_and_its_reservation_returned(funded_client):
    before = budget(funded_client)
    run_id = submit(funded_client, "key-cancel-01")
    assert budget(funded_client)["available_usd"] == "9.950000"

    response = cancel(funded_client, run_id)

    assert response.status_code == 200
    body = response.json()
    assert (body["run_id"], body["status"], body["money_state"]) == (
        run_id,
        "CANCELED",
        "REFUNDED",
    )
    assert body["cost"]["used_usd"] == "0.000000"
    assert body["cancel_requested"] is True
    assert body["error"]["reason_code"] == "CANCELED"
    assert budget(funded_client) == before
    assert list(
        Transfer.objects.filter(run_id=run_id).values_list("kind", "amount_micros", "outcome")
    ) == [("RESERVE", 50_000, ""), ("VOID", 50_000, "CANCELED")]
    assert audit() == []


def test_canceling_twice_gives_the_same_answer_and_writes_nothing_more(funded_client):
    run_id = submit(funded_client, "key-cancel-02")
    first = cancel(funded_client, run_id)
    events = Run.objects.get(id=run_id).events.count()

    second = cancel(funded_client, run_id)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json()
    assert Run.objects.get(id=run_id).events.count() == events
    assert Transfer.objects.filter(run_id=run_id).count() == 2


def test_a_processing_run_is_asked_to_stop_and_the_answer_repeats(funded_client):
    run_id = submit(funded_client, "key-cancel-03")
    lease = lifecycle.claim(run_id=run_id)

    first = cancel(funded_client, run_id)
    second = cancel(funded_client, run_id)

    assert (first.status_code, second.status_code) == (202, 202)
    body = first.json()
    assert (body["status"], body["money_state"], body["cancel_requested"]) == (
        "PROCESSING",
        "RESERVED",
        True,
    )
    assert second.json() == body
    assert Run.objects.get(id=run_id).events.filter(kind="CANCEL_REQUESTED").count() == 1
    # The worker stops and finalizes; the answer is then the CANCELED run.
    assert lifecycle.finalize(
        run_id=run_id, lease_token=lease.token, outcome=lifecycle.Canceled("stopped")
    )
    done = cancel(funded_client, run_id)
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["cost"]["used_usd"]) == ("CANCELED", "0.005000")
    assert audit() == []


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED"])
def test_a_run_that_already_ended_is_a_409_and_stays_as_it_was(funded_client, status):
    run_id = submit(funded_client, f"key-cancel-{status}")
    lease = lifecycle.claim(run_id=run_id)
    outcome = (
        lifecycle.Completed(10_100, "results/x.json", "0" * 64, 10)
        if status == "COMPLETED"
        else lifecycle.Failed("PACK_ERROR", "boom")
    )
    assert lifecycle.finalize(run_id=run_id, lease_token=lease.token, outcome=outcome)
    version = Run.objects.get(id=run_id).version

    response = cancel(funded_client, run_id)

    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert (problem["type"], problem["status"]) == ("/problems/run-not-cancelable", 409)
    assert (problem["run_id"], problem["run_status"], problem["title"]) == (
        run_id,
        status,
        "Run not cancelable",
    )
    run = Run.objects.get(id=run_id)
    assert (run.status, run.version, run.cancel_requested_at) == (status, version, None)


def test_a_run_held_for_audit_is_not_cancelable(funded_client):
    run_id = submit(funded_client, "key-cancel-audit")
    lifecycle.flag_for_audit(run_id=run_id, detail="test")

    response = cancel(funded_client, run_id)

    assert response.status_code == 409
    assert "operator" in response.json()["detail"]
    assert Run.objects.get(id=run_id).status == Run.Status.QUEUED


def test_another_tenants_run_and_unknown_ids_are_the_polls_404(funded_client, client_for, db):
    run_id = submit(funded_client, "key-cancel-iso")
    intruder = client_for(AccountFactory())

    for target in (run_id, str(uuid.uuid4()), "not-a-uuid"):
        response = cancel(intruder, target)
        poll = intruder.get(f"/v1/runs/{target}")
        assert response.status_code == poll.status_code == 404
        assert response.json()["type"] == poll.json()["type"] == "/problems/run-not-found"
    assert Run.objects.get(id=run_id).status == Run.Status.QUEUED


def test_canceled_runs_are_listed_by_their_status(funded_client):
    canceled = submit(funded_client, "key-cancel-list-1")
    submit(funded_client, "key-cancel-list-2")
    cancel(funded_client, canceled)

    listed = funded_client.get("/v1/runs?status=CANCELED").json()["results"]

    assert [run["run_id"] for run in listed] == [canceled]


def test_cancel_answers_with_rate_limit_headers_and_counts_as_a_post(funded_client):
    run_id = submit(funded_client, "key-cancel-rl")
    response = cancel(funded_client, run_id)
    assert response["RateLimit-Policy"].startswith('"submit"')
    assert response["RateLimit"].startswith('"submit"')


def test_cancel_is_in_the_openapi_schema_with_its_answers(api_client, db):
    operation = api_client.get("/openapi.json").json()["paths"]["/v1/runs/{run_id}/cancel"]["post"]
    assert operation["operationId"] == "runs_cancel"
    assert {"200", "202", "404", "409", "429"} <= set(operation["responses"])
    assert operation["responses"]["409"]["content"].keys() == {PROBLEM}
    statuses = api_client.get("/openapi.json").json()["components"]["schemas"]["StatusEnum"]
    assert "CANCELED" in statuses["enum"]


# --- Races on real connections ---------------------------------------------------------


def _ledger_adds_up(account: Account) -> None:
    account.refresh_from_db()
    runs = Run.objects.filter(tenant=account.tenant)
    assert account.debits_pending == sum(run.reserved_micros for run in runs if not run.is_terminal)
    assert account.debits_posted == sum(run.actual_cost_micros or 0 for run in runs)
    assert audit() == []


@pytest.mark.django_db(transaction=True)
def test_cancels_racing_claims_end_each_run_once(funded_client, funded_account):
    ids = [submit(funded_client, f"key-race-claim-{i:02d}") for i in range(8)]
    cancels = [lambda run_id=run_id: cancel_service(run_id) for run_id in ids]
    claims = [lambda run_id=run_id: lifecycle.claim(run_id=run_id) for run_id in ids]

    outcomes = run_concurrently(cancels + claims)

    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    claimed = {str(o.value.run.id) for o in outcomes[len(ids) :] if o.value is not None}
    for run in Run.objects.filter(id__in=ids):
        if str(run.id) in claimed:
            # The claim won: the cancel became a request the worker will honour.
            assert (run.status, run.money_state) == ("PROCESSING", "RESERVED")
            assert run.cancel_requested_at is not None
        else:
            assert (run.status, run.money_state, run.actual_cost_micros) == (
                "CANCELED",
                "REFUNDED",
                0,
            )
    _ledger_adds_up(funded_account)


@pytest.mark.django_db(transaction=True)
def test_cancels_racing_finalizes_exactly_one_wins(funded_client, funded_account):
    ids = [submit(funded_client, f"key-race-final-{i:02d}") for i in range(8)]
    leases = {run_id: lifecycle.claim(run_id=run_id) for run_id in ids}
    cancels = [lambda run_id=run_id: cancel_service(run_id) for run_id in ids]
    finalizes = [
        lambda run_id=run_id: lifecycle.finalize(
            run_id=run_id,
            lease_token=leases[run_id].token,
            outcome=lifecycle.Completed(10_100, f"results/{run_id}.json", "0" * 64, 10),
        )
        for run_id in ids
    ]

    outcomes = run_concurrently(cancels + finalizes)

    finished = {run_id for run_id, o in zip(ids, outcomes[len(ids) :], strict=True) if o.value}
    refused = {run_id for run_id, o in zip(ids, outcomes[: len(ids)], strict=True) if o.error}
    # A cancel is refused exactly when the finalize committed first.
    assert refused == finished
    for run in Run.objects.filter(id__in=ids):
        if str(run.id) in finished:
            assert (run.status, run.cancel_requested_at) == ("COMPLETED", None)
        else:
            # The request won: the worker's completion lost; it now ends the run CANCELED.
            assert (run.status, run.cancel_requested_at is not None) == ("PROCESSING", True)
            assert lifecycle.finalize(
                run_id=run.id,
                lease_token=leases[str(run.id)].token,
                outcome=lifecycle.Canceled("stopped"),
            )
    assert Transfer.objects.filter(run_id__in=ids, kind="SETTLE").count() == len(ids)
    _ledger_adds_up(funded_account)


def cancel_service(run_id: str):
    from runs.cancellation import cancel_run

    return cancel_run(run=Run.objects.get(id=run_id), actor="race")


# --- Operators --------------------------------------------------------------------------


def test_the_admin_action_cancels_through_the_same_service(funded_client, admin_client):
    queued = submit(funded_client, "key-admin-cancel-1")
    processing = submit(funded_client, "key-admin-cancel-2")
    lifecycle.claim(run_id=processing)
    done = submit(funded_client, "key-admin-cancel-3")
    lease = lifecycle.claim(run_id=done)
    lifecycle.finalize(run_id=done, lease_token=lease.token, outcome=lifecycle.Failed("X", "y"))

    response = admin_client.post(
        reverse("admin:runs_run_changelist"),
        {"action": "cancel_runs", "_selected_action": [queued, processing, done]},
        follow=True,
    )

    assert response.status_code == 200
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Canceled 1 run(s); cancel requested for 1 processing run(s)")
    assert done in message
    runs = {str(run.id): run for run in Run.objects.filter(id__in=[queued, processing, done])}
    assert (runs[queued].status, runs[queued].money_state) == ("CANCELED", "REFUNDED")
    assert runs[processing].cancel_requested_at is not None
    assert runs[done].status == "FAILED"
    event = runs[queued].events.get(kind="CANCELED")
    assert event.detail == f"CANCELED by admin:{response.context['user'].username} (refunded)"
