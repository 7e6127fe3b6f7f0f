"""Admin for plans, budget accounts and the (read-only) ledger.

Balances are never edited in a form: a form would write back the numbers it loaded and
erase every reservation made meanwhile. Money moves only through ``billing.services``:
the top-up page of an account (and the bulk action of the account list) credits through
``top_up``, which records the admin user as the transfer's actor and refuses, writing
nothing, an amount or a resulting balance outside ``billing.limits``. Every amount is
shown and typed in USD.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join

from billing import services
from billing.errors import BillingError, TransferTooLarge
from billing.limits import MAX_TRANSFER_MICROS
from billing.models import Account, Plan, Transfer
from billing.money import MICROS_PER_USD, InvalidAmount, micros_to_usd, usd_to_micros
from dpp.admin_actions import action_with_form
from dpp.admin_links import change_link, list_link

# A top-up from this amount up asks the operator to confirm it (a slipped zero is costly).
LARGE_TOP_UP_MICROS = 10_000 * MICROS_PER_USD

# How each kind moves the tenant's money: credits and releases add, holds and debits take.
_EFFECTS = {
    Transfer.Kind.TOPUP: (1, "credit"),
    Transfer.Kind.RESERVE: (-1, "hold"),
    Transfer.Kind.SETTLE: (-1, "debit"),
    Transfer.Kind.VOID: (1, "release"),
}


def signed_usd(transfer: Transfer) -> str:
    """``+2.500000 credit``, ``-0.050000 hold``: the amount signed as the tenant sees it."""
    if transfer.kind == Transfer.Kind.ADJUST:
        sign, effect = (1, "credit") if transfer.amount_micros > 0 else (-1, "debit")
        micros = abs(transfer.amount_micros)
    else:
        (sign, effect), micros = _EFFECTS[transfer.kind], transfer.amount_micros
    return f"{'+' if sign > 0 else '-'}{micros_to_usd(micros)} {effect}"


def _usd_field(value: str) -> int:
    try:
        return usd_to_micros(value)
    except InvalidAmount as exc:
        raise forms.ValidationError(str(exc)) from exc


# --- Plans ------------------------------------------------------------------------------


def registered_packs() -> list[str]:
    """The pack types this deployment runs (``DPP_PACKS``; ``runs`` owns the registry)."""
    return sorted(settings.DPP_PACKS)


class PlanForm(forms.ModelForm):
    """A plan in USD, with its packs chosen from the registered ones: a typo in a pack
    name would lock every tenant of the plan out of that pack."""

    max_cost_per_run_usd = forms.CharField(
        label="Max cost per run (USD)",
        max_length=32,
        help_text=f"Up to six decimal places; at most ${micros_to_usd(MAX_TRANSFER_MICROS)}.",
    )
    allowed_pack_types = forms.MultipleChoiceField(
        label="Allowed packs",
        widget=forms.CheckboxSelectMultiple,
        help_text="Registered packs (DPP_PACKS) the plan's tenants may run.",
    )

    class Meta:
        model = Plan
        fields = (
            "name",
            "submit_per_minute",
            "poll_per_minute",
            "max_concurrent_runs",
            "max_cost_per_run_usd",
            "allowed_pack_types",
            "retention_days",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["allowed_pack_types"].choices = [(name, name) for name in registered_packs()]
        if self.instance.pk:
            self.initial["max_cost_per_run_usd"] = micros_to_usd(
                self.instance.max_cost_per_run_micros
            )
            self.initial["allowed_pack_types"] = list(self.instance.allowed_pack_types)

    def clean_max_cost_per_run_usd(self) -> int:
        micros = _usd_field(self.cleaned_data["max_cost_per_run_usd"])
        if micros <= 0:
            raise forms.ValidationError("A plan must allow a positive cost per run.")
        if micros > MAX_TRANSFER_MICROS:
            raise forms.ValidationError(str(TransferTooLarge(micros, what="reservation")))
        return micros

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Set here, before the model form builds the instance from its model fields.
        if "max_cost_per_run_usd" in cleaned:
            self.instance.max_cost_per_run_micros = cleaned["max_cost_per_run_usd"]
        if "allowed_pack_types" in cleaned:
            self.instance.allowed_pack_types = sorted(cleaned["allowed_pack_types"])
        return cleaned


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    form = PlanForm
    list_display = (
        "name",
        "submit_per_minute",
        "poll_per_minute",
        "max_concurrent_runs",
        "max_cost_per_run_usd",
        "packs",
        "retention_days",
    )
    search_fields = ("name",)

    @admin.display(description="max cost per run (USD)", ordering="max_cost_per_run_micros")
    def max_cost_per_run_usd(self, plan: Plan) -> str:
        return micros_to_usd(plan.max_cost_per_run_micros)

    @admin.display(description="packs")
    def packs(self, plan: Plan) -> str:
        known = set(registered_packs())
        return ", ".join(
            name if name in known else f"{name} (not registered)"
            for name in plan.allowed_pack_types
        )


# --- Accounts ---------------------------------------------------------------------------


class TopUpForm(forms.Form):
    amount_usd = forms.CharField(
        label="Amount (USD)",
        max_length=32,
        help_text=f"Up to six decimal places, e.g. 25.00; at most "
        f"${micros_to_usd(MAX_TRANSFER_MICROS)} at once.",
    )
    reason = forms.CharField(max_length=500, help_text="Kept on the transfer for the audit.")
    confirm_large = forms.BooleanField(
        label=f"Yes, this top-up is ${micros_to_usd(LARGE_TOP_UP_MICROS)} or more",
        required=False,
        help_text="Asked for large top-ups only.",
    )

    def clean_amount_usd(self) -> int:
        micros = _usd_field(self.cleaned_data["amount_usd"])
        if micros <= 0:
            raise forms.ValidationError("A top-up must be a positive amount.")
        if micros > MAX_TRANSFER_MICROS:
            # The service refuses it too; asking to confirm it first would be pointless.
            raise forms.ValidationError(str(TransferTooLarge(micros, what="top-up")))
        return micros

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        amount = cleaned.get("amount_usd")
        if amount is not None and amount >= LARGE_TOP_UP_MICROS and not cleaned["confirm_large"]:
            self.add_error(
                "confirm_large",
                f"${micros_to_usd(amount)} is a large top-up: check this box to confirm it.",
            )
        return cleaned


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = (
        "tenant_name",
        "plan",
        "available_usd",
        "reserved_usd",
        "spent_usd",
        "credited_usd",
        "related",
    )
    list_filter = ("plan",)
    list_select_related = ("tenant", "plan")
    search_fields = ("tenant__name", "tenant__id")
    fields = (
        "tenant_link",
        "plan",
        "available_usd",
        "reserved_usd",
        "spent_usd",
        "credited_usd",
        "related",
        "updated_at",
    )
    readonly_fields = (
        "tenant_link",
        "available_usd",
        "reserved_usd",
        "spent_usd",
        "credited_usd",
        "related",
        "updated_at",
    )
    actions = ["top_up"]
    change_form_template = "admin/billing/account/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # `manage.py dpp_tenant create` opens the tenant and its account together.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Account, form, change: bool) -> None:
        # Only the plan: saving the whole row would overwrite the live balances.
        obj.save(update_fields=["plan", "updated_at"])

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/top-up/",
                self.admin_site.admin_view(self.top_up_view),
                name="billing_account_top_up",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="tenant", ordering="tenant__name")
    def tenant_name(self, account: Account) -> str:
        return account.tenant.name

    @admin.display(description="tenant")
    def tenant_link(self, account: Account) -> str:
        return change_link("dpp_tenant", account.tenant_id, account.tenant)

    @admin.display(description="available (USD)")
    def available_usd(self, account: Account) -> str:
        return micros_to_usd(account.available_micros)

    @admin.display(description="reserved (USD)")
    def reserved_usd(self, account: Account) -> str:
        return micros_to_usd(account.debits_pending)

    @admin.display(description="spent (USD)")
    def spent_usd(self, account: Account) -> str:
        return micros_to_usd(account.debits_posted)

    @admin.display(description="credited (USD)")
    def credited_usd(self, account: Account) -> str:
        return micros_to_usd(account.credits_posted)

    @admin.display(description="see")
    def related(self, account: Account) -> str:
        return format_html_join(
            " · ",
            "{}",
            [
                (list_link("runs_run", "runs", tenant__id__exact=account.tenant_id),),
                (list_link("billing_transfer", "transfers", account__id__exact=account.pk),),
            ],
        )

    def top_up_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """One account's top-up, on a page naming its tenant and balance."""
        account = self.get_object(request, unquote(object_id))
        if account is None:
            raise Http404("No such account.")
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = TopUpForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                transfer = services.top_up(
                    account=account,
                    amount_micros=form.cleaned_data["amount_usd"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user.get_username(),
                )
            except (BillingError, InvalidAmount) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                account.refresh_from_db()
                self.message_user(
                    request,
                    f"Topped up {account.tenant.name} by ${micros_to_usd(transfer.amount_micros)} "
                    f"(transfer {transfer.pk}); available now "
                    f"${micros_to_usd(account.available_micros)}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:billing_account_change", args=[account.pk])
                )
        return TemplateResponse(
            request,
            "admin/billing/account/top_up.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Top up {account.tenant.name}",
                "opts": self.opts,
                "original": account,
                "account": account,
                "balances": [
                    ("available", self.available_usd(account)),
                    ("reserved", self.reserved_usd(account)),
                    ("spent", self.spent_usd(account)),
                    ("credited", self.credited_usd(account)),
                ],
                "form": form,
            },
        )

    @admin.action(description="Top up selected accounts…", permissions=["change"])
    def top_up(self, request: HttpRequest, queryset: QuerySet[Account]) -> TemplateResponse | None:
        def apply(accounts: QuerySet[Account], data: dict) -> str:
            # All or nothing: one refused top-up (a balance at its bound) writes none.
            with transaction.atomic():
                for account in accounts:
                    services.top_up(
                        account=account,
                        amount_micros=data["amount_usd"],
                        reason=data["reason"],
                        actor=request.user.get_username(),
                    )
            amount = micros_to_usd(data["amount_usd"])
            return f"Topped up {len(accounts)} account(s) by ${amount} each."

        return action_with_form(
            self,
            request,
            queryset.select_related("tenant"),
            form_class=TopUpForm,
            title="Top up budget",
            intro="Credit the same amount to each of these accounts. Each top-up is a TOPUP "
            "transfer recorded with your username as its actor.",
            apply=apply,
            refusals=(BillingError, InvalidAmount),
        )


# --- The ledger -------------------------------------------------------------------------


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    """The ledger is append-only: nobody edits or deletes it, superusers included."""

    list_display = ("id", "created_at", "kind", "amount", "tenant", "run_link", "actor")
    list_filter = ("kind",)
    list_select_related = ("account__tenant",)
    search_fields = ("run__id", "actor", "reason", "account__tenant__name")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "created_at",
        "kind",
        "amount",
        "tenant",
        "run_link",
        "reason",
        "actor",
        "trace_id",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Transfer | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Transfer | None = None) -> bool:
        return False

    @admin.display(description="amount (USD)", ordering="amount_micros")
    def amount(self, transfer: Transfer) -> str:
        return signed_usd(transfer)

    @admin.display(description="tenant (account)", ordering="account__tenant__name")
    def tenant(self, transfer: Transfer) -> str:
        return change_link("billing_account", transfer.account_id, transfer.account.tenant.name)

    @admin.display(description="run")
    def run_link(self, transfer: Transfer) -> str:
        if transfer.run_id is None:
            return "-"
        return change_link("runs_run", transfer.run_id, str(transfer.run_id)[:8])
