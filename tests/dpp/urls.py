"""A test-only URLconf: the real routes plus small views that exercise the error paths."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as real
from dpp.errors import DomainError
from dpp.openapi import problem_responses


class LineSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=5)
    qty = serializers.IntegerField(min_value=1)


class LimitsSerializer(serializers.Serializer):
    max_cost_usd = serializers.DecimalField(max_digits=12, decimal_places=6)


class OrderSerializer(serializers.Serializer):
    title = serializers.CharField()
    lines = LineSerializer(many=True)
    tags = serializers.ListField(child=serializers.IntegerField())
    weights = serializers.DictField(child=serializers.IntegerField(), required=False)
    limits = LimitsSerializer()


class EchoSerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class OrderApi(APIView):
    """Validates a nested body; unauthenticated so that only the body matters."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=OrderSerializer, responses={201: EchoSerializer, **problem_responses(400, 415, 422)}
    )
    def post(self, request: Request) -> Response:
        OrderSerializer(data=request.data).is_valid(raise_exception=True)
        return Response({"ok": True}, status=201)


class PrivateApi(APIView):
    """Uses the default authentication and permission: a Bearer key of an active tenant."""

    @extend_schema(responses={200: EchoSerializer, **problem_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class BoomApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: EchoSerializer, **problem_responses(500)})
    def get(self, request: Request) -> Response:
        raise RuntimeError(f"boom in a DRF view (q={request.query_params.get('q')})")


class SlowDown(DomainError):
    """A test app's domain error, raised with every member a problem document can carry."""

    slug = "rate-limited"

    def __init__(self) -> None:
        super().__init__(
            "Slow down.",
            field_errors=[("/limits/a~1b", "too many")],
            extensions={"violated-policies": [{"policy": "test", "quota": 1}]},
            retry_after=7,
        )


class DomainErrorApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: EchoSerializer, **problem_responses(429)})
    def get(self, request: Request) -> Response:
        raise SlowDown


def domain_error(request: HttpRequest) -> HttpResponse:
    raise SlowDown


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"boom in a Django view (q={request.GET.get('q')})")


@require_POST
def session_form(request: HttpRequest) -> JsonResponse:
    """A plain Django form endpoint: CSRF-protected, like the admin."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("t/orders", OrderApi.as_view()),
    path("t/private", PrivateApi.as_view()),
    path("t/boom-drf", BoomApi.as_view()),
    path("t/boom", boom),
    path("t/domain-error-drf", DomainErrorApi.as_view()),
    path("t/domain-error", domain_error),
    path("t/session-form", session_form),
    *real,
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
