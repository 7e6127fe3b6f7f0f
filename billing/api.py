"""The money API of the caller's tenant: ``GET /v1/budget``, its statement
``GET /v1/ledger`` and its usage ``GET /v1/usage``."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import usage
from billing.errors import AccountNotFound, InvalidQueryParameters
from billing.models import Account, Transfer
from billing.renderers import CsvRenderer
from billing.selectors import account_for_tenant, budget_summary, transfers_for_account
from billing.serializers import (
    BudgetSerializer,
    LedgerEntrySerializer,
    LedgerPageSerializer,
    LedgerQuery,
    UsageQuery,
    UsageSerializer,
)
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
        return Response(BudgetSerializer(budget_summary(account=_account(request))).data)


def _account(request: Request) -> Account:
    try:
        return account_for_tenant(tenant=request.auth)
    except AccountNotFound as exc:
        # Every tenant is opened with an account; one without is an operator's mistake.
        raise ProblemError("not-found", str(exc)) from exc


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    query = serializer_class(data=request.query_params)
    if not query.is_valid():
        raise InvalidQueryParameters(query.errors)
    return query.validated_data


CSV_RESPONSE = OpenApiResponse(
    {"type": "string"},
    description="With `Accept: text/csv`: the same rows as CSV, a header line first.",
)
LEDGER_COLUMNS = [
    "id",
    "kind",
    "amount_usd",
    "run_id",
    "reason",
    "created_at",
    "available_usd_after",
]
LEDGER_EXAMPLE = OpenApiExample(
    "A top-up, then a run reserved and settled",
    response_only=True,
    status_codes=["200"],
    media_type="application/json",
    value={
        "next": None,
        "previous": None,
        "results": [
            {
                "id": 3,
                "kind": "SETTLE",
                "amount_usd": "0.010100",
                "run_id": "0b6f6a52-3c0e-4a53-9a8c-0d1e7f2a4b11",
                "reason": "",
                "created_at": "2026-12-01T10:00:03.000000Z",
                "available_usd_after": "9.989900",
            },
            {
                "id": 2,
                "kind": "RESERVE",
                "amount_usd": "0.050000",
                "run_id": "0b6f6a52-3c0e-4a53-9a8c-0d1e7f2a4b11",
                "reason": "",
                "created_at": "2026-12-01T10:00:00.000000Z",
                "available_usd_after": "9.950000",
            },
            {
                "id": 1,
                "kind": "TOPUP",
                "amount_usd": "10.000000",
                "run_id": None,
                "reason": "PO 4711",
                "created_at": "2026-12-01T09:00:00.000000Z",
                "available_usd_after": "10.000000",
            },
        ],
    },
)
LEDGER_CSV_EXAMPLE = OpenApiExample(
    "The same statement as CSV",
    response_only=True,
    status_codes=["200"],
    media_type="text/csv",
    value="id,kind,amount_usd,run_id,reason,created_at,available_usd_after\r\n"
    "1,TOPUP,10.000000,,PO 4711,2026-12-01T09:00:00.000000Z,10.000000\r\n",
)


class StatementPagination(CursorPagination):
    ordering = ("-id",)
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100


class LedgerApi(APIView):
    renderer_classes = [JSONRenderer, CsvRenderer]
    csv_columns = LEDGER_COLUMNS

    @extend_schema(
        operation_id="ledger_list",
        summary="Your statement: every transfer, newest first",
        description="The transfers of your budget in the order they moved it, newest first, "
        'cursor-paginated like `GET /v1/runs` (`Link: <next>; rel="next"` as well). '
        "`available_usd_after` is your available balance right after each one, so the "
        "newest one's equals `GET /v1/budget`'s `available_usd`; over any window, SETTLE "
        "amounts plus debit adjustments add up to the change of `spent_usd`. "
        "`Accept: text/csv` returns the page as CSV. A bad parameter is a 400 "
        "`invalid-query-parameter` whose `errors[].pointer` names it.",
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=Transfer.Kind.values),
            OpenApiParameter("run_id", OpenApiTypes.UUID, description="One run's transfers."),
            OpenApiParameter(
                "created_after",
                OpenApiTypes.DATETIME,
                description="RFC 3339, with an offset; transfers strictly after it.",
            ),
            OpenApiParameter(
                "created_before",
                OpenApiTypes.DATETIME,
                description="RFC 3339, with an offset; transfers strictly before it.",
            ),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 100, default 20"),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque; from `next`"),
        ],
        examples=[LEDGER_EXAMPLE, LEDGER_CSV_EXAMPLE],
        responses={
            (200, "application/json"): LedgerPageSerializer,
            (200, "text/csv"): CSV_RESPONSE,
            **problem_responses(400, 401, 403, 404, 406, 429),
        },
    )
    def get(self, request: Request) -> Response:
        account = _account(request)
        query = _query(LedgerQuery, request)
        paginator = StatementPagination()
        transfers = transfers_for_account(
            account=account,
            kind=query.get("kind"),
            run_id=query.get("run_id"),
            created_after=query.get("created_after"),
            created_before=query.get("created_before"),
        )
        page = paginator.paginate_queryset(transfers, request, view=self)
        response = paginator.get_paginated_response(LedgerEntrySerializer(page, many=True).data)
        if response.data["next"]:
            response["Link"] = f'<{response.data["next"]}>; rel="next"'
        return response


USAGE_COLUMNS = [
    "date",
    "runs_submitted",
    "runs_completed",
    "runs_failed",
    "runs_canceled",
    "spent_usd",
    "refunded_usd",
]
USAGE_EXAMPLE = OpenApiExample(
    "Two days",
    response_only=True,
    status_codes=["200"],
    media_type="application/json",
    value={
        "results": [
            {
                "date": "2026-11-30",
                "runs_submitted": 0,
                "runs_completed": 0,
                "runs_failed": 0,
                "runs_canceled": 0,
                "spent_usd": "0.000000",
                "refunded_usd": "0.000000",
            },
            {
                "date": "2026-12-01",
                "runs_submitted": 3,
                "runs_completed": 1,
                "runs_failed": 1,
                "runs_canceled": 1,
                "spent_usd": "0.015100",
                "refunded_usd": "0.050000",
            },
        ]
    },
)
USAGE_CSV_EXAMPLE = OpenApiExample(
    "The same days as CSV",
    response_only=True,
    status_codes=["200"],
    media_type="text/csv",
    value="date,runs_submitted,runs_completed,runs_failed,runs_canceled,spent_usd,"
    "refunded_usd\r\n2026-12-01,3,1,1,1,0.015100,0.050000\r\n",
)


class UsageApi(APIView):
    renderer_classes = [JSONRenderer, CsvRenderer]
    csv_columns = USAGE_COLUMNS

    @extend_schema(
        operation_id="usage_list",
        summary="Your usage per UTC day",
        description="One row per UTC day from `from` to `to` (both included, at most 366 "
        "days, none after today; by default the last 30 days), oldest first. Runs are "
        "counted on the day they were submitted and on the day they finished; "
        "`spent_usd` is what runs were charged, `refunded_usd` the reservations returned "
        "whole. Closed days come from daily rollups, today from the ledger itself, so "
        "every row is current. `Accept: text/csv` returns the rows as CSV.",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="First UTC day, `YYYY-MM-DD`."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last UTC day, `YYYY-MM-DD`."),
        ],
        examples=[USAGE_EXAMPLE, USAGE_CSV_EXAMPLE],
        responses={
            (200, "application/json"): UsageSerializer,
            (200, "text/csv"): CSV_RESPONSE,
            **problem_responses(400, 401, 403, 404, 406, 429),
        },
    )
    def get(self, request: Request) -> Response:
        account = _account(request)
        query = _query(UsageQuery, request)
        days = usage.usage_days(account=account, first=query["first"], last=query["last"])
        return Response(UsageSerializer({"results": days}).data)
