"""Requeue and queue timeout (docs/design.md §2): the runs table is the outbox. Driven through
the ``reaper.requeue_stale`` task."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Account
from reaper import services, tasks
from reaper.audit import audit
from runs import execution, lifecycle
from runs.models import Run
from tests.reaper.helpers import Broker, finalizations, money

USD = 1_000_000
RESERVED = 50_000


@pytest.fixture(autouse=True)
def _timings(settings):
    settings.DPP_REQUEUE_AFTER_SEC = 120
    settings.DPP_MAX_QUEUE_AGE_SEC = 900


def aged(run: Run, *, created_sec: float, published_sec: float) -> Run:
    """Backdate a QUEUED run: created and last handed to the broker that many seconds ago."""
    now = timezone.now()
    Run.objects.filter(id=run.id).update(
        created_at=now - timedelta(seconds=created_sec),
        published_at=now - timedelta(seconds=published_sec),
    )
    run.refresh_from_db()
    return run


def test_queued_runs_nobody_claimed_are_republished_once_per_interval(make_run, broker: Broker):
    # A publish that never reached a worker, whether the broker lost it or refused it,
    # leaves the same row: QUEUED, last handed over at submission.
    published_long_ago = aged(make_run(), created_sec=300, published_sec=300)
    republished_long_ago = aged(make_run(), created_sec=600, published_sec=200)
    fresh = aged(make_run(), created_sec=10, published_sec=10)
    republished_recently = aged(make_run(), created_sec=600, published_sec=30)

    actions = tasks.requeue_stale()

    assert actions == {"republished": 2}
    assert sorted(broker.drain()) == sorted(
        [str(published_long_ago.id), str(republished_long_ago.id)]
    )
    for run in (published_long_ago, republished_long_ago):
        before = run.published_at
        run.refresh_from_db()
        assert run.status == Run.Status.QUEUED
        assert run.published_at is not None
        assert run.published_at != before
    for run in (fresh, republished_recently):
        before = run.published_at
        run.refresh_from_db()
        assert run.published_at == before
    # Published again just now: the next scan leaves them for another interval.
    assert tasks.requeue_stale() == {}
    assert broker.drain() == []
    assert audit() == []


def test_republish_that_fails_is_tried_again_after_the_interval(
    make_run, broker: Broker, monkeypatch
):
    run = aged(make_run(), created_sec=300, published_sec=300)
    with monkeypatch.context() as broker_down:
        broker_down.setattr(services, "publish_run", lambda *, run_id: False)
        assert tasks.requeue_stale() == {"publish_failed": 1}
        # The attempt counts as this interval's publish: no retry storm on a dead broker.
        assert tasks.requeue_stale() == {}

    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED
    assert run.published_at is not None
    aged(run, created_sec=300, published_sec=200)
    assert tasks.requeue_stale() == {"republished": 1}
    assert broker.drain() == [str(run.id)]


def test_queued_past_the_maximum_age_fails_queue_timeout_with_a_full_refund(
    make_run, funded_account: Account, broker: Broker
):
    expired = aged(make_run(), created_sec=901, published_sec=901)
    waiting = aged(make_run(), created_sec=30, published_sec=30)

    actions = tasks.requeue_stale()

    expired.refresh_from_db()
    assert actions == {"refunded": 1}
    assert (expired.status, expired.money_state, expired.error_reason_code) == (
        Run.Status.FAILED,
        Run.MoneyState.REFUNDED,
        lifecycle.QUEUE_TIMEOUT,
    )
    assert expired.actual_cost_micros == 0
    assert expired.completed_at is not None
    assert finalizations(expired) == [("VOID", RESERVED)]
    # Only the waiting run's reservation is still pending; nothing was charged.
    assert money(funded_account) == (10 * USD, 0, RESERVED)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.money_state) == (Run.Status.QUEUED, Run.MoneyState.RESERVED)
    assert broker.drain() == []
    assert audit() == []


def test_processing_and_finished_runs_are_not_requeued_whatever_their_age(make_run, broker: Broker):
    processing = make_run()
    assert lifecycle.claim(run_id=processing.id)
    Run.objects.filter(id=processing.id).update(created_at=timezone.now() - timedelta(hours=2))
    finished = make_run()
    execution.execute_run(run_id=finished.id)
    Run.objects.filter(id=finished.id).update(created_at=timezone.now() - timedelta(hours=2))

    assert tasks.requeue_stale() == {}

    assert {run.status for run in Run.objects.all()} == {"PROCESSING", "COMPLETED"}
    assert broker.drain() == []


def test_each_scan_handles_at_most_the_batch_size(make_run, broker: Broker, settings):
    settings.DPP_REAPER_BATCH_SIZE = 2
    stale = [aged(make_run(), created_sec=300, published_sec=300) for _ in range(3)]
    too_old = [aged(make_run(), created_sec=1000, published_sec=1000) for _ in range(3)]

    first = tasks.requeue_stale()
    second = tasks.requeue_stale()

    assert first == {"refunded": 2, "republished": 2}
    assert second == {"refunded": 1, "republished": 1}
    assert tasks.requeue_stale() == {}
    assert sorted(broker.drain()) == sorted(str(run.id) for run in stale)
    assert Run.objects.filter(id__in=[r.id for r in too_old], status="FAILED").count() == 3
    assert audit() == []
