"""Admin for plans, budget accounts and the (read-only) ledger.

Balances are never edited in a form: a form would write back the numbers it loaded and
erase every reservation made meanwhile. Money moves only through ``billing.services``
(the top-up action here), which records the admin user as the transfer's actor.
"""

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from billing import services
from billing.models import Account, Plan, Transfer
from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from dpp.admin_actions import action_with_form


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "submit_per_minute",
        "poll_per_minute",
        "max_concurrent_runs",
        "max_cost_per_run_usd",
        "allowed_pack_types",
        "retention_days",
    )
    search_fields = ("name",)

    @admin.display(description="max cost per run (USD)")
    def max_cost_per_run_usd(self, plan: Plan) -> str:
        return micros_to_usd(plan.max_cost_per_run_micros)


class TopUpForm(forms.Form):
    amount_usd = forms.CharField(
        label="Amount (USD)", max_length=32, help_text="Up to six decimal places, e.g. 25.00"
    )
    reason = forms.CharField(max_length=500, help_text="Kept on the transfer for the audit.")

    def clean_amount_usd(self) -> int:
        try:
            micros = usd_to_micros(self.cleaned_data["amount_usd"])
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from exc
        if micros <= 0:
            raise forms.ValidationError("A top-up must be a positive amount.")
        return micros


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = (
        "tenant",
        "plan",
        "available_usd",
        "reserved_usd",
        "spent_usd",
        "credited_usd",
        "updated_at",
    )
    list_filter = ("plan",)
    list_select_related = ("tenant", "plan")
    search_fields = ("tenant__name", "tenant__id")
    fields = (
        "tenant",
        "plan",
        "available_usd",
        "reserved_usd",
        "spent_usd",
        "credited_usd",
        "updated_at",
    )
    readonly_fields = (
        "tenant",
        "available_usd",
        "reserved_usd",
        "spent_usd",
        "credited_usd",
        "updated_at",
    )
    actions = ["top_up"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # `manage.py dpp_tenant create` opens the tenant and its account together.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Account, form, change: bool) -> None:
        # Only the plan: saving the whole row would overwrite the live balances.
        obj.save(update_fields=["plan", "updated_at"])

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

    @admin.action(description="Top up selected accounts…", permissions=["change"])
    def top_up(self, request: HttpRequest, queryset: QuerySet[Account]) -> TemplateResponse | None:
        def apply(accounts: QuerySet[Account], data: dict) -> str:
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
            queryset,
            form_class=TopUpForm,
            title="Top up budget",
            intro="Credit the same amount to each of these accounts. Each top-up is a TOPUP "
            "transfer recorded with your username as its actor.",
            apply=apply,
        )


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    """The ledger is append-only: nobody edits or deletes it, superusers included."""

    list_display = ("id", "created_at", "kind", "account", "run_id", "amount_usd", "actor")
    list_filter = ("kind",)
    list_select_related = ("account__tenant",)
    search_fields = ("run__id", "actor", "reason", "account__tenant__name")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "created_at",
        "kind",
        "account",
        "run",
        "amount_usd",
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
    def amount_usd(self, transfer: Transfer) -> str:
        return micros_to_usd(transfer.amount_micros)
