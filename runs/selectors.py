"""Reads of runs shared by the API, the workers and the reaper."""

import uuid

from django.db.models import QuerySet

from dpp.models import Tenant
from runs.errors import RunNotFound
from runs.models import Run


def runs_for_tenant(*, tenant: Tenant, status: str | None = None) -> QuerySet[Run]:
    runs = Run.objects.filter(tenant=tenant).order_by("-created_at", "-id")
    return runs.filter(status=status) if status else runs


def run_for_tenant(*, tenant: Tenant, run_id: str) -> Run:
    """The tenant's run; a malformed id and another tenant's run are the same 404."""
    try:
        parsed = uuid.UUID(str(run_id))
    except ValueError as exc:
        raise RunNotFound from exc
    run = Run.objects.filter(tenant=tenant, id=parsed).first()
    if run is None:
        raise RunNotFound
    return run


def run_by_idempotency_key(*, tenant: Tenant, idempotency_key: str) -> Run | None:
    return Run.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()


def in_flight_count(*, tenant: Tenant) -> int:
    return Run.objects.filter(
        tenant=tenant, status__in=[Run.Status.QUEUED, Run.Status.PROCESSING]
    ).count()


def audit_required_count() -> int:
    """Runs waiting for an operator's resolution (the ``run_money_state`` index counts
    them without reading the rest of the table)."""
    return Run.objects.filter(money_state=Run.MoneyState.AUDIT_REQUIRED).count()
