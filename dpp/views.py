"""Unauthenticated operational endpoints and the problem-type pages."""

from dataclasses import asdict

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views.decorators.http import require_GET

from dpp.health import run_checks
from dpp.problem_types import PROBLEM_TYPES


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = run_checks()
    ready = all(r.ok for r in results)
    return JsonResponse(
        {"status": "ready" if ready else "not_ready", "checks": [asdict(r) for r in results]},
        status=200 if ready else 503,
    )


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
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(problem.title)}</title></head><body>"
        f"<h1>{escape(problem.title)}</h1><p><code>{escape(problem.uri)}</code> — HTTP "
        f"{problem.status}</p><p>{escape(problem.description)}</p></body></html>"
    )
    return HttpResponse(html)
