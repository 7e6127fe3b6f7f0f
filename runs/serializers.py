"""Request parsing and response rendering for the runs API. No side effects here."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from runs.models import Run
from runs.results import download_link, result_expired_at


class StrictSerializer(serializers.Serializer):
    """Rejects members it does not know, so a typo is a 422 instead of a silent default."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class PositiveUsdField(serializers.DecimalField):
    """A positive USD amount, a decimal with at most six places, parsed to integer micros."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_digits=15, decimal_places=6, coerce_to_string=True, **kwargs)

    def to_internal_value(self, data) -> int:
        try:
            micros = usd_to_micros(super().to_internal_value(data))
        except InvalidAmount as exc:
            raise serializers.ValidationError(str(exc)) from exc
        if micros <= 0:
            raise serializers.ValidationError("Must be more than 0.000000.")
        return micros


class ReservationInput(StrictSerializer):
    max_cost_usd = PositiveUsdField()
    timebox_sec = serializers.IntegerField(min_value=1, max_value=90, default=90)
    min_reliability_score = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)


class MetaInput(StrictSerializer):
    trace_id = serializers.CharField(max_length=128, required=False, allow_blank=False)


class RunSubmitInput(StrictSerializer):
    pack_type = serializers.CharField(max_length=50)
    inputs = serializers.DictField()
    reservation = ReservationInput()
    meta = MetaInput(required=False)


def run_href(run: Run) -> str:
    return reverse("run-detail", kwargs={"run_id": run.id})


class PollSerializer(serializers.Serializer):
    href = serializers.CharField()
    recommended_interval_ms = serializers.IntegerField()


class ReservationSerializer(serializers.Serializer):
    max_cost_usd = serializers.CharField()
    minimum_fee_usd = serializers.CharField()


class ReceiptMetaSerializer(serializers.Serializer):
    trace_id = serializers.CharField()
    created_at = serializers.DateTimeField()


class RunReceiptSerializer(serializers.Serializer):
    """The 202 body of ``POST /v1/runs`` (and of its idempotent replays)."""

    run_id = serializers.UUIDField(source="id")
    status = serializers.CharField()
    poll = serializers.SerializerMethodField()
    reservation = serializers.SerializerMethodField()
    meta = serializers.SerializerMethodField()

    def get_poll(self, run: Run) -> PollSerializer:
        return {"href": run_href(run), "recommended_interval_ms": settings.DPP_POLL_INTERVAL_MS}

    def get_reservation(self, run: Run) -> ReservationSerializer:
        return {
            "max_cost_usd": micros_to_usd(run.reserved_micros),
            "minimum_fee_usd": micros_to_usd(run.minimum_fee_micros),
        }

    def get_meta(self, run: Run) -> ReceiptMetaSerializer:
        return {
            "trace_id": trace_id_of(run),
            "created_at": serializers.DateTimeField().to_representation(run.created_at),
        }


def trace_id_of(run: Run) -> str:
    """The W3C trace id the run belongs to, or the client's own trace id."""
    parts = run.traceparent.split("-")
    return parts[1] if len(parts) == 4 else run.client_trace_id


class CostSerializer(serializers.Serializer):
    reserved_usd = serializers.CharField()
    used_usd = serializers.CharField(allow_null=True)
    minimum_fee_usd = serializers.CharField()


class ResultSerializer(serializers.Serializer):
    download_url = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class ExpiredResultSerializer(serializers.Serializer):
    """The result passed its retention period and was deleted; the run stays."""

    expired = serializers.BooleanField(help_text="Always `true`.")
    expired_at = serializers.DateTimeField(
        help_text="When the retention period ended (or the result was deleted, if earlier)."
    )


class ErrorSerializer(serializers.Serializer):
    reason_code = serializers.CharField()
    detail = serializers.CharField()


class RunSerializer(serializers.Serializer):
    """``GET /v1/runs/{id}``: state, money and, once finished, the result or the error."""

    run_id = serializers.UUIDField(source="id")
    pack_type = serializers.CharField()
    status = serializers.ChoiceField(choices=Run.Status.choices)
    money_state = serializers.ChoiceField(choices=Run.MoneyState.choices)
    cost = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    cancel_requested = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    trace_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)

    def get_cost(self, run: Run) -> CostSerializer:
        used = run.actual_cost_micros
        return {
            "reserved_usd": micros_to_usd(run.reserved_micros),
            "used_usd": None if used is None else micros_to_usd(used),
            "minimum_fee_usd": micros_to_usd(run.minimum_fee_micros),
        }

    @extend_schema_field(
        PolymorphicProxySerializer(
            component_name="RunResult",
            serializers=[ResultSerializer, ExpiredResultSerializer],
            resource_type_field_name=None,
            allow_null=True,
        )
    )
    def get_result(self, run: Run) -> dict | None:
        expired_at = result_expired_at(run)
        if expired_at is not None:
            return {
                "expired": True,
                "expired_at": serializers.DateTimeField().to_representation(expired_at),
            }
        link = download_link(run)
        if link is None:
            return None
        request = self.context.get("request")
        return {
            # The embedded default's link is a path on this API: make it absolute like S3's.
            "download_url": request.build_absolute_uri(link.url) if request else link.url,
            "sha256": run.result_sha256,
            "size_bytes": run.result_size,
            "expires_at": serializers.DateTimeField().to_representation(link.expires_at),
        }

    @extend_schema_field(ErrorSerializer(allow_null=True))
    def get_error(self, run: Run) -> dict | None:
        if not run.error_reason_code:
            return None
        return {"reason_code": run.error_reason_code, "detail": run.error_detail}

    def get_trace_id(self, run: Run) -> str:
        return trace_id_of(run)

    def get_cancel_requested(self, run: Run) -> bool:
        """A cancel was asked for: the run is, or is about to be, CANCELED."""
        return run.cancel_requested_at is not None


class RunPageSerializer(serializers.Serializer):
    """One page of ``GET /v1/runs``; follow ``next`` for older runs."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RunSerializer(many=True)
