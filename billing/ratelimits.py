"""Rate-limit policies come from the tenant's plan (the limiter itself lives in dpp)."""

from django.conf import settings

from billing.models import Account, Plan
from dpp.models import Tenant
from dpp.ratelimit import PlanLimits, Policy

WINDOW_SEC = 60


def limits_for(tenant: Tenant | None) -> PlanLimits:
    """The ``submit`` and ``poll`` policies of the tenant's current plan, read per request
    so that a plan change applies to the very next request. Callers without a valid key
    are counted per client address under the default plan."""
    plan = None
    if tenant is not None:
        account = Account.objects.select_related("plan").filter(tenant=tenant).first()
        plan = account.plan if account else None
    plan = plan or Plan.objects.filter(name=settings.DPP_DEFAULT_PLAN).first()
    submit, poll = (plan.submit_per_minute, plan.poll_per_minute) if plan else (0, 0)
    return PlanLimits(
        plan=plan.name if plan else "",
        policies={
            "submit": Policy("submit", submit, WINDOW_SEC),
            "poll": Policy("poll", poll, WINDOW_SEC),
        },
    )
