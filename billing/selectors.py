"""Reads of the ledger shared by the API, the CLI, the admin and the runs app."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db.models import Case, F, Q, QuerySet, Sum, When
from django.db.models.functions import Coalesce

from billing.errors import AccountNotFound
from billing.models import Account, Plan, Transfer
from billing.money import micros_to_usd

if TYPE_CHECKING:
    from dpp.models import Tenant


def account_for_tenant(*, tenant: Tenant) -> Account:
    """The tenant's account with its plan (one query), or AccountNotFound."""
    try:
        return Account.objects.select_related("plan").get(tenant=tenant)
    except Account.DoesNotExist as exc:
        raise AccountNotFound(tenant.pk) from exc


def plan_summary(*, plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "submit_per_minute": plan.submit_per_minute,
        "poll_per_minute": plan.poll_per_minute,
        "max_concurrent_runs": plan.max_concurrent_runs,
        "max_cost_per_run_usd": micros_to_usd(plan.max_cost_per_run_micros),
        "allowed_pack_types": list(plan.allowed_pack_types),
        "retention_days": plan.retention_days,
    }


def budget_summary(*, account: Account) -> dict[str, Any]:
    """The ``GET /v1/budget`` document: balances as six-place USD strings, and the plan.

    ``spent`` is everything posted (settled charges and debit adjustments); ``credited``
    is everything credited (top-ups and credit adjustments).
    """
    return {
        "available_usd": micros_to_usd(account.available_micros),
        "reserved_usd": micros_to_usd(account.debits_pending),
        "spent_usd": micros_to_usd(account.debits_posted),
        "credited_usd": micros_to_usd(account.credits_posted),
        "currency": "USD",
        "plan": plan_summary(plan=account.plan),
    }


def balances_from_transfers(*, account: Account) -> dict[str, int]:
    """What the account's three columns should be, recomputed from its transfers alone.

    Two aggregate queries. A finalization (SETTLE or VOID) releases its run's whole
    reservation, so pending is the sum of the reservations that have none.
    """
    transfers = Transfer.objects.filter(account=account)
    finalized = Q(
        run__transfers__kind__in=[Transfer.Kind.SETTLE, Transfer.Kind.VOID],
    )
    totals = transfers.aggregate(
        credits=Coalesce(
            Sum(
                "amount_micros",
                filter=Q(kind=Transfer.Kind.TOPUP)
                | Q(kind=Transfer.Kind.ADJUST, amount_micros__gt=0),
            ),
            0,
        ),
        debits=Coalesce(
            Sum(
                Case(
                    When(kind=Transfer.Kind.SETTLE, then=F("amount_micros")),
                    When(kind=Transfer.Kind.ADJUST, amount_micros__lt=0, then=-F("amount_micros")),
                    default=0,
                )
            ),
            0,
        ),
    )
    pending = (
        transfers.filter(kind=Transfer.Kind.RESERVE)
        .exclude(finalized)
        .aggregate(total=Coalesce(Sum("amount_micros"), 0))["total"]
    )
    return {
        "credits_posted": totals["credits"],
        "debits_posted": totals["debits"],
        "debits_pending": pending,
    }


def lock_account(*, tenant: Tenant) -> Account:
    """The tenant's account row, locked until the caller's transaction ends.

    Serialises a tenant's submissions where a check must see every earlier one (the
    in-flight runs cap); the reservation itself needs no lock.
    """
    try:
        return Account.objects.select_for_update().select_related("plan").get(tenant=tenant)
    except Account.DoesNotExist as exc:
        raise AccountNotFound(tenant.pk) from exc


def transfers_for_account(
    *,
    account: Account,
    kind: str | None = None,
    run_id: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Transfer]:
    """The account's statement, newest first: the order the transfers moved its balance."""
    transfers = Transfer.objects.filter(account=account).order_by("-id")
    if kind:
        transfers = transfers.filter(kind=kind)
    if run_id:
        transfers = transfers.filter(run_id=run_id)
    if created_after:
        transfers = transfers.filter(created_at__gt=created_after)
    if created_before:
        transfers = transfers.filter(created_at__lt=created_before)
    return transfers
