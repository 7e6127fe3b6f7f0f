"""Django's own error views (resolver 404, CSRF failure, 500) as problem documents.

They answer for errors raised outside the views, where ``ProblemMiddleware`` cannot see
them: in other middleware, in the URL resolver, in request parsing. The admin's pages get
HTML error pages instead (``dpp.admin_errors``).
"""

import sys

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views import csrf

from dpp import context
from dpp.admin_errors import admin_error_page, is_admin
from dpp.problem_types import PROBLEM_TYPES
from dpp.problems import (
    internal_error_response,
    log_internal_error,
    problem_response,
    status_problem_response,
)

TOO_BIG = "The request body exceeds the size limit."


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    too_big = isinstance(exception, RequestDataTooBig)
    if is_admin(request):
        return admin_error_page(request, 413 if too_big else 400, TOO_BIG if too_big else "")
    if too_big:
        return status_problem_response(413, TOO_BIG)
    return status_problem_response(400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_admin(request):
        return admin_error_page(request, 403, "You do not have permission to do this.")
    return status_problem_response(403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_admin(request):
        return admin_error_page(request, 404, "No admin page exists at this URL.")
    return status_problem_response(404, "No resource exists at this URL.")


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls handler500 inside its `except` block, so the exception is still current.
    if is_admin(request):
        log_internal_error(request, sys.exc_info()[1])
        request_id = context.get("request_id") or "unknown"
        return admin_error_page(
            request,
            500,
            f"An internal error occurred. It has been logged; quote request {request_id} to "
            "support.",
        )
    return internal_error_response(request, sys.exc_info()[1])


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if is_admin(request):
        return csrf.csrf_failure(request, reason)
    detail = f"CSRF verification failed: {reason.rstrip('.')}." if reason else None
    return problem_response(PROBLEM_TYPES["csrf-failed"], detail or "CSRF verification failed.")
