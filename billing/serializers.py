"""Rendering of budget, statement and usage documents, and their query parameters.
Read-only: nothing here writes."""

from datetime import datetime, timedelta
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing import usage
from billing.models import Transfer
from billing.money import micros_to_usd


@extend_schema_field(
    {"type": "string", "pattern": r"^[0-9]+\.[0-9]{6}$", "examples": ["10.000000"]}
)
class UsdString(serializers.CharField):
    """A non-negative USD amount rendered with exactly six decimal places."""


class PlanSerializer(serializers.Serializer):
    name = serializers.CharField()
    submit_per_minute = serializers.IntegerField(help_text="Submissions allowed per minute.")
    poll_per_minute = serializers.IntegerField(help_text="Polls allowed per minute.")
    max_concurrent_runs = serializers.IntegerField(help_text="Runs in flight at once.")
    max_cost_per_run_usd = UsdString(
        help_text="The largest `max_cost_usd` one run may reserve (six-place USD)."
    )
    allowed_pack_types = serializers.ListField(child=serializers.CharField())
    retention_days = serializers.IntegerField(help_text="Days a result is kept.")


class BudgetSerializer(serializers.Serializer):
    available_usd = UsdString(
        help_text="What new reservations may use: credited - spent - reserved."
    )
    reserved_usd = UsdString(help_text="Held for runs that have not finished.")
    spent_usd = UsdString(help_text="Charged for finished runs (and debits).")
    credited_usd = UsdString(help_text="Every top-up and credit so far.")
    currency = serializers.ChoiceField(choices=["USD"])
    plan = PlanSerializer()


@extend_schema_field(
    {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{6}$", "examples": ["-1.500000"]}
)
class SignedUsdString(serializers.CharField):
    """A USD amount with exactly six decimal places; negative for a debit adjustment."""


class LedgerEntrySerializer(serializers.Serializer):
    """One transfer of the statement."""

    id = serializers.IntegerField(help_text="The transfer's id; ids grow with time.")
    kind = serializers.ChoiceField(choices=Transfer.Kind.choices)
    amount_usd = SignedUsdString(
        source="amount_micros",
        help_text="TOPUP: credited. RESERVE: held for the run. SETTLE: charged for the run "
        "(the rest of its reservation is released). VOID: the whole reservation, released "
        "uncharged. ADJUST: an operator's correction, negative for a debit.",
    )
    run_id = serializers.UUIDField(allow_null=True)
    reason = serializers.CharField(help_text="Why, for top-ups and adjustments.")
    created_at = serializers.DateTimeField()
    available_usd_after = UsdString(
        source="available_after_micros",
        help_text="Your available balance right after this transfer.",
    )

    def to_representation(self, transfer: Transfer) -> dict[str, Any]:
        data = super().to_representation(transfer)
        data["amount_usd"] = micros_to_usd(transfer.amount_micros)
        data["available_usd_after"] = micros_to_usd(transfer.available_after_micros)
        return data


class LedgerPageSerializer(serializers.Serializer):
    """One page of ``GET /v1/ledger``; follow ``next`` for older transfers."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = LedgerEntrySerializer(many=True)


class Rfc3339DateTimeField(serializers.DateTimeField):
    """An RFC 3339 timestamp: date, time and an offset (``Z`` or ``±hh:mm``)."""

    def to_internal_value(self, value: Any) -> datetime:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or "T" not in str(value).upper():
            raise serializers.ValidationError(
                "Must be an RFC 3339 timestamp with an offset, like 2026-12-01T00:00:00Z."
            )
        return parsed


class LedgerQuery(serializers.Serializer):
    """Query parameters of the statement; errors point at the parameter."""

    kind = serializers.ChoiceField(choices=Transfer.Kind.choices, required=False)
    run_id = serializers.UUIDField(required=False)
    created_after = Rfc3339DateTimeField(required=False)
    created_before = Rfc3339DateTimeField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False)
    cursor = serializers.CharField(required=False)


MAX_USAGE_DAYS = 366


class UsageQuery(serializers.Serializer):
    """``from`` and ``to`` (UTC days, both included); by default the last 30 days."""

    # ``from`` is a Python keyword: the field is declared under its query name below.
    to = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
        return fields

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        last = data.get("to") or usage.today()
        first = data.get("from") or last - timedelta(days=29)
        if last < first:
            raise serializers.ValidationError({"to": "Must not be before `from`."})
        if (last - first).days + 1 > MAX_USAGE_DAYS:
            raise serializers.ValidationError(
                {"to": f"At most {MAX_USAGE_DAYS} days from `from`, both included."}
            )
        return {"first": first, "last": last}


class UsageDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The UTC day.")
    runs_submitted = serializers.IntegerField()
    runs_completed = serializers.IntegerField()
    runs_failed = serializers.IntegerField()
    runs_canceled = serializers.IntegerField()
    spent_usd = UsdString(help_text="Charged for runs (SETTLE amounts) that day.")
    refunded_usd = UsdString(
        help_text="Reservations returned whole (VOID amounts) that day: runs canceled while "
        "queued or never started."
    )

    def to_representation(self, day: usage.DayUsage) -> dict[str, Any]:
        return {
            "date": day.date.isoformat(),
            **{name: getattr(day, name) for name in usage.COUNTS},
            "spent_usd": micros_to_usd(day.spent_micros),
            "refunded_usd": micros_to_usd(day.refunded_micros),
        }


class UsageSerializer(serializers.Serializer):
    """``GET /v1/usage``: one row per day, oldest first."""

    results = UsageDaySerializer(many=True)
