"""Admin actions that ask for a form (an amount, a note) before they act."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse


def action_with_form(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    form_class: type[forms.Form],
    title: str,
    intro: str,
    apply: Callable[[QuerySet, dict[str, Any]], str],
    refusals: tuple[type[Exception], ...] = (),
) -> TemplateResponse | None:
    """Show ``form_class`` for the selected objects; on a valid submit call ``apply``.

    ``apply`` does the work through a service and returns the message for the operator.
    A service's refusal (one of ``refusals``) is shown as an error above the form, which
    keeps what the operator typed; ``apply`` must then have written nothing.
    """
    applying = "apply" in request.POST
    form = form_class(request.POST if applying else None)
    if applying and form.is_valid():
        try:
            message = apply(queryset, form.cleaned_data)
        except refusals as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
        else:
            modeladmin.message_user(request, message, messages.SUCCESS)
            return None
    return TemplateResponse(
        request,
        "admin/dpp/action_form.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "opts": modeladmin.opts,
            "objects": queryset,
            "form": form,
            "action": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )
