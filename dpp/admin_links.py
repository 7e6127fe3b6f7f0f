"""Links between admin pages, by URL name only.

The admin links a tenant to its account, runs and transfers across apps. Naming the
other app's admin URL (``billing_account``, ``runs_run``) keeps the layers: no app is
imported to link to it.
"""

from typing import Any

from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode


def change_link(model: str, pk: Any, text: Any) -> str:
    """A link to the change page of ``model`` (``"<app>_<model>"``) object ``pk``."""
    return format_html('<a href="{}">{}</a>', reverse(f"admin:{model}_change", args=[pk]), text)


def list_link(model: str, text: Any, **filters: Any) -> str:
    """A link to ``model``'s list, filtered by ``filters`` (``tenant__id__exact=…``)."""
    url = reverse(f"admin:{model}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), text)
