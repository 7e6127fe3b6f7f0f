"""The one registry of RFC 9457 problem types: slug → type URI, title, status.

The API's error responses, the ``/problems/<slug>`` pages and ``docs/problems.md`` are
all generated from this table, so a ``type`` URI always resolves to its explanation.
Errors name their type by slug (``dpp.errors.DomainError.slug``), checked against this
table when the error class is defined.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"


_TYPES = [
    ProblemType(
        "malformed-request",
        400,
        "Malformed request",
        "The body could not be parsed as JSON, or a header is malformed. Fix the request "
        "syntax; nothing was written and nothing was billed.",
    ),
    ProblemType(
        "invalid-query-parameter",
        400,
        "Invalid query parameter",
        "A query parameter is malformed or out of range. The `errors` member lists each "
        "one; its `pointer` is `/<parameter name>`. Nothing was read or written.",
    ),
    ProblemType(
        "idempotency-key-missing",
        400,
        "Idempotency-Key header required",
        "`POST /v1/runs` needs an `Idempotency-Key` header of 8 to 255 printable ASCII "
        "characters. Generate one key per logical request (a UUID works) and reuse it "
        "when you retry.",
    ),
    ProblemType(
        "idempotency-key-invalid",
        400,
        "Idempotency-Key header malformed",
        "The `Idempotency-Key` header must be 8 to 255 printable ASCII characters "
        "(letters, digits and punctuation, no spaces).",
    ),
    ProblemType(
        "unauthenticated",
        401,
        "Authentication required",
        "Send `Authorization: Bearer dpp_<prefix>_<secret>` with an active API key. The "
        "key is missing, malformed, unknown or revoked.",
    ),
    ProblemType(
        "insufficient-budget",
        402,
        "Insufficient budget",
        "The tenant's available budget does not cover the reservation (`max_cost_usd`). "
        "Top up, or reserve less. Nothing was reserved.",
    ),
    ProblemType(
        "tenant-suspended",
        403,
        "Tenant suspended",
        "The API key is valid but its tenant is suspended. Contact support.",
    ),
    ProblemType(
        "permission-denied",
        403,
        "Permission denied",
        "The caller may not perform this action.",
    ),
    ProblemType(
        "pack-not-allowed",
        403,
        "Pack not allowed by plan",
        "The tenant's plan does not include this pack type. See `GET /v1/budget` for the "
        "plan, or ask to change plans.",
    ),
    ProblemType(
        "csrf-failed",
        403,
        "CSRF verification failed",
        "A browser form was posted without a valid CSRF token. API clients that use "
        "Bearer keys are never subject to CSRF checks.",
    ),
    ProblemType("not-found", 404, "Not found", "No resource exists at this URL."),
    ProblemType(
        "run-not-found",
        404,
        "Run not found",
        "No run with this id exists for your tenant. Ids of other tenants' runs answer "
        "the same way.",
    ),
    ProblemType(
        "method-not-allowed",
        405,
        "Method not allowed",
        "This URL does not support the HTTP method used; see the `Allow` header.",
    ),
    ProblemType(
        "not-acceptable",
        406,
        "Not acceptable",
        "The API answers `application/json` and `application/problem+json`; the "
        "statement (`GET /v1/ledger`) and usage (`GET /v1/usage`) also `text/csv`.",
    ),
    ProblemType(
        "run-not-cancelable",
        409,
        "Run not cancelable",
        "The run already ended (`COMPLETED` or `FAILED`; a `CANCELED` run answers the "
        "cancel again with 200), or its money is held for an operator's review. The "
        "`run_status` member is the run's status. Nothing was changed or billed.",
    ),
    ProblemType(
        "result-expired",
        410,
        "Result expired",
        "The run's result passed its retention period and was deleted. The run itself, "
        "its status and its cost, stays visible at `GET /v1/runs/{id}`, whose `result` is "
        'then `{"expired": true, "expired_at": …}`.',
    ),
    ProblemType(
        "payload-too-large",
        413,
        "Payload too large",
        "The request body exceeds the size limit (1 MiB by default).",
    ),
    ProblemType(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "Send request bodies as `application/json`.",
    ),
    ProblemType(
        "validation-error",
        422,
        "Validation failed",
        "One or more fields are invalid. The `errors` member lists each one with a JSON "
        "Pointer (RFC 6901) into the request body. Nothing was written or billed.",
    ),
    ProblemType(
        "unknown-pack-type",
        422,
        "Unknown pack type",
        "`pack_type` names no pack this platform runs.",
    ),
    ProblemType(
        "cost-limit-exceeded",
        422,
        "Cost above plan limit",
        "`reservation.max_cost_usd` is above the most the tenant's plan allows per run.",
    ),
    ProblemType(
        "reservation-below-estimate",
        422,
        "Reservation below cost estimate",
        "`reservation.max_cost_usd` is less than the pack's deterministic price for these "
        "inputs, so the run could never be paid for. Reserve at least the estimate.",
    ),
    ProblemType(
        "idempotency-key-reused",
        422,
        "Idempotency key reused with a different body",
        "This `Idempotency-Key` was already used with a different request body. Use a new "
        "key for a new request; the original run is unchanged.",
    ),
    ProblemType(
        "rate-limited",
        429,
        "Rate limit exceeded",
        "A rate limit policy is exhausted. Wait the `Retry-After` seconds; the "
        "`violated-policies` member names the policy, its quota and window.",
    ),
    ProblemType(
        "internal-error",
        500,
        "Internal server error",
        "Something failed on our side. Retry with the same `Idempotency-Key`; quote the "
        "`instance` when you contact support.",
    ),
    ProblemType(
        "service-unavailable",
        503,
        "Service unavailable",
        "A dependency the request needs is unavailable. Retry after a short back-off. "
        "`GET /readyz` answers with this type when a readiness check fails; its `checks` "
        "member lists every check with `name`, `ok`, `latency_ms` and `error`.",
    ),
    ProblemType(
        "submissions-paused",
        503,
        "Submissions paused",
        "An operator has paused new runs. Polling and results keep working. Retry after "
        "`Retry-After` seconds.",
    ),
]

PROBLEM_TYPES: dict[str, ProblemType] = {t.slug: t for t in _TYPES}


class UnknownProblemType(LookupError):
    """A slug that is not in the registry: a typo in code, never a client's mistake."""


def problem_type(slug: str) -> ProblemType:
    try:
        return PROBLEM_TYPES[slug]
    except KeyError:
        raise UnknownProblemType(f"no problem type {slug!r} in dpp/problem_types.py") from None


# The problem used when an error has nothing more specific than its status code.
BY_STATUS: dict[int, str] = {
    400: "malformed-request",
    401: "unauthenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    410: "result-expired",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    503: "service-unavailable",
}


def for_status(status: int) -> ProblemType:
    slug = BY_STATUS.get(status) or BY_STATUS[500 if status >= 500 else 400]
    return PROBLEM_TYPES[slug]
