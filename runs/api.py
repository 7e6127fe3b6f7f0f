"""The runs API: submit, poll, list, and the embedded default's result download."""

import re

from django.http import FileResponse, HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dpp.openapi import problem_responses
from dpp.problems import ProblemError
from dpp.tracing import current_traceparent
from runs import selectors
from runs.cancellation import cancel_run
from runs.errors import ResultExpired, RunNotFound
from runs.examples import DECISION_RUN
from runs.fingerprint import request_fingerprint
from runs.models import Run
from runs.results import result_expired_at, result_storage, run_id_from_token
from runs.serializers import (
    RunPageSerializer,
    RunReceiptSerializer,
    RunSerializer,
    RunSubmitInput,
    run_href,
)
from runs.services import Submission, submit_run

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{8,255}$")

IDEMPOTENCY_KEY_PARAM = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="8 to 255 printable ASCII characters, unique per logical request. Retrying "
    "with the same key and body returns the original run; a different body is a 422.",
)

RESPONSE_HEADERS = [
    OpenApiParameter(
        name, OpenApiTypes.STR, OpenApiParameter.HEADER, response=[202], description=text
    )
    for name, text in (
        ("X-DPP-Cost-Reserved", "USD reserved for the run, e.g. `0.050000`."),
        ("X-DPP-Cost-Minimum-Fee", "USD charged at least if the run fails."),
        ("Location", "URL of the run to poll."),
        ("Idempotent-Replayed", "`true` when this answer replays an earlier request."),
    )
]

SUBMIT_EXAMPLE = OpenApiExample(
    "4 options x 3 criteria",
    request_only=True,
    value={**DECISION_RUN, "meta": {"trace_id": "client-trace-123"}},
)


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise ProblemError("idempotency-key-missing", "Send an Idempotency-Key header.")
    if not _IDEMPOTENCY_KEY.match(key):
        raise ProblemError(
            "idempotency-key-invalid",
            "Idempotency-Key must be 8 to 255 printable ASCII characters.",
        )
    return key


class RunCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100


class RunListQuery(serializers.Serializer):
    """Query parameters of the list; pointers in its errors name the parameter."""

    status = serializers.ChoiceField(choices=Run.Status.choices, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False)
    cursor = serializers.CharField(required=False)


class RunCollectionApi(APIView):
    @extend_schema(
        operation_id="runs_create",
        summary="Submit a run",
        description="Reserves `max_cost_usd` from the budget and queues the run. Retries with "
        "the same Idempotency-Key never create or bill a second run.",
        request=RunSubmitInput,
        parameters=[IDEMPOTENCY_KEY_PARAM, *RESPONSE_HEADERS],
        examples=[SUBMIT_EXAMPLE],
        responses={
            202: OpenApiResponse(RunReceiptSerializer, description="Accepted (or replayed)"),
            **problem_responses(400, 401, 402, 403, 413, 415, 422, 429, 503),
        },
    )
    def post(self, request: Request) -> Response:
        key = _idempotency_key(request)
        data = RunSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        body = data.validated_data
        outcome = submit_run(
            tenant=request.auth,
            idempotency_key=key,
            fingerprint=request_fingerprint(request.data),
            submission=Submission(
                pack_type=body["pack_type"],
                inputs=body["inputs"],
                max_cost_micros=body["reservation"]["max_cost_usd"],
                timebox_sec=body["reservation"]["timebox_sec"],
                min_reliability_score=body["reservation"]["min_reliability_score"],
                client_trace_id=body.get("meta", {}).get("trace_id", ""),
            ),
            traceparent=current_traceparent(),
        )
        receipt = RunReceiptSerializer(outcome.run).data
        headers = {
            "Location": run_href(outcome.run),
            "X-DPP-Cost-Reserved": receipt["reservation"]["max_cost_usd"],
            "X-DPP-Cost-Minimum-Fee": receipt["reservation"]["minimum_fee_usd"],
        }
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
        request._request.access_log = {
            **getattr(request._request, "access_log", {}),
            "budget_decision": "replayed" if outcome.replayed else "reserved",
        }
        return Response(receipt, status=202, headers=headers)

    @extend_schema(
        operation_id="runs_list",
        summary="List your runs, newest first",
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                enum=Run.Status.values,
                description="Only runs in this status; `CANCELED` lists canceled runs.",
            ),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 100, default 20"),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque; from `next`"),
        ],
        responses={200: RunPageSerializer, **problem_responses(401, 403, 404, 422, 429)},
    )
    def get(self, request: Request) -> Response:
        query = RunListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        paginator = RunCursorPagination()
        runs = selectors.runs_for_tenant(
            tenant=request.auth, status=query.validated_data.get("status")
        )
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(
            RunSerializer(page, many=True, context={"request": request}).data
        )


class RunDetailApi(APIView):
    @extend_schema(
        operation_id="runs_retrieve",
        summary="Poll a run",
        description="Status, money and, once finished, the result or the error. After the "
        "retention period the run keeps answering with its status and cost; `result` is "
        'then `{"expired": true, "expired_at": …}`.',
        responses={200: RunSerializer, **problem_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_for_tenant(tenant=request.auth, run_id=run_id)
        return Response(RunSerializer(run, context={"request": request}).data)


CANCELED_EXAMPLE = OpenApiExample(
    "A queued run, canceled at once",
    response_only=True,
    status_codes=["200"],
    value={
        "run_id": "0b6f6a52-3c0e-4a53-9a8c-0d1e7f2a4b11",
        "pack_type": "decision",
        "status": "CANCELED",
        "money_state": "REFUNDED",
        "cost": {"reserved_usd": "0.050000", "used_usd": "0.000000", "minimum_fee_usd": "0.005000"},
        "result": None,
        "error": {"reason_code": "CANCELED", "detail": "Canceled by api before it started."},
        "cancel_requested": True,
        "attempts": 0,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "created_at": "2026-12-01T10:00:00.000000Z",
        "started_at": None,
        "completed_at": "2026-12-01T10:00:02.000000Z",
    },
)
CANCEL_REQUESTED_EXAMPLE = OpenApiExample(
    "A processing run: its worker stops at its next heartbeat",
    response_only=True,
    status_codes=["202"],
    value={
        **CANCELED_EXAMPLE.value,
        "status": "PROCESSING",
        "money_state": "RESERVED",
        "cost": {"reserved_usd": "0.050000", "used_usd": None, "minimum_fee_usd": "0.005000"},
        "error": None,
        "attempts": 1,
        "started_at": "2026-12-01T10:00:01.000000Z",
        "completed_at": None,
    },
)


class RunCancelApi(APIView):
    @extend_schema(
        operation_id="runs_cancel",
        summary="Cancel a run",
        description="A QUEUED run is CANCELED at once and its whole reservation returned "
        "(200, `money_state: REFUNDED`). A PROCESSING run is asked to stop (202, "
        "`cancel_requested: true`): its worker stops at its next heartbeat and the run "
        "ends CANCELED, charged at most its minimum fee — unless it finished first, which "
        "then stands. Canceling again answers the same way; a run that already ended "
        "otherwise is a 409 `run-not-cancelable`. No body, no Idempotency-Key: the call "
        "is idempotent. Counted against the `submit` rate-limit policy, like every POST.",
        request=None,
        examples=[CANCELED_EXAMPLE, CANCEL_REQUESTED_EXAMPLE],
        responses={
            200: OpenApiResponse(RunSerializer, description="The run is CANCELED."),
            202: OpenApiResponse(
                RunSerializer, description="Cancel requested; the run is still PROCESSING."
            ),
            **problem_responses(401, 403, 404, 409, 429),
        },
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = selectors.run_for_tenant(tenant=request.auth, run_id=run_id)
        cancellation = cancel_run(run=run, actor="api")
        return Response(
            RunSerializer(cancellation.run, context={"request": request}).data,
            status=202 if cancellation.pending else 200,
        )


class ResultDownloadApi(APIView):
    """The embedded default's stand-in for an S3 presigned URL: the token is the credential."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: HttpRequest, token: str) -> FileResponse:
        run_id = run_id_from_token(token)
        run = Run.objects.filter(id=run_id).first() if run_id else None
        if run is None or not run.result_key:
            raise RunNotFound
        if result_expired_at(run) is not None:
            raise ResultExpired(run_id=str(run.id))
        return FileResponse(
            result_storage().open(run.result_key, "rb"), content_type="application/json"
        )
