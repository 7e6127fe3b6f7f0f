"""Cancel: the one service behind ``POST /v1/runs/{id}/cancel`` and the admin's action.

It decides which cancel transition applies (docs/design.md §2); ``runs.lifecycle`` makes
it. The run's row is locked first, so a claim, a finalize or the reaper either committed
before (and the cancel sees their result) or waits for it (and loses its compare-and-set).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from runs import lifecycle
from runs.errors import RunNotCancelable
from runs.models import Run


@dataclass(frozen=True)
class Cancellation:
    """The run after the cancel, as committed."""

    run: Run

    @property
    def pending(self) -> bool:
        """Still processing: its worker stops at its next heartbeat, then it is CANCELED."""
        return self.run.status == Run.Status.PROCESSING


@transaction.atomic
def cancel_run(*, run: Run, actor: str) -> Cancellation:
    """Cancel ``run``: at once if QUEUED (the whole reservation voided), by request if
    PROCESSING (it ends CANCELED, charged at most its minimum fee).

    Idempotent: a CANCELED run, or a processing one whose cancel is already requested, is
    answered as it is, and nothing is written. Raises ``RunNotCancelable`` for a run that
    finished otherwise, or whose money an operator must decide (AUDIT_REQUIRED).
    """
    locked = Run.objects.select_for_update().get(id=run.id)
    now = timezone.now()
    if locked.status == Run.Status.CANCELED:
        return Cancellation(locked)
    if locked.is_terminal:
        raise RunNotCancelable(run=locked, reason=f"it is already {locked.status}")
    if locked.money_state == Run.MoneyState.AUDIT_REQUIRED:
        raise RunNotCancelable(run=locked, reason="its money is held for an operator's review")
    if locked.status == Run.Status.QUEUED:
        lifecycle.cancel_queued(run_id=locked.id, actor=actor, now=now)
    elif locked.cancel_requested_at is None:
        lifecycle.request_cancel(run_id=locked.id, actor=actor, now=now)
    else:
        return Cancellation(locked)
    locked.refresh_from_db()
    return Cancellation(locked)
