"""Rendering of budget documents. Read-only: nothing here writes."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


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
