"""Every run transition, walked from a table: each is one compare-and-set that bumps
``version``, moves ``updated_at`` and appends exactly one RunEvent (docs/design.md §2).

Each row arranges a run in the state the transition starts from, then drives it the way
the system does: the API, the worker's steps, the reaper's scans, an operator's
resolution. A transition that loses its compare-and-set writes nothing at all.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from reaper import services as reaper
from reaper import tasks as reaper_tasks
from runs import lifecycle
from runs.models import Run, RunEvent
from runs.receipts import write_receipt
from tests.factories import issue_token
from tests.payloads import run_body

HOUR_AGO = timedelta(hours=1)


def backdate(run: Run, **fields) -> Run:
    """Push the run's last change an hour back, so that a transition visibly moves it."""
    Run.objects.filter(id=run.id).update(updated_at=timezone.now() - HOUR_AGO, **fields)
    run.refresh_from_db()
    return run


def claimed(make_run) -> lifecycle.Lease:
    lease = lifecycle.claim(run_id=make_run().id)
    assert lease is not None
    return lease


def expired(make_run, *, receipt: str = "") -> Run:
    """A PROCESSING run whose lease lapsed, with a valid, an invalid or no receipt."""
    lease = claimed(make_run)
    if receipt:
        write_receipt(
            run=lease.run,
            lease_token=lease.token if receipt == "valid" else "not-the-lease",
            body=b'{"answer": 42}',
            charge_micros=9_000,
        )
    return backdate(lease.run, lease_expires_at=timezone.now() - timedelta(seconds=1))


def queued_for(make_run, *, age: timedelta) -> Run:
    run = make_run()
    created = timezone.now() - age
    return backdate(run, created_at=created, published_at=created)


@dataclass(frozen=True)
class Row:
    transition: str
    event: str
    arrange: Callable[..., Run | None]
    act: Callable[[Run | None], object]


def _submit(funded_account) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(funded_account.tenant)}")
    response = client.post(
        "/v1/runs", run_body(), format="json", HTTP_IDEMPOTENCY_KEY="lifecycle-submit"
    )
    assert response.status_code == 202, response.content


def _cancel_through_the_api(run: Run) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(run.tenant)}")
    response = client.post(f"/v1/runs/{run.id}/cancel")
    assert response.status_code in (200, 202), response.content


def cancel_requested(run: Run) -> Run:
    return backdate(run, cancel_requested_at=timezone.now() - HOUR_AGO)


def _flag_by_audit(run: Run) -> None:
    # Invariant 3: a terminal run whose reservation was never settled nor voided.
    Run.objects.filter(id=run.id).update(status=Run.Status.FAILED)
    assert reaper_tasks.audit_ledger()["flagged"] == 1


def _resolve(run: Run) -> None:
    reaper.resolve_audit(run=run, actor="oncall", note="checked", outcome="refund")


ROWS = [
    Row("submit", "SUBMITTED", lambda make_run: None, None),
    Row(
        "claim",
        "CLAIMED",
        lambda make_run: backdate(make_run()),
        lambda run: lifecycle.claim(run_id=run.id),
    ),
    Row(
        "heartbeat",
        "LEASE_EXTENDED",
        lambda make_run: backdate(claimed(make_run).run),
        lambda run: lifecycle.extend_lease(run_id=run.id, lease_token=run.lease_token),
    ),
    Row(
        "complete",
        "FINALIZED",
        lambda make_run: backdate(claimed(make_run).run),
        lambda run: lifecycle.finalize(
            run_id=run.id,
            lease_token=run.lease_token,
            outcome=lifecycle.Completed(9_000, "results/x.json", "0" * 64, 10),
        ),
    ),
    Row(
        "fail",
        "FINALIZED",
        lambda make_run: backdate(claimed(make_run).run),
        lambda run: lifecycle.finalize(
            run_id=run.id, lease_token=run.lease_token, outcome=lifecycle.Failed("X", "why")
        ),
    ),
    Row(
        "roll forward an expired lease",
        "FINALIZED",
        lambda make_run: expired(make_run, receipt="valid"),
        lambda run: reaper_tasks.expire_leases(),
    ),
    Row(
        "requeue an expired lease",
        "REQUEUED",
        lambda make_run: expired(make_run),
        lambda run: reaper_tasks.expire_leases(),
    ),
    Row(
        "flag an invalid receipt",
        "AUDIT_FLAGGED",
        lambda make_run: expired(make_run, receipt="invalid"),
        lambda run: reaper_tasks.expire_leases(),
    ),
    Row(
        "republish",
        "REPUBLISHED",
        lambda make_run: queued_for(make_run, age=timedelta(minutes=5)),
        lambda run: reaper_tasks.requeue_stale(),
    ),
    Row(
        "queue timeout",
        "QUEUE_TIMED_OUT",
        lambda make_run: queued_for(make_run, age=timedelta(days=1)),
        lambda run: reaper_tasks.requeue_stale(),
    ),
    Row(
        "flag by the ledger audit",
        "AUDIT_FLAGGED",
        lambda make_run: backdate(make_run()),
        _flag_by_audit,
    ),
    Row(
        "resolve",
        "RESOLVED",
        lambda make_run: backdate(
            make_run(), money_state=Run.MoneyState.AUDIT_REQUIRED, status=Run.Status.FAILED
        ),
        _resolve,
    ),
    Row(
        "cancel a queued run",
        "CANCELED",
        lambda make_run: backdate(make_run()),
        _cancel_through_the_api,
    ),
    Row(
        "request the cancel of a processing run",
        "CANCEL_REQUESTED",
        lambda make_run: backdate(claimed(make_run).run),
        _cancel_through_the_api,
    ),
    Row(
        "the worker stops a canceled run",
        "FINALIZED",
        lambda make_run: cancel_requested(claimed(make_run).run),
        lambda run: lifecycle.finalize(
            run_id=run.id, lease_token=run.lease_token, outcome=lifecycle.Canceled("stopped")
        ),
    ),
    Row(
        "cancel an expired lease whose cancel was requested",
        "FINALIZED",
        lambda make_run: cancel_requested(expired(make_run, receipt="valid")),
        lambda run: reaper_tasks.expire_leases(),
    ),
    Row(
        "purge the result",
        "RESULT_PURGED",
        lambda make_run: backdate(
            make_run(),
            status=Run.Status.COMPLETED,
            retention_until=timezone.now() - timedelta(days=1),
        ),
        lambda run: reaper_tasks.purge_expired_results(),
    ),
]


@pytest.fixture(autouse=True)
def _timings(settings):
    settings.DPP_LEASE_TTL_SEC = 60
    settings.DPP_REQUEUE_AFTER_SEC = 120
    settings.DPP_MAX_QUEUE_AGE_SEC = 900


def test_the_table_covers_every_event_kind():
    assert {row.event for row in ROWS} == set(RunEvent.Kind.values)


@pytest.mark.parametrize("row", ROWS, ids=[row.transition for row in ROWS])
def test_each_transition_bumps_version_moves_updated_at_and_writes_one_event(
    row: Row, make_run, funded_account
):
    run = row.arrange(make_run)
    if run is None:
        _submit(funded_account)
        run = Run.objects.get(idempotency_key="lifecycle-submit")
        assert run.version == 1
    else:
        before = (run.version, run.updated_at, run.events.count())
        row.act(run)
        run.refresh_from_db()
        assert run.version == before[0] + 1
        assert run.updated_at > before[1]
        assert run.events.count() == before[2] + 1
    event = run.events.order_by("-created_at", "-id").first()
    assert event.kind == row.event
    assert event.created_at == run.updated_at
    assert event.attempt == run.attempts


def test_a_transition_that_loses_its_compare_and_set_writes_nothing(make_run):
    run = backdate(claimed(make_run).run)
    before = (run.version, run.updated_at, run.events.count())

    assert lifecycle.extend_lease(run_id=run.id, lease_token="0" * 32) == "lost"
    assert lifecycle.claim(run_id=run.id) is None
    assert not lifecycle.finalize(
        run_id=run.id, lease_token="0" * 32, outcome=lifecycle.Failed("X", "lost")
    )
    # Only a run whose cancel was requested can end CANCELED; a queued-only cancel.
    assert not lifecycle.finalize(
        run_id=run.id, lease_token=run.lease_token, outcome=lifecycle.Canceled("no request")
    )
    assert not lifecycle.cancel_queued(run_id=run.id, actor="test", now=timezone.now())

    run.refresh_from_db()
    assert (run.version, run.updated_at, run.events.count()) == before
    assert run.status == Run.Status.PROCESSING


def test_once_a_cancel_is_requested_the_run_can_only_end_canceled(make_run):
    run = backdate(claimed(make_run).run)
    assert lifecycle.request_cancel(run_id=run.id, actor="test", now=timezone.now())
    run.refresh_from_db()
    before = (run.version, run.updated_at, run.events.count())
    now = timezone.now()

    assert not lifecycle.request_cancel(run_id=run.id, actor="again", now=now)
    assert lifecycle.extend_lease(run_id=run.id, lease_token=run.lease_token) == (
        lifecycle.Renewal.CANCEL_REQUESTED
    )
    assert not lifecycle.finalize(
        run_id=run.id,
        lease_token=run.lease_token,
        outcome=lifecycle.Completed(9_000, "results/x.json", "0" * 64, 10),
    )
    assert not lifecycle.finalize(
        run_id=run.id, lease_token=run.lease_token, outcome=lifecycle.Failed("X", "late")
    )
    assert not lifecycle.requeue(run_id=run.id, lease_token=run.lease_token, now=now + HOUR_AGO)

    run.refresh_from_db()
    assert (run.version, run.updated_at, run.events.count()) == before
    assert lifecycle.finalize(
        run_id=run.id, lease_token=run.lease_token, outcome=lifecycle.Canceled("stopped")
    )
    run.refresh_from_db()
    assert (run.status, run.money_state) == (Run.Status.CANCELED, Run.MoneyState.SETTLED)
    assert run.actual_cost_micros == run.minimum_fee_micros
