"""DPP's admin site: Django's, with what an operator must see first on every visit.

The index counts the runs waiting for an audit resolution; every page carries a banner
while submissions are paused (the kill switch, ``dpp.kill_switch``). It lives in config,
the one layer that may import every app.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from dpp import kill_switch
from runs.selectors import audit_required_count


class DppAdminSite(admin.AdminSite):
    site_header = "DecisionProof Platform"
    site_title = "DPP admin"
    index_title = "Operations"
    # The lists need the width of a 1400-pixel screen; the breadcrumbs lead home.
    enable_nav_sidebar = False

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        if context.get("has_permission"):
            context["switch_state"] = kill_switch.switch_state()
        return context

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        context = {
            "audit_required_runs": audit_required_count(),
            "audit_required_url": reverse("admin:runs_run_changelist") + "?audit=required",
            **(extra_context or {}),
        }
        return super().index(request, context)
