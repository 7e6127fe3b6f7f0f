"""The reaper's repairs: scans that find runs and decide what should happen to them.

The transitions themselves are ``runs.lifecycle``'s compare-and-sets, so two reapers, or
a reaper racing a worker, can never both act on one run. Each scan is bounded by
``DPP_REAPER_BATCH_SIZE``; a backlog drains over several ticks.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import services as billing
from billing.money import micros_to_usd
from dpp.metrics import AUDIT_REQUIRED
from dpp.tracing import span_linked_to
from reaper.audit import Violation, run_audit
from reaper.models import AuditResolution
from runs import lifecycle
from runs.models import Run, RunEvent
from runs.publishing import publish_run
from runs.receipts import Receipt, delete_receipt, read_receipt, receipt_matches
from runs.resolutions import (
    Complete,
    Fail,
    ReceiptNotVerified,
    Refund,
    Resolution,
    ResolutionRefused,
)

logger = logging.getLogger(__name__)

WORKER_TIMEOUT = "WORKER_TIMEOUT"


class AlreadyResolved(ResolutionRefused):
    """The run is not (or no longer) AUDIT_REQUIRED: someone resolved it first."""

    def __init__(self, run_id: uuid.UUID, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id

    @classmethod
    def of(cls, run: Run) -> AlreadyResolved:
        """Says who resolved the run and when, read after the resolution lost its race."""
        latest = AuditResolution.objects.filter(run_id=run.id).order_by("-created_at").first()
        if latest is None:
            money_state = Run.objects.filter(id=run.id).values_list("money_state", flat=True)
            return cls(
                run.id,
                f"Run {run.id} is not AUDIT_REQUIRED (its money is "
                f"{money_state.first() or 'unknown'}): there is nothing to resolve.",
            )
        return cls(
            run.id,
            f"Run {run.id} was already resolved by {latest.actor} at "
            f"{latest.created_at:%Y-%m-%d %H:%M:%S} UTC ({latest.get_outcome_display()}, "
            f"charged ${micros_to_usd(latest.charge_micros)}); nothing was changed.",
        )


class NoteRequired(ResolutionRefused):
    def __init__(self) -> None:
        super().__init__("A resolution needs a note: what you found and why you decided.")


@dataclass
class ScanResult:
    """What one scan did, by action; returned by every scan for logs, metrics and tests."""

    scan: str
    actions: Counter = field(default_factory=Counter)

    def count(self, action: str) -> None:
        self.actions[action] += 1


def _batch() -> int:
    return settings.DPP_REAPER_BATCH_SIZE


# --- Lease expiry ---------------------------------------------------------------------


def expire_leases(*, now: datetime | None = None) -> ScanResult:
    """PROCESSING runs whose lease ran out: roll forward, requeue, or fail them."""
    now = now or timezone.now()
    result = ScanResult("expire_leases")
    expired = (
        Run.objects.filter(
            status=Run.Status.PROCESSING,
            money_state=Run.MoneyState.RESERVED,
            lease_expires_at__lt=now,
        )
        .order_by("lease_expires_at")
        .values_list("id", "traceparent")[: _batch()]
    )
    for run_id, traceparent in expired:
        try:
            # A span per run, linked to the trace of the run's submission (docs/design.md §5).
            with span_linked_to("reaper.reap_expired_lease", traceparent, run_id=str(run_id)):
                result.count(reap_expired_lease(run_id=run_id, now=now))
        except Exception:
            # One run we cannot judge now (object storage down, a receipt that cannot be
            # read) must not block the rest of the batch; its lease stays expired, so the
            # next scan tries again. Never guess "no receipt" from an error.
            logger.warning(
                "lease expiry of one run failed; retried next scan",
                exc_info=True,
                extra={"run_id": str(run_id)},
            )
            result.count("error")
    return result


def reap_expired_lease(*, run_id: uuid.UUID, now: datetime) -> str:
    """Settle one expired lease from what object storage proves.

    A run whose tenant asked to cancel it ends CANCELED with its minimum fee, whatever
    storage holds: the cancel was accepted while it ran, and it must not be requeued. A
    valid receipt means the pack finished: roll forward with its charge. An invalid one
    cannot be trusted either way: a person must look. No receipt: retry while attempts
    remain, then fail with the minimum fee. A receipt of an earlier lease of this run that
    the reaper itself took away counts as no receipt (see ``_superseded``).
    """
    run = Run.objects.filter(id=run_id).first()
    if run is None or run.status != Run.Status.PROCESSING or run.lease_expires_at >= now:
        return "skipped"
    lease_token = run.lease_token
    if run.cancel_requested_at is not None:
        won = lifecycle.finalize(
            run_id=run_id,
            lease_token=lease_token,
            outcome=lifecycle.Canceled("Canceled; its worker stopped renewing its lease."),
            expired_before=now,
        )
        return "canceled" if won else "lost_race"
    receipt = read_receipt(run)
    if receipt is not None:
        reasons = receipt_matches(run, receipt, lease_token)
        if not reasons:
            won = lifecycle.finalize(
                run_id=run_id,
                lease_token=lease_token,
                outcome=lifecycle.Completed.from_receipt(receipt),
                expired_before=now,
            )
            return "rolled_forward" if won else "lost_race"
        if not _superseded(run, receipt):
            flagged = flag_invalid_receipt(run=run, reasons=reasons, now=now)
            return "audit_required" if flagged else "lost_race"
        logger.warning(
            "receipt of a lease the reaper requeued ignored: it settles nothing",
            extra={"run_id": str(run_id), "lease_token": receipt.lease_token},
        )
    if run.attempts < settings.DPP_MAX_ATTEMPTS:
        if lifecycle.requeue(run_id=run_id, lease_token=lease_token, now=now):
            publish_run(run_id=run_id)
            return "requeued"
        return "lost_race"
    won = lifecycle.finalize(
        run_id=run_id,
        lease_token=lease_token,
        outcome=lifecycle.Failed(WORKER_TIMEOUT, "The worker stopped renewing its lease."),
        expired_before=now,
    )
    return "failed" if won else "lost_race"


def _superseded(run: Run, receipt: Receipt) -> bool:
    """Is ``receipt`` a late write under a lease of this run that the reaper requeued?

    A worker that froze between renewing its lease and writing its receipt (a long GC
    pause, a suspended VM) writes it after the reaper gave the run to a new attempt. Such
    a receipt is valid in every respect but its lease, and the lease history proves that
    lease was taken away with nothing settled: it says nothing about the current attempt,
    so it is not a reason to page anyone. Anything else wrong with it still is.
    """
    try:
        token = uuid.UUID(receipt.lease_token)
    except ValueError:
        return False
    return not receipt_matches(run, receipt, token) and (
        RunEvent.objects.filter(
            run_id=run.id, kind=RunEvent.Kind.REQUEUED, lease_token=token
        ).exists()
    )


@transaction.atomic
def flag_invalid_receipt(*, run: Run, reasons: list[str], now: datetime) -> bool:
    """A receipt that does not match its run: flag it, and alert once the flag is real."""
    won = lifecycle.flag_invalid_receipt(
        run_id=run.id, lease_token=run.lease_token, reasons=reasons, now=now
    )
    if won:
        transaction.on_commit(AUDIT_REQUIRED.inc)
        # A rolled-back flag must not page anyone.
        transaction.on_commit(
            lambda: _alert(
                run_id=run.id, tenant_id=run.tenant_id, invariant=None, detail="; ".join(reasons)
            )
        )
    return won


# --- Requeue and queue timeout --------------------------------------------------------


def requeue_stale(*, now: datetime | None = None) -> ScanResult:
    """Republish QUEUED runs nobody claimed; refund those that waited too long.

    The runs table is the outbox: a submit whose publish failed is found here.
    """
    now = now or timezone.now()
    result = ScanResult("requeue_stale")
    too_old = now - timedelta(seconds=settings.DPP_MAX_QUEUE_AGE_SEC)
    for run_id in (
        Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=too_old)
        .order_by("created_at")
        .values_list("id", flat=True)[: _batch()]
    ):
        timed_out = lifecycle.time_out_queued(run_id=run_id, now=now)
        result.count("refunded" if timed_out else "lost_race")
    stale = now - timedelta(seconds=settings.DPP_REQUEUE_AFTER_SEC)
    for run_id, published_at in (
        Run.objects.filter(status=Run.Status.QUEUED, created_at__gte=too_old)
        .filter(published_at__lt=stale)
        .order_by("created_at")
        .values_list("id", "published_at")[: _batch()]
    ):
        # Claim the republish first so that two reapers do not both publish.
        if lifecycle.republish(run_id=run_id, published_at=published_at, now=now):
            # A failed publish keeps the new published_at: tried again an interval later.
            result.count("republished" if publish_run(run_id=run_id) else "publish_failed")
        else:
            result.count("lost_race")
    return result


# --- Ledger audit ---------------------------------------------------------------------


def audit_ledger() -> ScanResult:
    """Check the invariants; flag every run a violation names. Never moves money."""
    result = ScanResult("audit_ledger")
    report = run_audit()
    for violation in report.violations:
        result.count(_flag_violation(violation))
    return result


def _flag_violation(violation: Violation) -> str:
    """Flag the run a violation names and alert once; a run already flagged is known.

    Account-level violations name no run: they alert on every audit until repaired.
    """
    if violation.run_id:
        flagged = lifecycle.flag_for_audit(
            run_id=violation.run_id,
            detail=f"invariant {violation.invariant}: {violation.detail}",
        )
        if not flagged:
            return "already_flagged"
        AUDIT_REQUIRED.inc()
    _alert(
        run_id=violation.run_id,
        tenant_id=violation.tenant_id,
        invariant=violation.invariant,
        detail=violation.detail,
    )
    return "flagged" if violation.run_id else "reported"


def _alert(*, run_id, tenant_id, invariant: int | None, detail: str) -> None:
    logger.critical(
        "money invariant violated: run needs an operator",
        extra={
            "reconcile_type": "no_receipt_audit",
            "run_id": str(run_id) if run_id else None,
            "tenant_id": str(tenant_id) if tenant_id else None,
            "invariant": invariant,
            "detail": detail,
        },
    )


# --- Retention ------------------------------------------------------------------------


def purge_expired_results(*, now: datetime | None = None) -> ScanResult:
    """Delete result objects past retention; the run row and its money stay."""
    now = now or timezone.now()
    result = ScanResult("purge_expired_results")
    for run in Run.objects.filter(
        status=Run.Status.COMPLETED, retention_until__lt=now, result_purged_at__isnull=True
    ).order_by("retention_until")[: _batch()]:
        try:
            delete_receipt(run)
        except Exception:
            # Storage unreachable: the row stays unpurged and the next scan tries again.
            logger.warning(
                "result purge failed; retried next scan",
                exc_info=True,
                extra={"run_id": str(run.id)},
            )
            result.count("error")
            continue
        purged = lifecycle.mark_result_purged(run_id=run.id, now=now)
        result.count("purged" if purged else "lost_race")
    return result


# --- Operators ------------------------------------------------------------------------


def resolve_audit(
    *,
    run: Run,
    actor: str,
    note: str,
    outcome: str,
    fee_micros: int | None = None,
    adjust_micros: int = 0,
) -> AuditResolution:
    """Close an AUDIT_REQUIRED run with one of the outcomes the public contract allows.

    ``complete`` reads the run's receipt from object storage (before the transaction: no
    lock is held while storage answers) and lets ``lifecycle.resolve`` verify it;
    ``fail`` charges ``fee_micros``, at most the run's minimum fee; ``refund`` voids the
    reservation. The transition, its RunEvent, its money, an optional ``adjust_micros``
    correction (positive credits the tenant) and this record commit together or not at
    all. Raises ``ResolutionRefused`` (its message is for the operator) or
    ``AlreadyResolved``.
    """
    if not note.strip():
        raise NoteRequired
    resolution = _resolution(run, outcome=outcome, fee_micros=fee_micros)
    with transaction.atomic():
        resolved = lifecycle.resolve(run_id=run.id, resolution=resolution, actor=actor, note=note)
        if resolved is None:
            raise AlreadyResolved.of(run)
        if adjust_micros:
            billing.adjust(
                account=run.tenant.account,
                amount_micros=adjust_micros,
                reason=f"audit resolution of run {run.id}: {note}"[:500],
                actor=actor,
            )
        return AuditResolution.objects.create(
            run=run,
            actor=actor,
            note=note,
            outcome=outcome,
            resulting_money_state=resolved.money_state,
            charge_micros=resolved.charged_micros,
            adjust_micros=adjust_micros,
        )


def _resolution(run: Run, *, outcome: str, fee_micros: int | None) -> Resolution:
    if outcome == AuditResolution.Outcome.COMPLETE:
        try:
            receipt = read_receipt(run)
        except Exception as exc:
            raise ResolutionRefused(
                f"Object storage did not answer ({type(exc).__name__}): the receipt of run "
                f"{run.id} cannot be verified now. Try again, or choose another outcome."
            ) from exc
        if receipt is None:
            raise ReceiptNotVerified(run.id, ["no receipt in object storage"])
        return Complete(receipt)
    if outcome == AuditResolution.Outcome.FAIL:
        if fee_micros is None:
            raise ResolutionRefused("A failed run needs its fee: at most the minimum fee.")
        return Fail(fee_micros)
    if outcome == AuditResolution.Outcome.REFUND:
        return Refund()
    raise ResolutionRefused(f"Unknown outcome {outcome!r}: choose complete, fail or refund.")
