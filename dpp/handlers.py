"""Django's own error views (resolver 404, CSRF failure, 500) as problem documents."""

from django.http import HttpRequest, HttpResponse

from dpp.problem_types import PROBLEM_TYPES
from dpp.problems import internal_error_response, problem_response, status_problem_response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return status_problem_response(400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return status_problem_response(403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return status_problem_response(404, "No resource exists at this URL.")


def server_error(request: HttpRequest) -> HttpResponse:
    return internal_error_response(request, None)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return problem_response(PROBLEM_TYPES["csrf-failed"], "CSRF verification failed.")
