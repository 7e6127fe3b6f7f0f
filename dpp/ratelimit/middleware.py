"""Applies the ``submit`` and ``poll`` policies to every ``/v1/`` request, before any view runs.

Running ahead of the view is what guarantees that a rate-limited submit reserves nothing
and does not consume its idempotency key. Health, readiness, metrics, docs and admin are
outside ``/v1/`` and never limited.
"""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from dpp.authentication import key_from_request
from dpp.problem_types import PROBLEM_TYPES
from dpp.problems import ProblemError, from_problem_error, problem_response, to_response
from dpp.ratelimit import engine, headers
from dpp.ratelimit.errors import WindowExceeded
from dpp.ratelimit.policies import POLL, Policy, PolicySet, policy_provider

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"
# Signed result links stand in for S3 presigned URLs: the signature is the credential and,
# like S3, they are not counted against a tenant's API quota.
UNLIMITED_PREFIXES = ("/v1/results/",)


def policy_for(request: HttpRequest, policies: PolicySet) -> Policy:
    return policies.submit if request.method == "POST" else policies.poll


class RateLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policies_for = policy_provider()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX) or request.path.startswith(UNLIMITED_PREFIXES):
            return self.get_response(request)
        try:
            key = key_from_request(request)
        except ProblemError as exc:
            key = None
            rejected: HttpResponse | None = from_problem_error(exc)
        else:
            rejected = None
        subject = f"tenant:{key.tenant_id}" if key else f"addr:{request.META.get('REMOTE_ADDR')}"
        policies = self.policies_for(key.tenant if key else None)
        policy = policy_for(request, policies)
        request.access_log = {**getattr(request, "access_log", {}), "plan": policies.plan}
        try:
            decision = engine.hit(subject=subject, policy=policy)
        except engine.LimiterUnavailable:
            return self._unavailable(request, policy, rejected)
        if rejected is None and not decision.allowed:
            rejected = self._limited(request, decision)
        response = rejected or self.get_response(request)
        for name, value in headers.fields(decision).items():
            response[name] = value
        return response

    def _limited(self, request: HttpRequest, decision: engine.Decision) -> HttpResponse:
        request.access_log = {
            **getattr(request, "access_log", {}),
            "budget_decision": "rate_limited",
        }
        return to_response(WindowExceeded(decision=decision))

    def _unavailable(
        self, request: HttpRequest, policy: Policy, rejected: HttpResponse | None
    ) -> HttpResponse:
        # Polls fail open (reading is harmless); submits fail closed (they move money).
        logger.error("rate limiter unavailable", extra={"policy": policy.name}, exc_info=True)
        if rejected is not None:
            return rejected
        if policy.name == POLL:
            return self.get_response(request)
        return problem_response(
            PROBLEM_TYPES["service-unavailable"],
            "Submissions are briefly unavailable (rate limiter unreachable). Retry shortly.",
            headers={"Retry-After": "5"},
        )
