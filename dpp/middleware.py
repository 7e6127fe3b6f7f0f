"""Request context (request id, access log) and the last-resort problem renderer."""

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from dpp import context
from dpp.problems import CONTENT_TYPE, internal_error_response, status_problem_response, to_response

access_logger = logging.getLogger("dpp.access")

# Accept a caller's request id only if it is short and inert (it is echoed and logged).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


class RequestContextMiddleware:
    """Gives every request an id, binds the log context, and writes the access log line."""

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
            access_logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status_code": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    **getattr(request, "access_log", {}),
                },
            )
        return response


class ProblemMiddleware:
    """Turns every error that escaped the views into ``application/problem+json``.

    Catches uncaught exceptions (→ 500 without a stack) and rewrites error responses that
    Django itself produced (404 from the resolver, 405 from generic views, admin errors)
    so that no path answers an error in any other format.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            CONTENT_TYPE
        ):
            headers = {"Allow": response["Allow"]} if response.has_header("Allow") else None
            return status_problem_response(response.status_code, headers=headers)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse:
        return to_response(exc) or internal_error_response(request, exc)
