"""Django's own error views (resolver 404, CSRF failure, 500) as problem documents.

They answer for errors raised outside the views, where ``ProblemMiddleware`` cannot see
them: in other middleware, in the URL resolver, in request parsing.
"""

import sys

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from dpp.problem_types import PROBLEM_TYPES
from dpp.problems import internal_error_response, problem_response, status_problem_response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return status_problem_response(413, "The request body exceeds the size limit.")
    return status_problem_response(400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return status_problem_response(403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return status_problem_response(404, "No resource exists at this URL.")


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls handler500 inside its `except` block, so the exception is still current.
    return internal_error_response(request, sys.exc_info()[1])


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    detail = f"CSRF verification failed: {reason.rstrip('.')}." if reason else None
    return problem_response(PROBLEM_TYPES["csrf-failed"], detail or "CSRF verification failed.")
