"""Operators' view of runs: AUDIT_REQUIRED first, the run's money, receipt and history,
and the page that resolves an audit.

Runs, their transfers, their lease history and audit resolutions are read-only here: a
form that saved a run would write the whole row outside ``runs.lifecycle``, racing the
worker and the reaper. The only change an operator makes to a run is a resolution, which
goes through ``reaper.services.resolve_audit``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from billing.admin import signed_usd
from billing.errors import BillingError
from billing.models import Transfer
from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from dpp.admin_links import change_link, list_link
from reaper import services
from reaper.models import AuditResolution
from runs.cancellation import cancel_run
from runs.errors import RunNotCancelable
from runs.models import Run, RunEvent
from runs.receipts import Receipt, read_receipt, receipt_matches
from runs.resolutions import ResolutionRefused


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TransferInline(ReadOnlyInline):
    model = Transfer
    fields = readonly_fields = ("kind", "amount", "reason", "actor", "created_at")

    @admin.display(description="amount (USD)")
    def amount(self, transfer: Transfer) -> str:
        return signed_usd(transfer)


class RunEventInline(ReadOnlyInline):
    model = RunEvent
    verbose_name_plural = "Lease history"
    fields = readonly_fields = ("kind", "attempt", "lease_token", "detail", "created_at")


class AuditResolutionInline(ReadOnlyInline):
    model = AuditResolution
    fields = readonly_fields = (
        "actor",
        "outcome",
        "note",
        "resulting_money_state",
        "charged_usd",
        "adjusted_usd",
        "created_at",
    )

    @admin.display(description="charged (USD)")
    def charged_usd(self, resolution: AuditResolution) -> str:
        return micros_to_usd(resolution.charge_micros)

    @admin.display(description="adjustment (USD)")
    def adjusted_usd(self, resolution: AuditResolution) -> str:
        return micros_to_usd(resolution.adjust_micros)


def _optional_usd(value: str, *, allow_negative: bool) -> int | None:
    if not value.strip():
        return None
    try:
        return usd_to_micros(value.strip(), allow_negative=allow_negative)
    except InvalidAmount as exc:
        raise forms.ValidationError(str(exc)) from exc


class ResolveAuditForm(forms.Form):
    """The outcomes of the public contract, none preselected, every amount in USD."""

    outcome = forms.ChoiceField(choices=AuditResolution.Outcome.choices, widget=forms.RadioSelect)
    fee_usd = forms.CharField(label="Fee (USD)", required=False, max_length=32)
    adjust_usd = forms.CharField(
        label="Adjustment (USD)",
        required=False,
        max_length=32,
        help_text="Optional correction beyond this run: positive credits the tenant, "
        "negative debits.",
    )
    note = forms.CharField(widget=forms.Textarea, help_text="Required: what you found and why.")

    def __init__(self, *args: Any, run: Run, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["fee_usd"].help_text = (
            f"For “fail” only: between 0.000000 and the run's minimum fee, "
            f"{micros_to_usd(run.minimum_fee_micros)}."
        )

    def clean_fee_usd(self) -> int | None:
        return _optional_usd(self.cleaned_data["fee_usd"], allow_negative=False)

    def clean_adjust_usd(self) -> int:
        return _optional_usd(self.cleaned_data["adjust_usd"], allow_negative=True) or 0

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        failing = cleaned.get("outcome") == AuditResolution.Outcome.FAIL
        if failing and cleaned.get("fee_usd") is None and "fee_usd" not in self.errors:
            self.add_error("fee_usd", "A failed run's fee is required (0.000000 for none).")
        if not failing and cleaned.get("fee_usd") is not None:
            self.add_error("fee_usd", "Only a failed run is charged a fee: leave this empty.")
        return cleaned


class NeedsAuditFilter(admin.SimpleListFilter):
    title = "audit"
    parameter_name = "audit"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("required", "Audit required")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        if self.value() == "required":
            return queryset.filter(money_state=Run.MoneyState.AUDIT_REQUIRED)
        return queryset


class Evidence:
    """The run's receipt as the resolve page and the run page show it."""

    def __init__(self, run: Run) -> None:
        self.unavailable = ""
        self.receipt: Receipt | None = None
        self.problems: list[str] = []
        try:
            self.receipt = read_receipt(run)
        except Exception as exc:
            # The page must still open when object storage is down: that is when it is needed.
            self.unavailable = f"unavailable: object storage did not answer ({type(exc).__name__})"
            return
        if self.receipt is not None:
            self.problems = receipt_matches(run, self.receipt)

    @property
    def verified_charge_usd(self) -> str | None:
        """The charge ``complete`` would post, or None when the receipt cannot complete."""
        if self.receipt is None or self.problems or self.receipt.charge_micros is None:
            return None
        return micros_to_usd(self.receipt.charge_micros)

    def html(self) -> str:
        if self.unavailable:
            return self.unavailable
        if self.receipt is None:
            return "none"
        found = self.receipt
        charge = "none" if found.charge_micros is None else micros_to_usd(found.charge_micros)
        rows = [
            ("key", found.key),
            ("run-id", found.run_id),
            ("tenant-id", found.tenant_id),
            ("lease-token", found.lease_token),
            ("sha256 (stated)", found.sha256),
            ("sha256 (stored bytes)", found.body_sha256),
            ("charge (USD)", charge),
            ("verdict", "; ".join(self.problems) or "valid for this run"),
        ]
        return format_html_join("", "<div><b>{}</b>: {}</div>", rows)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "tenant_link",
        "pack",
        "status",
        "money",
        "reserved_usd",
        "charged_usd",
        "attempts",
        "reason",
        "created",
    )
    list_filter = (NeedsAuditFilter, "status", "money_state", "pack_type")
    search_fields = ("id", "tenant__name", "idempotency_key")
    inlines = (TransferInline, RunEventInline, AuditResolutionInline)
    change_form_template = "admin/reaper/run/change_form.html"
    resolve_template = "admin/reaper/run/resolve.html"
    actions = ["cancel_runs"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        # AUDIT_REQUIRED runs come first in every listing: they are the ones waiting on us.
        return (
            super()
            .get_queryset(request)
            .select_related("tenant__account")
            .annotate(
                audit_first=Case(
                    When(money_state=Run.MoneyState.AUDIT_REQUIRED, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            .order_by("audit_first", "-created_at")
        )

    def get_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        money = ["reserved_usd", "minimum_fee_usd", "charged_usd"]
        hidden = {"inputs", "reserved_micros", "minimum_fee_micros", "actual_cost_micros", "tenant"}
        fields = [f.name for f in Run._meta.fields if f.name not in hidden]
        return ["tenant_link", "account_link", *money, *fields, "receipt"]

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        return self.get_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        # View only: no Save button, and a POST to the change page is refused (403).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_resolve_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        """Resolving is the one change an operator makes to a run."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name="runs_run_resolve",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        context = {"can_resolve": self.has_resolve_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description="run", ordering="id")
    def short_id(self, run: Run) -> str:
        return str(run.id)[:8]

    @admin.display(description="tenant", ordering="tenant__name")
    def tenant_link(self, run: Run) -> str:
        return change_link("dpp_tenant", run.tenant_id, run.tenant.name)

    @admin.display(description="pack", ordering="pack_type")
    def pack(self, run: Run) -> str:
        return run.pack_type

    @admin.display(description="reason", ordering="error_reason_code")
    def reason(self, run: Run) -> str:
        return run.error_reason_code or "-"

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, run: Run) -> str:
        return f"{run.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="account")
    def account_link(self, run: Run) -> str:
        account = getattr(run.tenant, "account", None)
        if account is None:
            return "none"
        links = [
            (change_link("billing_account", account.pk, f"budget of {run.tenant.name}"),),
            (list_link("billing_transfer", "this run's transfers", run__id__exact=run.id),),
        ]
        return format_html_join(" · ", "{}", links)

    @admin.display(description="money", ordering="money_state")
    def money(self, run: Run) -> str:
        if run.money_state != Run.MoneyState.AUDIT_REQUIRED:
            return run.money_state
        url = reverse("admin:runs_run_resolve", args=[run.pk])
        return format_html('{} <a href="{}">resolve</a>', run.money_state, url)

    @admin.display(description="reserved (USD)", ordering="reserved_micros")
    def reserved_usd(self, run: Run) -> str:
        return micros_to_usd(run.reserved_micros)

    @admin.display(description="minimum fee (USD)")
    def minimum_fee_usd(self, run: Run) -> str:
        return micros_to_usd(run.minimum_fee_micros)

    @admin.display(description="charged (USD)", ordering="actual_cost_micros")
    def charged_usd(self, run: Run) -> str:
        return "-" if run.actual_cost_micros is None else micros_to_usd(run.actual_cost_micros)

    @admin.display(description="receipt in object storage")
    def receipt(self, run: Run) -> str:
        return Evidence(run).html()

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Canceling is, like resolving, a change an operator makes through a service."""
        return self.has_resolve_permission(request)

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        # The tenants' cancel (docs/design.md §2): refunds queued runs at once, asks the
        # workers of processing ones to stop; the username is on each run's event.
        self.message_user(
            request, cancel_runs(queryset, actor=f"admin:{request.user.get_username()}")
        )

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Close an AUDIT_REQUIRED run with one of the outcomes the public contract allows.

        A refusal (an unverified receipt, a fee above the minimum, a run someone else
        resolved meanwhile) is an error message above the form, which keeps what the
        operator typed; nothing was written.
        """
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404("No such run.")
        if not self.has_resolve_permission(request, run):
            raise PermissionDenied
        form = ResolveAuditForm(request.POST if request.method == "POST" else None, run=run)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                resolution = services.resolve_audit(
                    run=run,
                    actor=request.user.get_username(),
                    note=data["note"],
                    outcome=data["outcome"],
                    fee_micros=data["fee_usd"],
                    adjust_micros=data["adjust_usd"],
                )
            except (ResolutionRefused, BillingError, InvalidAmount) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Run {run.id} resolved: {resolution.get_outcome_display().lower()}, "
                    f"{resolution.resulting_money_state}, charged "
                    f"${micros_to_usd(resolution.charge_micros)}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
        elif not form.is_bound and run.money_state != Run.MoneyState.AUDIT_REQUIRED:
            self.message_user(request, str(services.AlreadyResolved.of(run)), messages.WARNING)
        return TemplateResponse(
            request,
            self.resolve_template,
            {
                **self.admin_site.each_context(request),
                "title": "Resolve audit",
                "subtitle": f"run {run.id}",
                "opts": self.opts,
                "original": run,
                "run": run,
                "facts": [
                    ("tenant", run.tenant.name),
                    ("status", run.status),
                    ("money", run.money_state),
                    ("reason", run.error_reason_code or "-"),
                    ("reserved (USD)", self.reserved_usd(run)),
                    ("minimum fee (USD)", self.minimum_fee_usd(run)),
                ],
                "evidence": Evidence(run),
                "minimum_fee_usd": self.minimum_fee_usd(run),
                "form": form,
            },
        )


def cancel_runs(runs: QuerySet[Run], *, actor: str) -> str:
    """Cancel each run through the tenants' own service; what happened, in one line."""
    outcomes: dict[str, list[str]] = {"canceled": [], "requested": [], "not cancelable": []}
    for run in runs:
        try:
            pending = cancel_run(run=run, actor=actor).pending
        except RunNotCancelable:
            outcomes["not cancelable"].append(str(run.id))
            continue
        outcomes["requested" if pending else "canceled"].append(str(run.id))
    return (
        f"Canceled {len(outcomes['canceled'])} run(s); cancel requested for "
        f"{len(outcomes['requested'])} processing run(s); not cancelable (already ended, "
        f"or held for audit): {outcomes['not cancelable'] or 'none'}."
    )


@admin.register(AuditResolution)
class AuditResolutionAdmin(admin.ModelAdmin):
    list_display = (
        "run_link",
        "actor",
        "outcome",
        "resulting_money_state",
        "charged_usd",
        "adjusted_usd",
        "created_at",
    )
    list_filter = ("outcome",)
    list_select_related = ("run",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="run")
    def run_link(self, resolution: AuditResolution) -> str:
        return change_link("runs_run", resolution.run_id, str(resolution.run_id)[:8])

    @admin.display(description="charged (USD)", ordering="charge_micros")
    def charged_usd(self, resolution: AuditResolution) -> str:
        return micros_to_usd(resolution.charge_micros)

    @admin.display(description="adjustment (USD)", ordering="adjust_micros")
    def adjusted_usd(self, resolution: AuditResolution) -> str:
        return micros_to_usd(resolution.adjust_micros)
