"""Domain errors of runs. Each answers a client, so each is a ``DomainError`` that
declares its problem type by slug; ``dpp/problems.py`` renders them.

Field errors point into the request body (JSON Pointers), so the problem document names
the field the client has to change.
"""

from billing.money import micros_to_usd
from dpp.errors import DomainError

MAX_COST = "/reservation/max_cost_usd"


class InvalidInputs(DomainError):
    """The pack rejected its inputs; pointers are rebased onto the request body."""

    slug = "validation-error"

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(
            f"{len(errors)} input field(s) failed validation.",
            field_errors=[(f"/inputs{pointer}", detail) for pointer, detail in errors],
        )


class PackNotAllowed(DomainError):
    slug = "pack-not-allowed"

    def __init__(self, *, pack_type: str, plan: str) -> None:
        super().__init__(
            f"The {plan!r} plan does not include the {pack_type!r} pack.",
            field_errors=[("/pack_type", f"not included in plan {plan!r}")],
        )


class CostLimitExceeded(DomainError):
    slug = "cost-limit-exceeded"

    def __init__(self, *, requested_micros: int, limit_micros: int) -> None:
        limit = micros_to_usd(limit_micros)
        super().__init__(
            f"max_cost_usd {micros_to_usd(requested_micros)} is above the plan's limit of "
            f"{limit} per run.",
            field_errors=[(MAX_COST, f"must be at most {limit}")],
            extensions={"max_cost_per_run_usd": limit},
        )


class ReservationBelowEstimate(DomainError):
    slug = "reservation-below-estimate"

    def __init__(self, *, reserved_micros: int, estimate_micros: int) -> None:
        estimate = micros_to_usd(estimate_micros)
        super().__init__(
            f"max_cost_usd {micros_to_usd(reserved_micros)} does not cover this run's price "
            f"of {estimate}.",
            field_errors=[(MAX_COST, f"must be at least the estimated cost {estimate}")],
            extensions={"estimated_cost_usd": estimate},
        )


class IdempotencyKeyReused(DomainError):
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was used before with a different request body; the "
            "original run is unchanged."
        )


class RunNotFound(DomainError):
    slug = "run-not-found"

    def __init__(self) -> None:
        super().__init__("No run with this id exists for your tenant.")


class ResultExpired(DomainError):
    slug = "result-expired"

    def __init__(self, *, run_id: str) -> None:
        super().__init__(
            "The result of this run passed its retention period and was deleted.",
            extensions={"run_id": run_id},
        )


class SubmissionsPaused(DomainError):
    """The kill switch is on: nothing was reserved or written, the key was not consumed."""

    slug = "submissions-paused"

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(
            "An operator has paused new runs. Polling, listing, the budget and result "
            f"downloads keep working. Retry in {retry_after} s with the same Idempotency-Key.",
            retry_after=retry_after,
        )


class RunNotCancelable(DomainError):
    """The run already ended (COMPLETED or FAILED), or an operator holds its money."""

    slug = "run-not-cancelable"

    def __init__(self, *, run, reason: str) -> None:
        super().__init__(
            f"This run cannot be canceled: {reason}. Nothing was changed.",
            extensions={"run_id": str(run.id), "run_status": run.status},
        )
