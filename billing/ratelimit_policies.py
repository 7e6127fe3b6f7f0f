"""The rate limit policies of a plan: billing owns the plans, ``dpp.ratelimit`` enforces them.

``tenant_policies`` is the provider named by ``settings.DPP_RATE_LIMIT_POLICIES``; runs
reads the ``concurrency`` cap through ``plan_policies`` inside the submit transaction;
``dpp_rate_limits_doc`` documents the seeded plans through ``plan_policies`` too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from django.conf import settings

from billing.models import Account, Plan
from billing.money import micros_to_usd
from dpp.ratelimit.docs import PlanRow
from dpp.ratelimit.policies import CONCURRENCY, POLL, SUBMIT, Policy, PolicySet

if TYPE_CHECKING:
    from dpp.models import Tenant

# Plans state their quotas per minute.
WINDOW_SEC = 60


def plan_policies(plan: Plan) -> PolicySet:
    return PolicySet(
        plan=plan.name,
        submit=Policy(SUBMIT, plan.submit_per_minute, WINDOW_SEC),
        poll=Policy(POLL, plan.poll_per_minute, WINDOW_SEC),
        concurrency=Policy(CONCURRENCY, plan.max_concurrent_runs),
    )


def tenant_policies(tenant: Tenant | None) -> PolicySet:
    """The policies of the tenant's current plan, read per request so that a plan change
    applies to the very next request. Callers without a valid key are counted per client
    address under the default plan."""
    plan = None
    if tenant is not None:
        account = Account.objects.select_related("plan").filter(tenant=tenant).first()
        plan = account.plan if account else None
    plan = plan or Plan.objects.filter(name=settings.DPP_DEFAULT_PLAN).first()
    # Without even the default plan (an operator removed it) nothing is allowed.
    return plan_policies(
        plan or Plan(name="", submit_per_minute=0, poll_per_minute=0, max_concurrent_runs=0)
    )


def seeded_plans() -> list[Plan]:
    """The plans the data migration seeds (unsaved), which docs/rate-limits.md documents."""
    seed = importlib.import_module("billing.migrations.0002_seed_plans")
    return [Plan(**values) for values in seed.PLANS]


def documented_plans() -> list[PlanRow]:
    return [
        PlanRow(
            policies=plan_policies(plan),
            terms={
                "max cost per run": f"${micros_to_usd(plan.max_cost_per_run_micros)}",
                "packs": ", ".join(plan.allowed_pack_types),
                "result retention": f"{plan.retention_days} days",
            },
        )
        for plan in seeded_plans()
    ]
