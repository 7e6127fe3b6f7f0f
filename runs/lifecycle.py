"""The run state machine: the only code that changes a run's state (docs/design.md §2).

Every transition is one compare-and-set UPDATE whose WHERE clause is its guard. The winner
bumps ``version`` and ``updated_at`` and appends exactly one ``RunEvent``, in the same
transaction as the ledger transfer that belongs to the transition; a caller that loses
the race gets False (or None) and has written nothing. Workers, the reaper and operators
decide *what* should happen to a run; this module is how it happens.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from billing import services as billing
from billing.fees import minimum_fee
from billing.models import Transfer
from billing.money import micros_to_usd, require_micros
from dpp import context, metrics
from dpp.models import Tenant
from runs.models import Run, RunEvent
from runs.receipts import Receipt, receipt_matches
from runs.resolutions import (
    Complete,
    Fail,
    FeeAboveMinimum,
    LedgerDisagrees,
    ReceiptNotVerified,
    Resolution,
)

logger = logging.getLogger(__name__)

Event = RunEvent.Kind
RunId = str | uuid.UUID

# Reason codes of the failures this module decides itself, and what the tenant reads for
# them: error.detail is public, so it never carries a receipt's content (which may name
# another tenant); the full reasons stay in the run's history and the logs.
QUEUE_TIMEOUT = "QUEUE_TIMEOUT"
RECEIPT_INVALID = "RECEIPT_INVALID"
RECEIPT_INVALID_DETAIL = (
    "The run's result could not be verified. An operator is reviewing it; until then "
    "only the reservation is held."
)
AUDIT_RESOLVED = "AUDIT_RESOLVED"
AUDIT_RESOLVED_DETAIL = "An operator reviewed the run and closed it without a result."
# The reason code of every CANCELED run.
CANCELED = "CANCELED"

_DETAIL_MAX_CHARS = 500


@dataclass(frozen=True)
class Lease:
    """A claimed run and the token that proves the claim; every later step presents it."""

    run: Run
    token: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True)
class Completed:
    """The result is stored (its receipt written); the run is charged ``charge_micros``."""

    charge_micros: int
    result_key: str
    result_sha256: str
    result_size: int

    @classmethod
    def from_receipt(cls, receipt: Receipt) -> Completed:
        """The outcome a receipt proves; check it with ``receipt_matches`` first."""
        if receipt.charge_micros is None:
            raise ValueError(f"receipt {receipt.key} states no charge")
        return cls(
            charge_micros=receipt.charge_micros,
            result_key=receipt.key,
            result_sha256=receipt.body_sha256,
            result_size=receipt.size,
        )


@dataclass(frozen=True)
class Failed:
    """The run failed for ``reason_code``; it is charged its minimum fee."""

    reason_code: str
    detail: str


@dataclass(frozen=True)
class Canceled:
    """A cancel was requested while the run was processing: it ends CANCELED, charged its
    minimum fee (a worker was busy with it), never more."""

    detail: str


Outcome = Completed | Failed | Canceled


class Renewal(StrEnum):
    """What a worker's lease renewal found."""

    HELD = "held"
    """The lease is this worker's and runs another TTL."""
    CANCEL_REQUESTED = "cancel_requested"
    """The lease is still this worker's, but the run is to be canceled: stop, finalize it
    as ``Canceled``. The lease is not renewed."""
    LOST = "lost"
    """The run is no longer under this lease: write nothing more."""


@transaction.atomic(savepoint=False)
def _transition(
    run_id: RunId,
    event: str,
    *,
    guard: Q,
    changes: dict[str, Any],
    now: datetime,
    lease_token: RunId | None = None,
    detail: str = "",
) -> bool:
    """The one compare-and-set primitive: UPDATE … WHERE id AND guard, then its event.

    Nested in the caller's transaction without a savepoint: a transition and the money
    that belongs to it commit or roll back together.
    """
    won = Run.objects.filter(guard, id=run_id).update(
        **changes, version=F("version") + 1, updated_at=now
    )
    if won:
        _record(run_id, event, lease_token=lease_token, detail=detail, now=now)
    return bool(won)


def _record(
    run_id: RunId, event: str, *, lease_token: RunId | None, detail: str, now: datetime
) -> None:
    # The attempt is read from the row as this transaction left it, never from a copy
    # the caller may hold.
    RunEvent.objects.create(
        run_id=run_id,
        kind=event,
        attempt=Subquery(Run.objects.filter(id=run_id).values("attempts")[:1]),
        lease_token=lease_token,
        detail=detail[:_DETAIL_MAX_CHARS],
        created_at=now,
    )


# --- API --------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def submit(
    *,
    tenant: Tenant,
    idempotency_key: str,
    fingerprint: str,
    pack_type: str,
    inputs: dict[str, Any],
    reserved_micros: int,
    timebox_sec: int,
    min_reliability_score: float,
    client_trace_id: str,
    traceparent: str,
    retention_days: int,
) -> Run:
    """(new) → QUEUED/RESERVED with its RESERVE, in one transaction.

    ``published_at`` is the moment the caller hands the run to the broker, right after
    commit: the QUEUED row is the outbox, and the requeue scan republishes a run whose
    publish never reached a worker.
    """
    now = timezone.now()
    run = Run.objects.create(
        tenant=tenant,
        pack_type=pack_type,
        inputs=inputs,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        reserved_micros=reserved_micros,
        minimum_fee_micros=minimum_fee(reserved_micros),
        timebox_sec=timebox_sec,
        min_reliability_score=min_reliability_score,
        client_trace_id=client_trace_id,
        traceparent=traceparent,
        retention_until=now + timedelta(days=retention_days),
        published_at=now,
    )
    billing.reserve(run=run, amount_micros=reserved_micros)
    _record(run.id, Event.SUBMITTED, lease_token=None, detail="", now=run.updated_at)
    context.update(run_id=str(run.id))
    return run


# --- Worker -----------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def claim(*, run_id: RunId) -> Lease | None:
    """QUEUED → PROCESSING under a new lease, or None when the run is not QUEUED.

    SQS delivers at least once; None means a duplicate delivery (or a run the reaper
    settled): acknowledge the message and do nothing. That is what makes execution
    effectively once.
    """
    token = uuid.uuid4()
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.DPP_LEASE_TTL_SEC)
    claimed = _transition(
        run_id,
        Event.CLAIMED,
        guard=Q(status=Run.Status.QUEUED, money_state=Run.MoneyState.RESERVED),
        changes={
            "status": Run.Status.PROCESSING,
            "lease_token": token,
            "lease_expires_at": expires_at,
            "attempts": F("attempts") + 1,
            "started_at": now,
        },
        now=now,
        lease_token=token,
    )
    if not claimed:
        return None
    metrics.WORKER_HEARTBEAT.set_to_current_time()
    return Lease(run=Run.objects.get(id=run_id), token=token, expires_at=expires_at)


def extend_lease(*, run_id: RunId, lease_token: RunId) -> Renewal:
    """Push the lease TTL seconds ahead, unless the lease is lost or a cancel is pending.

    One UPDATE while the run goes on; the read that tells a cancel from a lost lease is
    made only when it matched nothing.
    """
    now = timezone.now()
    extended = _transition(
        run_id,
        Event.LEASE_EXTENDED,
        guard=Q(
            status=Run.Status.PROCESSING,
            lease_token=lease_token,
            cancel_requested_at__isnull=True,
        ),
        changes={"lease_expires_at": now + timedelta(seconds=settings.DPP_LEASE_TTL_SEC)},
        now=now,
        lease_token=lease_token,
    )
    if extended:
        metrics.WORKER_HEARTBEAT.set_to_current_time()
        return Renewal.HELD
    if cancel_requested(run_id=run_id, lease_token=lease_token):
        return Renewal.CANCEL_REQUESTED
    return Renewal.LOST


def cancel_requested(*, run_id: RunId, lease_token: RunId) -> bool:
    """Is the run still under this lease, with a cancel to honour? (A read, no transition.)"""
    return Run.objects.filter(
        id=run_id,
        status=Run.Status.PROCESSING,
        lease_token=lease_token,
        cancel_requested_at__isnull=False,
    ).exists()


@transaction.atomic(savepoint=False)
def finalize(
    *,
    run_id: RunId,
    lease_token: RunId,
    outcome: Outcome,
    expired_before: datetime | None = None,
) -> bool:
    """PROCESSING → COMPLETED, FAILED or CANCELED and the SETTLE transfer, in one transaction.

    Completed charges ``outcome.charge_micros``; Failed and Canceled charge the run's
    minimum fee. A run with a cancel request can only end Canceled, and only such a run
    can: whichever of the worker's finish and the tenant's cancel commits first decides.
    ``expired_before`` (the reaper's) also requires the lease to have expired before that
    instant, so a worker that renewed it in the meantime keeps its run.
    False when the CAS is lost (the lease was taken or renewed, a cancel was requested,
    or the run flagged AUDIT_REQUIRED): nothing is written, and a receipt already stored
    is left for the audit and the retention purge.
    """
    now = timezone.now()
    canceling = isinstance(outcome, Canceled)
    if canceling:
        status = Run.Status.CANCELED
        changes: dict[str, Any] = {
            "status": status,
            "actual_cost_micros": F("minimum_fee_micros"),
            "error_reason_code": CANCELED,
            "error_detail": outcome.detail[:_DETAIL_MAX_CHARS],
        }
        detail = status
    elif isinstance(outcome, Completed):
        status = Run.Status.COMPLETED
        changes = {
            "status": status,
            "actual_cost_micros": outcome.charge_micros,
            "result_key": outcome.result_key,
            "result_sha256": outcome.result_sha256,
            "result_size": outcome.result_size,
        }
        detail = status
    else:
        status = Run.Status.FAILED
        changes = {
            "status": status,
            "actual_cost_micros": F("minimum_fee_micros"),
            "error_reason_code": outcome.reason_code[:64],
            "error_detail": outcome.detail[:_DETAIL_MAX_CHARS],
        }
        detail = f"{status} {outcome.reason_code}"
    guard = Q(
        status=Run.Status.PROCESSING,
        lease_token=lease_token,
        money_state=Run.MoneyState.RESERVED,
        cancel_requested_at__isnull=not canceling,
    )
    if expired_before is not None:
        guard &= Q(lease_expires_at__lt=expired_before)
    won = _transition(
        run_id,
        Event.FINALIZED,
        guard=guard,
        changes={**changes, "money_state": Run.MoneyState.SETTLED, "completed_at": now},
        now=now,
        lease_token=lease_token,
        detail=detail,
    )
    if not won:
        logger.warning(
            "finalize lost the compare-and-set; the run is no longer under this lease",
            extra={"run_id": str(run_id), "outcome": type(outcome).__name__},
        )
        return False
    run = Run.objects.only(
        "id", "tenant_id", "pack_type", "reserved_micros", "actual_cost_micros", "started_at"
    ).get(id=run_id)
    _settle(run, charge_micros=run.actual_cost_micros, outcome=status)
    transaction.on_commit(lambda: _count_finished(run, status=status, now=now))
    logger.info(
        "run finalized",
        extra={
            "run_id": str(run_id),
            "status": status,
            "charge_usd_micros": run.actual_cost_micros,
            "reason_code": getattr(outcome, "reason_code", ""),
        },
    )
    return True


def _settle(run: Run, *, charge_micros: int, outcome: str) -> None:
    finalized = billing.settle(run=run, charge_micros=charge_micros, outcome=outcome)
    if finalized.result != billing.Finalization.POSTED:
        # The CAS proved the run RESERVED, so the ledger should not know a finalization:
        # keep the run's transition and let the audit flag the disagreement for a person.
        logger.error(
            "the ledger had already finalized a run that was still RESERVED",
            extra={"run_id": str(run.id), "ledger_result": finalized.result},
        )


def _count_finished(run: Run, *, status: str, now: datetime) -> None:
    """Once committed: the run's terminal state and its claim → finish duration."""
    metrics.RUNS.labels(pack_type=run.pack_type, status=status).inc()
    if run.started_at is not None:
        metrics.RUN_DURATION.labels(pack_type=run.pack_type, status=status).observe(
            (now - run.started_at).total_seconds()
        )


# --- Reaper -----------------------------------------------------------------------------


def requeue(*, run_id: RunId, lease_token: RunId, now: datetime) -> bool:
    """PROCESSING → QUEUED, only while the lease is still the expired one the reaper saw.

    ``published_at`` moves with the transition: the caller publishes right after, and the
    requeue scan (another reaper's, too) must not take the run for a stale one meanwhile.
    """
    return _transition(
        run_id,
        Event.REQUEUED,
        guard=Q(
            status=Run.Status.PROCESSING,
            money_state=Run.MoneyState.RESERVED,
            lease_token=lease_token,
            lease_expires_at__lt=now,
            cancel_requested_at__isnull=True,
        ),
        changes={
            "status": Run.Status.QUEUED,
            "lease_token": None,
            "lease_expires_at": None,
            "published_at": now,
        },
        now=now,
        lease_token=lease_token,
        detail="lease expired without a receipt",
    )


def republish(*, run_id: RunId, published_at: datetime, now: datetime) -> bool:
    """A QUEUED run nobody claimed is handed to the broker again.

    Guarded by the ``published_at`` the scan read, so of two reapers only one publishes.
    """
    return _transition(
        run_id,
        Event.REPUBLISHED,
        guard=Q(status=Run.Status.QUEUED, published_at=published_at),
        changes={"published_at": now},
        now=now,
    )


@transaction.atomic(savepoint=False)
def time_out_queued(*, run_id: RunId, now: datetime) -> bool:
    """QUEUED → FAILED ``QUEUE_TIMEOUT`` with a VOID: a run that never started costs nothing."""
    won = _transition(
        run_id,
        Event.QUEUE_TIMED_OUT,
        guard=Q(status=Run.Status.QUEUED, money_state=Run.MoneyState.RESERVED),
        changes={
            "status": Run.Status.FAILED,
            "money_state": Run.MoneyState.REFUNDED,
            "actual_cost_micros": 0,
            "error_reason_code": QUEUE_TIMEOUT,
            "error_detail": "No worker claimed the run before the queue timeout.",
            "completed_at": now,
        },
        now=now,
        detail=f"{Run.Status.FAILED} {QUEUE_TIMEOUT} (refunded)",
    )
    if won:
        run = Run.objects.only("id", "tenant_id", "pack_type", "started_at").get(id=run_id)
        billing.void(run=run, outcome=Run.Status.FAILED)
        transaction.on_commit(lambda: _count_finished(run, status=Run.Status.FAILED, now=now))
    return won


def flag_invalid_receipt(
    *, run_id: RunId, lease_token: RunId, reasons: list[str], now: datetime
) -> bool:
    """A receipt that does not match its run: money stays reserved until a person decides.

    Like every reaper step it acts only on the lease it judged, still expired at ``now``:
    a worker that renewed it in the meantime keeps its run. ``reasons`` go to the run's
    history (the admin), the tenant reads ``RECEIPT_INVALID_DETAIL``.
    """
    detail = "; ".join(reasons)
    return _transition(
        run_id,
        Event.AUDIT_FLAGGED,
        guard=Q(
            status=Run.Status.PROCESSING,
            money_state=Run.MoneyState.RESERVED,
            lease_token=lease_token,
            lease_expires_at__lt=now,
            cancel_requested_at__isnull=True,
        ),
        changes={
            "money_state": Run.MoneyState.AUDIT_REQUIRED,
            "error_reason_code": RECEIPT_INVALID,
            "error_detail": RECEIPT_INVALID_DETAIL,
        },
        now=now,
        lease_token=lease_token,
        detail=detail,
    )


def flag_for_audit(*, run_id: RunId, detail: str) -> bool:
    """Any run an audit invariant names; False when it was flagged already."""
    return _transition(
        run_id,
        Event.AUDIT_FLAGGED,
        guard=~Q(money_state=Run.MoneyState.AUDIT_REQUIRED),
        changes={"money_state": Run.MoneyState.AUDIT_REQUIRED},
        now=timezone.now(),
        detail=detail,
    )


def mark_result_purged(*, run_id: RunId, now: datetime) -> bool:
    """The result object is deleted; the run row and its money stay."""
    return _transition(
        run_id,
        Event.RESULT_PURGED,
        guard=Q(result_purged_at__isnull=True),
        changes={"result_purged_at": now},
        now=now,
    )


# --- Cancel (tenants through the API, operators through the admin) ----------------------


@transaction.atomic(savepoint=False)
def cancel_queued(*, run_id: RunId, actor: str, now: datetime) -> bool:
    """QUEUED → CANCELED with a VOID of the whole reservation: it never started, it costs
    nothing. Loses to a claim (the run is then PROCESSING) and to the queue timeout."""
    won = _transition(
        run_id,
        Event.CANCELED,
        guard=Q(status=Run.Status.QUEUED, money_state=Run.MoneyState.RESERVED),
        changes={
            "status": Run.Status.CANCELED,
            "money_state": Run.MoneyState.REFUNDED,
            "actual_cost_micros": 0,
            "cancel_requested_at": now,
            "error_reason_code": CANCELED,
            "error_detail": f"Canceled by {actor} before it started.",
            "completed_at": now,
        },
        now=now,
        detail=f"{Run.Status.CANCELED} by {actor} (refunded)",
    )
    if won:
        run = Run.objects.only("id", "tenant_id", "pack_type", "started_at").get(id=run_id)
        billing.void(run=run, outcome=Run.Status.CANCELED)
        transaction.on_commit(lambda: _count_finished(run, status=Run.Status.CANCELED, now=now))
    return won


def request_cancel(*, run_id: RunId, actor: str, now: datetime) -> bool:
    """PROCESSING → PROCESSING with ``cancel_requested_at``: from now on the run can only
    end CANCELED (see ``finalize``). Its worker stops at the next renewal of its lease; the
    reaper cancels it if the lease lapses first. False if the run is not (or no longer)
    processing, or a cancel was requested already."""
    return _transition(
        run_id,
        Event.CANCEL_REQUESTED,
        guard=Q(
            status=Run.Status.PROCESSING,
            money_state=Run.MoneyState.RESERVED,
            cancel_requested_at__isnull=True,
        ),
        changes={"cancel_requested_at": now},
        now=now,
        detail=f"by {actor}",
    )


# --- Operators --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """Where an audit resolution left the run, and what it charged."""

    status: str
    money_state: str
    charged_micros: int


@transaction.atomic(savepoint=False)
def resolve(*, run_id: RunId, resolution: Resolution, actor: str, note: str) -> Resolved | None:
    """AUDIT_REQUIRED → an operator's outcome and its money, in one transaction.

    ``Complete`` verifies the receipt against the locked row (``receipt_matches``) and
    ends COMPLETED with its result, charged the receipt's charge; ``Fail`` ends FAILED,
    charged at most the minimum fee; ``Refund`` voids the reservation (an unfinished run
    ends FAILED). A run the ledger already finalized keeps that transfer, so the outcome
    must agree with it. ``ResolutionRefused`` rolls everything back; None means the run
    is not (or no longer) flagged. A run whose tenant asked to cancel it ends CANCELED
    instead of FAILED.
    """
    # Lock the row first: the money below depends on the run still being flagged, and a
    # second operator must wait for this decision instead of writing a second one.
    locked = (
        Run.objects.select_for_update()
        .filter(id=run_id, money_state=Run.MoneyState.AUDIT_REQUIRED)
        .first()
    )
    if locked is None:
        return None
    now = timezone.now()
    changes, kind, charge = _resolution_changes(locked, resolution, now=now)
    outcome = changes["status"]
    if kind == Transfer.Kind.SETTLE:
        finalized = billing.settle(run=locked, charge_micros=charge, outcome=outcome)
    else:
        finalized = billing.void(run=locked, outcome=outcome)
    if finalized.result != billing.Finalization.POSTED and (
        finalized.transfer.kind,
        finalized.charged_micros,
    ) != (kind, charge):
        raise LedgerDisagrees(
            locked.id,
            kind=finalized.transfer.kind,
            amount_micros=finalized.transfer.amount_micros,
            transfer_id=finalized.transfer.pk,
        )
    money_state = (
        Run.MoneyState.SETTLED if kind == Transfer.Kind.SETTLE else Run.MoneyState.REFUNDED
    )
    _transition(
        locked.id,
        Event.RESOLVED,
        guard=Q(money_state=Run.MoneyState.AUDIT_REQUIRED),
        changes={**changes, "money_state": money_state, "actual_cost_micros": charge},
        now=now,
        detail=f"{changes['status']} {money_state} ${micros_to_usd(charge)} by {actor}: {note}",
    )
    return Resolved(status=changes["status"], money_state=money_state, charged_micros=charge)


def _resolution_changes(
    run: Run, resolution: Resolution, *, now: datetime
) -> tuple[dict[str, Any], str, int]:
    """The run's new fields, the finalizing transfer's kind and the charge of an outcome."""
    completed_at = run.completed_at or now
    if isinstance(resolution, Complete):
        reasons = receipt_matches(run, resolution.receipt)
        if reasons:
            raise ReceiptNotVerified(run.id, reasons)
        completed = Completed.from_receipt(resolution.receipt)
        changes = {
            "status": Run.Status.COMPLETED,
            "result_key": completed.result_key,
            "result_sha256": completed.result_sha256,
            "result_size": completed.result_size,
            "error_reason_code": "",
            "error_detail": "",
            "completed_at": completed_at,
            # The operator's verified result stands over a cancel request (its event stays).
            "cancel_requested_at": None,
        }
        return changes, Transfer.Kind.SETTLE, completed.charge_micros
    if isinstance(resolution, Fail):
        fee = require_micros(resolution.fee_micros, name="fee_micros")
        if not 0 <= fee <= run.minimum_fee_micros:
            raise FeeAboveMinimum(run.id, fee, run.minimum_fee_micros)
        return _failed(run, completed_at), Transfer.Kind.SETTLE, fee
    if run.status == Run.Status.COMPLETED:
        # A refunded result stays the tenant's: only the charge goes.
        return {"status": run.status, "completed_at": completed_at}, Transfer.Kind.VOID, 0
    return _failed(run, completed_at), Transfer.Kind.VOID, 0


def _failed(run: Run, completed_at: datetime) -> dict[str, Any]:
    """FAILED — CANCELED if its tenant asked for that — keeping the reason the run already
    gives its tenant, if any."""
    if run.cancel_requested_at is not None:
        changes: dict[str, Any] = {"status": Run.Status.CANCELED, "completed_at": completed_at}
        if not run.error_reason_code:
            changes |= {"error_reason_code": CANCELED, "error_detail": AUDIT_RESOLVED_DETAIL}
        return changes
    changes = {"status": Run.Status.FAILED, "completed_at": completed_at}
    if not run.error_reason_code:
        changes |= {"error_reason_code": AUDIT_RESOLVED, "error_detail": AUDIT_RESOLVED_DETAIL}
    return changes
