"""Admin for tenants, API keys and the kill switch.

Writes go through ``dpp.services`` like everywhere else. A new key's secret is rendered
once, in the response to the add form, and stored nowhere (not in the session, not in a
message cookie); the change page shows the prefix, status and timestamps, never the hash.
A tenant links to its account, runs and transfers by admin URL name (``dpp.admin_links``):
dpp imports no app.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from dpp import kill_switch
from dpp.admin_links import change_link, list_link
from dpp.models import ApiKey, PlatformSwitch, PlatformSwitchChange, Tenant
from dpp.services import api_key_issue, api_key_revoke, tenant_reactivate, tenant_suspend


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("prefix", "label", "status", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "status", "related", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "id")
    fields = ("id", "name", "status", "related", "created_at")
    readonly_fields = ("id", "status", "related", "created_at")
    inlines = [ApiKeyInline]
    actions = ["suspend", "reactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        # "account" is billing's one-to-one accessor, named here rather than imported.
        return super().get_queryset(request).select_related("account")

    @admin.display(description="see")
    def related(self, tenant: Tenant) -> str:
        links = [(list_link("runs_run", "runs", tenant__id__exact=tenant.pk),)]
        account = getattr(tenant, "account", None)
        if account is not None:
            links = [
                (change_link("billing_account", account.pk, "account"),),
                *links,
                (list_link("billing_transfer", "transfers", account__id__exact=account.pk),),
            ]
        return format_html_join(" · ", "{}", links)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A tenant needs its budget account too: `manage.py dpp_tenant create` opens both.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Tenant, form, change: bool) -> None:
        obj.save(update_fields=["name"])

    @admin.action(description="Suspend selected tenants (their keys answer 403)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_suspend(tenant=tenant)
        self.message_user(request, f"Suspended {len(queryset)} tenant(s).", messages.SUCCESS)

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_reactivate(tenant=tenant)
        self.message_user(request, f"Reactivated {len(queryset)} tenant(s).", messages.SUCCESS)


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("tenant", "label")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "tenant", "label", "status", "created_at", "last_used_at")
    list_filter = ("status",)
    search_fields = ("prefix", "label", "tenant__name")
    list_select_related = ("tenant",)
    actions = ["revoke"]
    issued_template = "admin/dpp/apikey/issued.html"

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None):
        if obj is None:
            return ("tenant", "label")
        return (
            "prefix",
            "tenant",
            "label",
            "status",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None):
        if obj is None:
            return ()
        return ("prefix", "tenant", "status", "created_at", "last_used_at", "revoked_at")

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Revoke instead: the row is the record of who held access, and when.
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["label"])
            return
        issued = api_key_issue(tenant=obj.tenant, label=obj.label)
        obj.pk = issued.api_key.pk
        obj.prefix = issued.api_key.prefix
        obj.status = issued.api_key.status
        obj.created_at = issued.api_key.created_at
        obj._state.adding = False
        request._dpp_issued_token = issued.token

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue=None):
        token = getattr(request, "_dpp_issued_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            self.issued_template,
            {
                **self.admin_site.each_context(request),
                "title": "API key created",
                "opts": self.opts,
                "api_key": obj,
                "token": token,
                "change_url": reverse("admin:dpp_apikey_change", args=[obj.pk]),
                "changelist_url": reverse("admin:dpp_apikey_changelist"),
            },
        )
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        active = queryset.filter(status=ApiKey.Status.ACTIVE)
        prefixes = list(active.values_list("prefix", flat=True))
        for prefix in prefixes:
            api_key_revoke(prefix=prefix)
        self.message_user(request, f"Revoked {len(prefixes)} API key(s).", messages.SUCCESS)
        return None


class PlatformSwitchForm(forms.ModelForm):
    change_reason = forms.CharField(
        label="Reason for this change",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required. Recorded in the history with your username, and logged.",
    )

    class Meta:
        model = PlatformSwitch
        fields = ("submissions_paused",)
        help_texts = {
            "submissions_paused": "On: POST /v1/runs answers 503 submissions-paused and "
            "reserves nothing. Polls, listings, the budget, result downloads, workers and "
            "the reaper carry on. Other API processes follow within a few seconds."
        }


@admin.register(PlatformSwitch)
class PlatformSwitchAdmin(admin.ModelAdmin):
    """The kill switch: one row, edited through ``dpp.kill_switch`` so that every change
    is a history row and a log line naming who changed it and why."""

    form = PlatformSwitchForm
    fields = (
        "submissions_paused",
        "change_reason",
        "environment",
        "reason",
        "changed_by",
        "changed_at",
        "history",
    )
    readonly_fields = ("environment", "reason", "changed_by", "changed_at", "history")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PlatformSwitch | None = None):
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # One switch: the list would be a page with one link on it.
        switch = kill_switch.platform_switch()
        return HttpResponseRedirect(reverse("admin:dpp_platformswitch_change", args=[switch.pk]))

    def save_model(self, request: HttpRequest, obj: PlatformSwitch, form, change: bool) -> None:
        flip = (
            kill_switch.submissions_pause
            if form.cleaned_data["submissions_paused"]
            else kill_switch.submissions_resume
        )
        changed = flip(actor=request.user.get_username(), reason=form.cleaned_data["change_reason"])
        # The switch already said so: no history row was written, so no admin log entry
        # and no "changed successfully" either (see response_change).
        request._dpp_switch_unchanged = changed is None
        obj.refresh_from_db()
        state = kill_switch.switch_state()
        if state.paused_by_environment and not obj.submissions_paused:
            self.message_user(
                request,
                "DPP_SUBMISSIONS_PAUSED is set: submissions stay paused until it is removed.",
                messages.WARNING,
            )

    def log_change(self, request: HttpRequest, obj: PlatformSwitch, message: Any) -> Any:
        if getattr(request, "_dpp_switch_unchanged", False):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: PlatformSwitch) -> HttpResponse:
        if not getattr(request, "_dpp_switch_unchanged", False):
            return super().response_change(request, obj)
        state = "paused" if obj.submissions_paused else "open"
        self.message_user(
            request,
            f"Submissions were already {state}: nothing changed, and no history entry was written.",
            messages.WARNING,
        )
        return HttpResponseRedirect(request.path)

    @admin.display(description="Environment")
    def environment(self, obj: PlatformSwitch) -> str:
        if kill_switch.switch_state().paused_by_environment:
            return (
                "DPP_SUBMISSIONS_PAUSED is set: submissions are paused whatever this switch says."
            )
        return "DPP_SUBMISSIONS_PAUSED is not set."

    @admin.display(description="History (latest 20)")
    def history(self, obj: PlatformSwitch) -> str:
        changes = PlatformSwitchChange.objects.all()[:20]
        if not changes:
            return "no changes yet"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{c.changed_at:%Y-%m-%d %H:%M:%S}",
                    "paused" if c.submissions_paused else "resumed",
                    c.changed_by,
                    c.get_source_display(),
                    c.reason,
                )
                for c in changes
            ),
        )
        return format_html(
            "<table><tr><th>when (UTC)</th><th>action</th><th>by</th><th>from</th>"
            "<th>reason</th></tr>{}</table>",
            rows,
        )


@admin.register(PlatformSwitchChange)
class PlatformSwitchChangeAdmin(admin.ModelAdmin):
    list_display = ("changed_at", "submissions_paused", "was_paused", "changed_by", "source")
    list_filter = ("submissions_paused", "source")
    search_fields = ("changed_by", "reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
