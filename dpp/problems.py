"""RFC 9457 problem responses: the one place every error on every path is rendered.

Errors reach here three ways: ``ProblemError`` raised by our own code, DRF's exceptions
(through ``exception_handler``), and domain errors of the apps, which the core knows
only by dotted class name (``DOMAIN_ERRORS``) so that it imports no app.
"""

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf

from dpp import context
from dpp.problem_types import PROBLEM_TYPES, ProblemType, for_status

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"

# Domain error → problem slug. Keyed by dotted name so that the core imports no app.
DOMAIN_ERRORS: dict[str, str] = {
    "billing.errors.InsufficientBudget": "insufficient-budget",
    "runs.packs.errors.UnknownPackType": "unknown-pack-type",
    "runs.errors.PackNotAllowed": "pack-not-allowed",
    "runs.errors.CostLimitExceeded": "cost-limit-exceeded",
    "runs.errors.ReservationBelowEstimate": "reservation-below-estimate",
    "runs.errors.IdempotencyKeyReused": "idempotency-key-reused",
    "runs.errors.InvalidInputs": "validation-error",
    "runs.errors.RunNotFound": "run-not-found",
    "runs.errors.ResultExpired": "result-expired",
    "runs.errors.SubmissionsPaused": "submissions-paused",
    "dpp.ratelimit.errors.RateLimitExceeded": "rate-limited",
}


class ProblemError(Exception):
    """Raise anywhere in a request to answer with the problem ``slug``."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        errors: Iterable[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.problem_type = PROBLEM_TYPES[slug]
        self.detail = detail or self.problem_type.title
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extensions = extensions
        super().__init__(self.detail)


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


def from_problem_error(exc: ProblemError) -> HttpResponse:
    return problem_response(
        exc.problem_type,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901: '~' → '~0', '/' → '~1'."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


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
            return [{"pointer": json_pointer(path), "detail": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(pointer_errors(item, (*path, index)))
        return out
    return [{"pointer": json_pointer(path), "detail": str(detail)}]


def _domain_slug(exc: Exception) -> str | None:
    for cls in type(exc).__mro__:
        slug = DOMAIN_ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
        if slug:
            return slug
    return None


def to_response(exc: Exception) -> HttpResponse | None:
    """The problem response for a known exception, or None if it is a bug (→ 500)."""
    if isinstance(exc, ProblemError):
        return from_problem_error(exc)
    slug = _domain_slug(exc)
    if slug:
        # Domain errors point at the fields they concern through `field_errors`
        # ([(pointer, detail)]) and add problem members through `extensions`.
        errors = [{"pointer": p, "detail": d} for p, d in getattr(exc, "field_errors", ())]
        retry_after = getattr(exc, "retry_after", None)
        return problem_response(
            PROBLEM_TYPES[slug],
            str(exc),
            errors=errors,
            headers={"Retry-After": str(retry_after)} if retry_after else None,
            extensions=getattr(exc, "extensions", None),
        )
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


def internal_error_response(request: HttpRequest | None, exc: BaseException | None) -> HttpResponse:
    logger.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__) if exc else None,
        extra={"path": request.path if request else None},
    )
    return problem_response(
        PROBLEM_TYPES["internal-error"],
        "An internal error occurred. It has been logged; quote the instance to support.",
    )


def status_problem_response(status: int, detail: str | None = None, headers=None) -> HttpResponse:
    problem = for_status(status)
    return problem_response(problem, detail or problem.title, headers=headers)
