"""Domain errors of runs. They carry data; dpp/problems.py maps them to problem types.

``field_errors`` ([(JSON Pointer into the request body, detail)]) lets the problem
document point at the offending field.
"""

from billing.money import micros_to_usd

MAX_COST = "/reservation/max_cost_usd"


class InvalidInputs(Exception):
    """The pack rejected its inputs; pointers are rebased onto the request body."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.field_errors = [(f"/inputs{pointer}", detail) for pointer, detail in errors]
        super().__init__(f"{len(self.field_errors)} input field(s) failed validation.")


class PackNotAllowed(Exception):
    def __init__(self, *, pack_type: str, plan: str) -> None:
        self.field_errors = [("/pack_type", f"not included in plan {plan!r}")]
        super().__init__(f"The {plan!r} plan does not include the {pack_type!r} pack.")


class CostLimitExceeded(Exception):
    def __init__(self, *, requested_micros: int, limit_micros: int) -> None:
        limit = micros_to_usd(limit_micros)
        self.field_errors = [(MAX_COST, f"must be at most {limit}")]
        self.extensions = {"max_cost_per_run_usd": limit}
        super().__init__(
            f"max_cost_usd {micros_to_usd(requested_micros)} is above the plan's limit of "
            f"{limit} per run."
        )


class ReservationBelowEstimate(Exception):
    def __init__(self, *, reserved_micros: int, estimate_micros: int) -> None:
        estimate = micros_to_usd(estimate_micros)
        self.field_errors = [(MAX_COST, f"must be at least the estimated cost {estimate}")]
        self.extensions = {"estimated_cost_usd": estimate}
        super().__init__(
            f"max_cost_usd {micros_to_usd(reserved_micros)} does not cover this run's price "
            f"of {estimate}."
        )


class IdempotencyKeyReused(Exception):
    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was used before with a different request body; the "
            "original run is unchanged."
        )


class RunNotFound(Exception):
    def __init__(self) -> None:
        super().__init__("No run with this id exists for your tenant.")


class ResultExpired(Exception):
    def __init__(self, *, run_id: str) -> None:
        self.extensions = {"run_id": run_id}
        super().__init__("The result of this run passed its retention period and was deleted.")


class SubmissionsPaused(Exception):
    """The kill switch is on: nothing was reserved or written, the key was not consumed."""

    def __init__(self, *, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            "An operator has paused new runs. Polling, listing, the budget and result "
            f"downloads keep working. Retry in {retry_after} s with the same Idempotency-Key."
        )
