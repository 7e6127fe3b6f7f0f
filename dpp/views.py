"""Unauthenticated operational endpoints and the problem-type pages."""

import re
from dataclasses import asdict

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularRedocView

from dpp.health import run_checks
from dpp.problem_types import PROBLEM_TYPES
from dpp.problems import problem_response

_CODE_SPAN = re.compile(r"`([^`]+)`")


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """200 with each check, or a 503 problem (like every error) that lists the checks."""
    results = run_checks()
    checks = [asdict(r) for r in results]
    failed = [r.name for r in results if not r.ok]
    if failed:
        return problem_response(
            PROBLEM_TYPES["service-unavailable"],
            "Not ready: " + ", ".join(failed) + " failed.",
            extensions={"checks": checks},
        )
    return JsonResponse({"status": "ready", "checks": checks})


@require_GET
def problem_page(request: HttpRequest, slug: str) -> HttpResponse:
    problem = PROBLEM_TYPES.get(slug)
    if problem is None:
        raise Http404(slug)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(
            {
                "type": problem.uri,
                "title": problem.title,
                "status": problem.status,
                "description": problem.description,
            }
        )
    # The registry's text uses Markdown code spans (it is also docs/problems.md).
    description = _CODE_SPAN.sub(r"<code>\1</code>", str(escape(problem.description)))
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(problem.title)}</title></head><body>"
        f"<h1>{escape(problem.title)}</h1><p><code>{escape(problem.uri)}</code> — HTTP "
        f"{problem.status}</p><p>{description}</p></body></html>"
    )
    return HttpResponse(html)


class RedocView(SpectacularRedocView):
    """ReDoc from local assets only (the stock template pulls fonts from Google)."""

    template_name = "dpp/redoc.html"
