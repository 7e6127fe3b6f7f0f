"""Error pages of the admin: HTML, for operators in a browser.

Every other path answers RFC 9457 problem documents (``dpp.problems``); the admin is a
browser application, where a JSON document is no answer. ``ProblemMiddleware`` and the
error handlers (``dpp.handlers``) ask ``is_admin`` and render these pages instead.
"""

from http import HTTPStatus

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape

_PLAIN = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
    "</head><body><h1>{title}</h1><p>{detail}</p><p><a href='{home}'>Admin home</a></p>"
    "</body></html>"
)


def is_admin(request: HttpRequest) -> bool:
    """Whether the request is for the admin's pages (under ``admin:index``)."""
    try:
        prefix = reverse("admin:index")
    except NoReverseMatch:  # a URLconf without the admin
        return False
    return request.path_info.startswith(prefix)


def admin_error_page(request: HttpRequest, status: int, detail: str = "") -> HttpResponse:
    """The admin's page for an error ``status``, in the admin's look when it can be.

    A 500, and any error before the session is known (an oversized body is refused ahead
    of the session middleware), get a plain page that needs no template and no
    database: they must render while those fail.
    """
    title = f"{status} {HTTPStatus(status).phrase}"
    detail = detail or HTTPStatus(status).description
    if status >= 500 or not hasattr(request, "user"):
        html = _PLAIN.format(title=escape(title), detail=escape(detail), home=_home())
        return HttpResponse(html, status=status)
    response = TemplateResponse(
        request,
        "admin/dpp/error.html",
        {**admin.site.each_context(request), "title": title, "detail": detail},
        status=status,
    )
    return response.render()


def _home() -> str:
    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return "/"
