"""Submission: every check that can reject a run, then its first transition.

State changes themselves live in ``runs.lifecycle``; the worker's pipeline in
``runs.execution``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from billing.ratelimit_policies import plan_policies
from billing.selectors import account_for_tenant, lock_account
from dpp import context
from dpp.kill_switch import submissions_paused
from dpp.models import Tenant
from dpp.ratelimit.errors import ConcurrencyExceeded
from runs import lifecycle
from runs.errors import (
    CostLimitExceeded,
    IdempotencyKeyReused,
    InvalidInputs,
    PackNotAllowed,
    ReservationBelowEstimate,
    SubmissionsPaused,
)
from runs.models import Run
from runs.packs.errors import PackValidationError
from runs.packs.registry import get_pack
from runs.publishing import publish_run
from runs.selectors import in_flight_count, run_by_idempotency_key


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
    return lifecycle.submit(
        tenant=tenant,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        pack_type=submission.pack_type,
        inputs=submission.inputs,
        reserved_micros=submission.max_cost_micros,
        timebox_sec=submission.timebox_sec,
        min_reliability_score=submission.min_reliability_score,
        client_trace_id=submission.client_trace_id,
        traceparent=traceparent,
        retention_days=retention_days,
    )


def _replay(run: Run, fingerprint: str) -> SubmitOutcome:
    if run.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused
    context.update(run_id=str(run.id))
    return SubmitOutcome(run=run, replayed=True)
