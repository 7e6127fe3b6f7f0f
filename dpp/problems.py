"""RFC 9457 problem responses: the one place every error on every path is rendered.

Errors reach here two ways: ``DomainError``s (``dpp.errors``), which the apps' errors
subclass and which declare their problem type by slug, and the exceptions of Django and
DRF. Anything else is a bug: the generic 500 problem, with the traceback in the log.
"""

import json
import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf

from dpp import context
from dpp.errors import DomainError, json_pointer
from dpp.problem_types import PROBLEM_TYPES, ProblemType, for_status

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"


class ProblemError(DomainError):
    """Raise anywhere in a request to answer with the problem ``slug``.

    For errors no domain class describes (a missing header, a failed authentication);
    the slug is checked against the registry when the error is created.
    """

    slug = None

    def __init__(self, slug: str, detail: str | None = None, **problem: Any) -> None:
        self.slug = slug
        super().__init__(detail, **problem)


def request_instance(request_id: str | None = None) -> str:
    return f"urn:dpp:request:{request_id or context.get('request_id') or 'unknown'}"


def problem_response(
    problem: ProblemType,
    detail: str,
    *,
    errors: list[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
        "instance": request_instance(),
    }
    if errors:
        body["errors"] = list(errors)
    body.update(extensions or {})
    response = HttpResponse(json.dumps(body), status=problem.status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def from_problem_error(exc: DomainError) -> HttpResponse:
    headers = dict(exc.headers)
    if exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    return problem_response(
        exc.problem_type,
        exc.detail,
        errors=[error._asdict() for error in exc.field_errors],
        headers=headers,
        extensions=exc.extensions,
    )


def pointer_errors(detail: Any, path: tuple = ()) -> list[dict[str, str]]:
    """Flatten DRF's nested validation errors into ``[{pointer, detail}]``."""
    if isinstance(detail, Mapping):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            sub = path if key in ("non_field_errors", "__all__") else (*path, key)
            out.extend(pointer_errors(value, sub))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"pointer": json_pointer(*path), "detail": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(pointer_errors(item, (*path, index)))
        return out
    return [{"pointer": json_pointer(*path), "detail": str(detail)}]


def to_response(exc: Exception) -> HttpResponse | None:
    """The problem response for a known exception, or None if it is a bug (→ 500)."""
    if isinstance(exc, DomainError):
        return from_problem_error(exc)
    if isinstance(exc, RequestDataTooBig):
        return problem_response(PROBLEM_TYPES["payload-too-large"], str(exc))
    if isinstance(exc, Http404):
        return problem_response(PROBLEM_TYPES["not-found"], "No resource exists at this URL.")
    if isinstance(exc, DjangoPermissionDenied):
        return problem_response(PROBLEM_TYPES["permission-denied"], "Permission denied.")
    if isinstance(exc, drf.APIException):
        return _from_drf(exc)
    return None


def _from_drf(exc: drf.APIException) -> HttpResponse:
    headers: dict[str, str] = {}
    errors: list[dict[str, str]] = []
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        problem = PROBLEM_TYPES["unauthenticated"]
        headers["WWW-Authenticate"] = 'Bearer realm="dpp"'
    elif isinstance(exc, drf.ValidationError):
        problem = PROBLEM_TYPES["validation-error"]
        errors = pointer_errors(exc.detail)
        detail = f"{len(errors)} field(s) failed validation."
        return problem_response(problem, detail, errors=errors)
    elif isinstance(exc, drf.MethodNotAllowed):
        problem = PROBLEM_TYPES["method-not-allowed"]
    else:
        problem = for_status(exc.status_code)
    if isinstance(exc, drf.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait))
    detail = exc.detail if isinstance(exc.detail, str) else problem.title
    return problem_response(problem, str(detail), headers=headers)


def exception_handler(exc: Exception, ctx: Mapping[str, Any]) -> HttpResponse | None:
    """DRF's EXCEPTION_HANDLER. Returning None lets the error reach ProblemMiddleware."""
    return to_response(exc)


def log_internal_error(request: HttpRequest | None, exc: BaseException | None) -> None:
    """The traceback goes to the log, never to the client."""
    logger.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__) if exc else None,
        extra={"path": request.path if request else None},
    )


def internal_error_response(request: HttpRequest | None, exc: BaseException | None) -> HttpResponse:
    log_internal_error(request, exc)
    return problem_response(
        PROBLEM_TYPES["internal-error"],
        "An internal error occurred. It has been logged; quote the instance to support.",
    )


def status_problem_response(status: int, detail: str | None = None, headers=None) -> HttpResponse:
    problem = for_status(status)
    return problem_response(problem, detail or problem.title, headers=headers)
