"""Every write to runs: submission here; claim, heartbeat, receipt and finalize follow.

Money moves only through ``billing.services``, inside the same transaction as the run
transition it belongs to.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing import services as billing
from billing.fees import minimum_fee
from billing.money import require_micros
from billing.ratelimit_policies import plan_policies
from billing.selectors import account_for_tenant, lock_account
from dpp import context, metrics
from dpp.kill_switch import submissions_paused
from dpp.models import Tenant
from dpp.ratelimit.errors import ConcurrencyExceeded
from runs.errors import (
    CostLimitExceeded,
    IdempotencyKeyReused,
    InvalidInputs,
    PackNotAllowed,
    ReservationBelowEstimate,
    SubmissionsPaused,
)
from runs.models import Run, RunEvent
from runs.packs.base import ExecutionContext
from runs.packs.errors import PackExecutionError, PackValidationError
from runs.packs.registry import get_pack
from runs.receipts import Receipt, write_receipt
from runs.selectors import in_flight_count, run_by_idempotency_key
from runs.timebox import TimeboxExceeded, timebox

logger = logging.getLogger(__name__)

EXECUTE_TASK = "runs.execute_run"
# A submit must not hang on a sick broker: try briefly, then leave it to the requeue scan.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


@dataclass(frozen=True)
class Submission:
    """What the client asked for, already parsed into integer micros."""

    pack_type: str
    inputs: dict[str, Any]
    max_cost_micros: int
    timebox_sec: int
    min_reliability_score: float
    client_trace_id: str = ""


@dataclass(frozen=True)
class SubmitOutcome:
    run: Run
    replayed: bool


def submit_run(
    *,
    tenant: Tenant,
    idempotency_key: str,
    fingerprint: str,
    submission: Submission,
    traceparent: str = "",
) -> SubmitOutcome:
    """Create a QUEUED run and reserve its ``max_cost`` in one transaction, or replay.

    Every check that can reject the request runs before the first write, so a rejected
    submit writes nothing and bills nothing. The unique (tenant, idempotency_key)
    constraint makes concurrent duplicates collapse onto one run.
    """
    if submissions_paused():
        # Ahead of the replay lookup and every write: a paused submit reserves nothing and
        # leaves its key unused, so the same request succeeds once submissions resume.
        raise SubmissionsPaused(retry_after=settings.DPP_SUBMISSIONS_PAUSED_RETRY_AFTER_SEC)
    existing = run_by_idempotency_key(tenant=tenant, idempotency_key=idempotency_key)
    if existing is not None:
        return _replay(existing, fingerprint)

    account = account_for_tenant(tenant=tenant)
    pack = get_pack(submission.pack_type)
    if submission.pack_type not in account.plan.allowed_pack_types:
        raise PackNotAllowed(pack_type=submission.pack_type, plan=account.plan.name)
    try:
        pack.validate(submission.inputs)
    except PackValidationError as exc:
        raise InvalidInputs(exc.errors) from exc
    if submission.max_cost_micros > account.plan.max_cost_per_run_micros:
        raise CostLimitExceeded(
            requested_micros=submission.max_cost_micros,
            limit_micros=account.plan.max_cost_per_run_micros,
        )
    estimate = pack.estimate_cost(submission.inputs)
    if submission.max_cost_micros < estimate:
        raise ReservationBelowEstimate(
            reserved_micros=submission.max_cost_micros, estimate_micros=estimate
        )

    try:
        run = _create_reserved_run(
            tenant=tenant,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            submission=submission,
            retention_days=account.plan.retention_days,
            traceparent=traceparent,
        )
    except IntegrityError:
        # A concurrent request with the same key won the insert; answer as its replay.
        existing = run_by_idempotency_key(tenant=tenant, idempotency_key=idempotency_key)
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    transaction.on_commit(lambda: publish_run(run_id=run.id))
    return SubmitOutcome(run=run, replayed=False)


@transaction.atomic
def _create_reserved_run(
    *,
    tenant: Tenant,
    idempotency_key: str,
    fingerprint: str,
    submission: Submission,
    retention_days: int,
    traceparent: str,
) -> Run:
    account = lock_account(tenant=tenant)
    concurrency = plan_policies(account.plan).concurrency
    in_flight = in_flight_count(tenant=tenant)
    if in_flight >= concurrency.quota:
        raise ConcurrencyExceeded(policy=concurrency, in_flight=in_flight)
    run = Run.objects.create(
        tenant=tenant,
        pack_type=submission.pack_type,
        inputs=submission.inputs,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        reserved_micros=submission.max_cost_micros,
        minimum_fee_micros=minimum_fee(submission.max_cost_micros),
        timebox_sec=submission.timebox_sec,
        min_reliability_score=submission.min_reliability_score,
        client_trace_id=submission.client_trace_id,
        traceparent=traceparent,
        retention_until=timezone.now() + timedelta(days=retention_days),
    )
    billing.reserve(run=run, amount_micros=submission.max_cost_micros)
    context.update(run_id=str(run.id))
    return run


def _replay(run: Run, fingerprint: str) -> SubmitOutcome:
    if run.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused
    context.update(run_id=str(run.id))
    return SubmitOutcome(run=run, replayed=True)


def publish_run(*, run_id: uuid.UUID) -> bool:
    """Publish the execute task. The runs table is the outbox: on failure the run stays
    QUEUED and the reaper's requeue scan publishes it later, so this never raises."""
    # Through the task object, not send_task by name: the Celery instrumentation ends its
    # publish span (and detaches it) only for a task registered in this process.
    from runs.tasks import execute_run as execute_task

    try:
        execute_task.apply_async(args=[str(run_id)], retry=True, retry_policy=_PUBLISH_RETRY)
    except Exception:
        logger.warning(
            "publish failed; the run stays QUEUED for the requeue scan",
            exc_info=True,
            extra={"run_id": str(run_id)},
        )
        return False
    Run.objects.filter(id=run_id, status=Run.Status.QUEUED).update(published_at=timezone.now())
    return True


# --- Execution (DESIGN.md §2): claim, heartbeat, execute, receipt, finalize -------------
# Each step is one compare-and-set on (id, status[, lease_token]) with version + 1, so a
# worker, a duplicate delivery and the reaper can race on a run and only one of them wins.

PACK_ERROR = "PACK_ERROR"
TIMEBOX_EXCEEDED = "TIMEBOX_EXCEEDED"
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


Outcome = Completed | Failed


def record_event(
    *, run: Run, kind: str, lease_token: uuid.UUID | str | None = None, detail: str = ""
) -> RunEvent:
    """Append to the run's lease history, inside the caller's transition transaction."""
    return RunEvent.objects.create(
        run_id=run.id,
        kind=kind,
        attempt=run.attempts,
        lease_token=lease_token,
        detail=detail[:500],
    )


@transaction.atomic
def claim_run(*, run_id: uuid.UUID | str) -> Lease | None:
    """QUEUED → PROCESSING under a new lease, or None when the run is not QUEUED.

    SQS delivers at least once; None means a duplicate delivery (or a run the reaper
    settled): acknowledge the message and do nothing. That is what makes execution
    effectively once.
    """
    token = uuid.uuid4()
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.DPP_LEASE_TTL_SEC)
    claimed = Run.objects.filter(
        id=run_id, status=Run.Status.QUEUED, money_state=Run.MoneyState.RESERVED
    ).update(
        status=Run.Status.PROCESSING,
        lease_token=token,
        lease_expires_at=expires_at,
        attempts=F("attempts") + 1,
        started_at=now,
        updated_at=now,
        version=F("version") + 1,
    )
    if not claimed:
        return None
    run = Run.objects.get(id=run_id)
    record_event(run=run, kind=RunEvent.Kind.CLAIMED, lease_token=token)
    metrics.WORKER_HEARTBEAT.set_to_current_time()
    return Lease(run=run, token=token, expires_at=expires_at)


def extend_lease(*, run_id: uuid.UUID | str, lease_token: uuid.UUID | str) -> bool:
    """Push the lease TTL seconds ahead; False when the lease is no longer ours."""
    now = timezone.now()
    extended = Run.objects.filter(
        id=run_id, status=Run.Status.PROCESSING, lease_token=lease_token
    ).update(
        lease_expires_at=now + timedelta(seconds=settings.DPP_LEASE_TTL_SEC),
        updated_at=now,
        version=F("version") + 1,
    )
    if extended:
        metrics.WORKER_HEARTBEAT.set_to_current_time()
    return bool(extended)


@transaction.atomic
def finalize_run(
    *,
    run_id: uuid.UUID | str,
    lease_token: uuid.UUID | str,
    outcome: Outcome,
    expired_before: datetime | None = None,
) -> bool:
    """PROCESSING → COMPLETED or FAILED and the SETTLE transfer, in one transaction.

    Completed charges ``outcome.charge_micros``; Failed charges the run's minimum fee.
    ``expired_before`` (the reaper's) also requires the lease to have expired before that
    instant, so a worker that renewed it in the meantime keeps its run.
    False when the CAS is lost (the lease was taken or renewed, or the run flagged
    AUDIT_REQUIRED): nothing is written, and a receipt already stored is left for the
    audit and the retention purge.
    """
    now = timezone.now()
    if isinstance(outcome, Completed):
        changes: dict[str, Any] = {
            "status": Run.Status.COMPLETED,
            "actual_cost_micros": outcome.charge_micros,
            "result_key": outcome.result_key,
            "result_sha256": outcome.result_sha256,
            "result_size": outcome.result_size,
        }
    else:
        changes = {
            "status": Run.Status.FAILED,
            "actual_cost_micros": F("minimum_fee_micros"),
            "error_reason_code": outcome.reason_code[:64],
            "error_detail": outcome.detail[:_DETAIL_MAX_CHARS],
        }
    leased = Run.objects.filter(
        id=run_id,
        status=Run.Status.PROCESSING,
        lease_token=lease_token,
        money_state=Run.MoneyState.RESERVED,
    )
    if expired_before is not None:
        leased = leased.filter(lease_expires_at__lt=expired_before)
    won = leased.update(
        **changes,
        money_state=Run.MoneyState.SETTLED,
        completed_at=now,
        updated_at=now,
        version=F("version") + 1,
    )
    if not won:
        logger.warning(
            "finalize lost the compare-and-set; the run is no longer under this lease",
            extra={"run_id": str(run_id), "outcome": type(outcome).__name__},
        )
        return False
    run = Run.objects.only(
        "id",
        "tenant_id",
        "pack_type",
        "reserved_micros",
        "actual_cost_micros",
        "started_at",
        "attempts",
    ).get(id=run_id)
    billing.settle(run=run, charge_micros=run.actual_cost_micros)
    record_event(
        run=run,
        kind=RunEvent.Kind.FINALIZED,
        lease_token=lease_token,
        detail=f"{changes['status']} {getattr(outcome, 'reason_code', '')}".strip(),
    )
    status = changes["status"]
    transaction.on_commit(lambda: _count_finalized(run, status=status, now=now))
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


def _count_finalized(run: Run, *, status: str, now: datetime) -> None:
    """Once committed: the run's terminal state and its claim → finalize duration."""
    metrics.RUNS.labels(pack_type=run.pack_type, status=status).inc()
    if run.started_at is not None:
        metrics.RUN_DURATION.labels(pack_type=run.pack_type, status=status).observe(
            (now - run.started_at).total_seconds()
        )


def execute_run(*, run_id: uuid.UUID | str) -> None:
    """Claim, execute, store the receipt and finalize one run: the worker's task.

    Only the pack runs under the timebox; the receipt write and finalize cannot be
    interrupted by it. A crash between any two steps leaves a PROCESSING run whose lease
    expires, with or without a receipt, which is exactly what the reaper repairs.
    """
    lease = claim_run(run_id=run_id)
    if lease is None:
        logger.info(
            "run not claimable (duplicate delivery); acknowledged", extra={"run_id": str(run_id)}
        )
        return
    run = lease.run
    with context.bound(run_id=str(run.id), tenant_id=str(run.tenant_id)):
        with _Heartbeat(run_id=run.id, lease_token=lease.token):
            result = _run_pack(run)
        # Renewing is also the check that the lease is still ours, and it leaves a whole
        # TTL for the receipt and finalize before the reaper may judge the run.
        if not extend_lease(run_id=run.id, lease_token=lease.token):
            logger.warning("lease lost while the pack ran; the reaper owns the run now")
            return
        if isinstance(result, _PackOutput):
            receipt = write_receipt(
                run=run,
                lease_token=lease.token,
                body=result.body,
                charge_micros=result.charge_micros,
            )
            outcome: Outcome = Completed.from_receipt(receipt)
        else:
            outcome = result
        finalize_run(run_id=run.id, lease_token=lease.token, outcome=outcome)


@dataclass(frozen=True)
class _PackOutput:
    body: bytes
    charge_micros: int


def _run_pack(run: Run) -> _PackOutput | Failed:
    """Execute the pack under its timebox and turn every way it can end into a value."""
    ctx = ExecutionContext(
        run_id=str(run.id),
        reserved_micros=run.reserved_micros,
        min_reliability_score=run.min_reliability_score,
    )
    try:
        pack = get_pack(run.pack_type)
        started = time.monotonic()
        with timebox(run.timebox_sec):
            document, cost = pack.execute(run.inputs, ctx)
        # The alarm cannot preempt C code that holds on, nor run outside the main thread:
        # a result that arrives late is a timeout all the same.
        if time.monotonic() - started > run.timebox_sec:
            raise TimeboxExceeded
        return _PackOutput(body=_encode(document), charge_micros=_metered(cost, run))
    except TimeboxExceeded:
        return Failed(
            TIMEBOX_EXCEEDED, f"the pack did not finish within its timebox of {run.timebox_sec} s"
        )
    except PackExecutionError as exc:
        return Failed(exc.reason_code, exc.detail)
    except Exception as exc:
        # The stack goes to the log for operators; the client sees the class name only.
        logger.exception("pack crashed", extra={"pack_type": run.pack_type})
        return Failed(
            PACK_ERROR, f"the {run.pack_type} pack failed unexpectedly ({type(exc).__name__})"
        )


def _encode(document: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are not JSON, so they fail the run."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _metered(cost: Any, run: Run) -> int:
    """The pack's integer cost, capped at the reservation (DESIGN.md §2: never more)."""
    charge = require_micros(cost, name="a pack's cost")
    if charge < 0:
        raise ValueError(f"a pack's cost must not be negative, got {charge}")
    return min(charge, run.reserved_micros)


class _Heartbeat:
    """Extends the lease every TTL/3 from a daemon thread while the pack runs.

    The thread inherits the log context, uses its own database connection and closes it
    when it stops. A failed beat is retried at the next interval; a lost lease ends it.
    """

    def __init__(self, *, run_id: uuid.UUID, lease_token: uuid.UUID) -> None:
        self._run_id = run_id
        self._lease_token = lease_token
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._beat,),
            name=f"lease-heartbeat-{run_id}",
            daemon=True,
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.DPP_LEASE_TTL_SEC / 3):
                try:
                    held = extend_lease(run_id=self._run_id, lease_token=self._lease_token)
                except Exception:
                    logger.warning("heartbeat failed; retrying at the next beat", exc_info=True)
                    # Nothing in this thread runs Django's per-request connection cleanup:
                    # a dropped connection would fail every later beat and let the lease
                    # lapse under a live pack. Close it; the next beat reconnects.
                    connection.close()
                    continue
                if not held:
                    logger.warning("heartbeat found the lease taken; stopping")
                    return
        finally:
            connection.close()
