"""The budget API: ``GET /v1/budget`` for the caller's tenant."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.errors import AccountNotFound
from billing.selectors import account_for_tenant, budget_summary
from billing.serializers import BudgetSerializer
from dpp.openapi import problem_responses
from dpp.problems import ProblemError

BUDGET_EXAMPLE = OpenApiExample(
    "A pilot tenant with one run in flight",
    response_only=True,
    value={
        "available_usd": "8.950000",
        "reserved_usd": "1.000000",
        "spent_usd": "0.050000",
        "credited_usd": "10.000000",
        "currency": "USD",
        "plan": {
            "name": "pilot",
            "submit_per_minute": 60,
            "poll_per_minute": 600,
            "max_concurrent_runs": 20,
            "max_cost_per_run_usd": "5.000000",
            "allowed_pack_types": ["decision"],
            "retention_days": 30,
        },
    },
)


class BudgetApi(APIView):
    @extend_schema(
        operation_id="budget_retrieve",
        summary="Your budget and plan",
        description="Balances are six-place USD strings. `available_usd` is what a new "
        "run's `max_cost_usd` may reserve.",
        examples=[BUDGET_EXAMPLE],
        responses={200: BudgetSerializer, **problem_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request) -> Response:
        try:
            account = account_for_tenant(tenant=request.auth)
        except AccountNotFound as exc:
            # Every tenant is opened with an account; one without is an operator's mistake.
            raise ProblemError("not-found", str(exc)) from exc
        return Response(BudgetSerializer(budget_summary(account=account)).data)
