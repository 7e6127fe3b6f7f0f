"""Operators' view of runs: AUDIT_REQUIRED first, the run's money and receipt, and the
"resolve audit" action. Nothing here edits a field: every change goes through a service."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html_join

from billing.models import Transfer
from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from dpp.admin_actions import action_with_form
from reaper import services
from reaper.models import AuditResolution
from runs.models import Run, RunEvent
from runs.receipts import read_receipt, receipt_matches


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TransferInline(ReadOnlyInline):
    model = Transfer
    fields = readonly_fields = ("kind", "amount_micros", "reason", "actor", "created_at")


class RunEventInline(ReadOnlyInline):
    model = RunEvent
    verbose_name_plural = "Lease history"
    fields = readonly_fields = ("kind", "attempt", "lease_token", "detail", "created_at")


class AuditResolutionInline(ReadOnlyInline):
    model = AuditResolution
    fields = readonly_fields = (
        "actor",
        "note",
        "resulting_money_state",
        "charge_micros",
        "adjust_micros",
        "created_at",
    )


class ResolveAuditForm(forms.Form):
    resolution = forms.ChoiceField(
        choices=[
            (Run.MoneyState.SETTLED, "Settle: charge the amount below"),
            (Run.MoneyState.REFUNDED, "Refund: void the whole reservation"),
        ]
    )
    charge_usd = forms.CharField(initial="0", help_text="Charged when settling (≤ reserved).")
    adjust_usd = forms.CharField(
        initial="0", help_text="Optional correction: positive credits the tenant, negative debits."
    )
    note = forms.CharField(widget=forms.Textarea, help_text="Required: what you found and why.")

    def _usd(self, name: str) -> int:
        try:
            return usd_to_micros(self.cleaned_data[name], allow_negative=name == "adjust_usd")
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_charge_usd(self) -> int:
        return self._usd("charge_usd")

    def clean_adjust_usd(self) -> int:
        return self._usd("adjust_usd")


class NeedsAuditFilter(admin.SimpleListFilter):
    title = "audit"
    parameter_name = "audit"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("required", "Audit required")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        if self.value() == "required":
            return queryset.filter(money_state=Run.MoneyState.AUDIT_REQUIRED)
        return queryset


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "tenant",
        "pack_type",
        "status",
        "money_state",
        "reserved_usd",
        "charged_usd",
        "attempts",
        "error_reason_code",
        "created_at",
    )
    list_filter = (NeedsAuditFilter, "status", "money_state", "pack_type")
    search_fields = ("id", "tenant__name", "idempotency_key")
    inlines = (TransferInline, RunEventInline, AuditResolutionInline)
    actions = ["resolve_audit"]
    exclude = ("inputs",)
    readonly_fields = ("receipt",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        # AUDIT_REQUIRED runs come first in every listing: they are the ones waiting on us.
        return (
            super()
            .get_queryset(request)
            .select_related("tenant")
            .annotate(
                audit_first=Case(
                    When(money_state=Run.MoneyState.AUDIT_REQUIRED, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            .order_by("audit_first", "-created_at")
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        return [f.name for f in Run._meta.fields if f.name != "inputs"] + ["receipt"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    @admin.display(description="reserved (USD)")
    def reserved_usd(self, run: Run) -> str:
        return micros_to_usd(run.reserved_micros)

    @admin.display(description="charged (USD)")
    def charged_usd(self, run: Run) -> str:
        return "" if run.actual_cost_micros is None else micros_to_usd(run.actual_cost_micros)

    @admin.display(description="receipt in object storage")
    def receipt(self, run: Run) -> str:
        try:
            found = read_receipt(run)
        except Exception as exc:
            # The page must still open when object storage is down: that is when it is needed.
            return f"unavailable: object storage did not answer ({type(exc).__name__})"
        if found is None:
            return "none"
        problems = receipt_matches(run, found)
        rows = [
            ("key", found.key),
            ("run-id", found.run_id),
            ("tenant-id", found.tenant_id),
            ("lease-token", found.lease_token),
            ("sha256 (stated)", found.sha256),
            ("sha256 (stored bytes)", found.body_sha256),
            ("charge-usd-micros", str(found.charge_micros)),
            ("verdict", "; ".join(problems) or "valid for this run"),
        ]
        return format_html_join("", "<div><b>{}</b>: {}</div>", rows)

    @admin.action(description="Resolve audit…", permissions=["change"])
    def resolve_audit(
        self, request: HttpRequest, queryset: QuerySet[Run]
    ) -> TemplateResponse | None:
        flagged = queryset.filter(money_state=Run.MoneyState.AUDIT_REQUIRED)

        def apply(runs: QuerySet[Run], data: dict) -> str:
            over = [str(run.id) for run in runs if data["charge_usd"] > run.reserved_micros]
            if over:
                return f"Nothing resolved: the charge is above the reservation of {over}."
            resolved, taken = 0, []
            for run in runs:
                try:
                    services.resolve_audit(
                        run=run,
                        actor=request.user.get_username(),
                        note=data["note"],
                        resolution=data["resolution"],
                        charge_micros=data["charge_usd"],
                        adjust_micros=data["adjust_usd"],
                    )
                except services.AlreadyResolved:
                    # Another operator closed it after this form was opened: theirs stands.
                    taken.append(str(run.id))
                    continue
                resolved += 1
            if taken:
                return f"Resolved {resolved} run(s); already resolved by someone else: {taken}."
            return f"Resolved {resolved} run(s)."

        return action_with_form(
            self,
            request,
            flagged,
            form_class=ResolveAuditForm,
            title="Resolve audit",
            intro="Close these AUDIT_REQUIRED runs. The decision, your note and your username "
            "are recorded; money moves only through the ledger's services.",
            apply=apply,
        )


@admin.register(AuditResolution)
class AuditResolutionAdmin(admin.ModelAdmin):
    list_display = ("run", "actor", "resulting_money_state", "charge_micros", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
