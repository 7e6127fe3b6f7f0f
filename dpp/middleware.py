"""Request context (request id, access log), the body-size guard, and the last-resort
problem renderer."""

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from dpp import context
from dpp.admin_errors import admin_error_page, is_admin
from dpp.metrics import HTTP_REQUESTS
from dpp.problem_types import PROBLEM_TYPES
from dpp.problems import (
    CONTENT_TYPE,
    internal_error_response,
    problem_response,
    status_problem_response,
    to_response,
)

access_logger = logging.getLogger("dpp.access")

# Accept a caller's request id only if it is short and inert (it is echoed and logged).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")

# Headers of an error response that still mean something once it is rewritten as a problem.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class UnroutablePathMiddleware:
    """404 for a path with characters outside Latin-1, before the tracing middleware.

    No DPP route contains such a character. Django hands the decoded path to WSGI
    middleware, and OpenTelemetry's Django instrumentation re-quotes it as Latin-1 and
    fails (a 500) — the schema fuzzer found ``/v1/runs/%F3%83%A5%8F``. Answering here keeps
    that path an ordinary not-found problem.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.path_info.encode("latin-1")
        except UnicodeEncodeError:
            return status_problem_response(404, "No resource exists at this URL.")
        return self.get_response(request)


class RequestContextMiddleware:
    """Gives every request an id, binds the log context, and writes the access log line.

    The access line is written inside the ``bound`` block on purpose: fields that the
    view adds with ``context.update`` (``tenant_id`` once the API key is checked) live
    until the block exits, so the line carries them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        started = time.perf_counter()
        with context.bound(request_id=request_id):
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            HTTP_REQUESTS.labels(method=request.method, status=str(response.status_code)).inc()
            access_logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status_code": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    **_budget_decision(request, response),
                    **getattr(request, "access_log", {}),
                },
            )
        return response


# What a submit's answer means for the tenant's budget, when the view did not say more.
_DECISIONS = {402: "insufficient", 429: "rate_limited", 503: "unavailable"}


def _budget_decision(request: HttpRequest, response: HttpResponse) -> dict[str, str]:
    if request.method != "POST" or not request.path.startswith("/v1/"):
        return {}
    status = response.status_code
    if status < 400:
        return {}
    return {"budget_decision": _DECISIONS.get(status, "rejected" if status < 500 else "error")}


class RequestBodyLimitMiddleware:
    """413 for a body declared larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE``, before anyone reads it.

    Django enforces that limit only when ``request.body`` or ``request.POST`` is read;
    DRF's parsers read the stream directly and would accept a body of any size. Checking
    ``Content-Length`` here gives every path, DRF or not, the same limit and answer.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._refuse(request, "malformed-request", "Content-Length is not a number.")
        if limit is not None and length > limit:
            return self._refuse(
                request,
                "payload-too-large",
                f"The request body is {length} bytes; the limit is {limit} bytes.",
            )
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, slug: str, detail: str) -> HttpResponse:
        problem = PROBLEM_TYPES[slug]
        if is_admin(request):
            return admin_error_page(request, problem.status, detail)
        return problem_response(problem, detail)


class ProblemMiddleware:
    """Turns every error that escaped the views into ``application/problem+json``.

    Catches uncaught exceptions (→ 500 without a stack) and rewrites error responses that
    Django itself produced (404 from the resolver, 405 from ``require_GET``) so that no
    API path answers an error in any other format. The admin is left to Django, whose
    error handlers (``dpp.handlers``) render it HTML pages.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and not response.get("Content-Type", "").startswith(CONTENT_TYPE)
            and not is_admin(request)
        ):
            headers = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
            return status_problem_response(response.status_code, headers=headers)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if is_admin(request):
            return None
        return to_response(exc) or internal_error_response(request, exc)
