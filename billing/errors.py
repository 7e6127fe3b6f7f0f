"""Billing's domain errors: plain exceptions that carry data, never HTTP status codes.

``dpp.problems`` maps them to problem types by dotted name, so renaming a class here is
an API change (``billing.errors.InsufficientBudget`` → 402 ``insufficient-budget``).
"""

from typing import Any
from uuid import UUID


def _usd(micros: int) -> str:
    # Imported here because billing.money raises InvalidAmount from this module.
    from billing.money import micros_to_usd

    return micros_to_usd(micros)


class BillingError(Exception):
    """Base of every billing error, so a caller can catch the family."""


class InvalidAmount(BillingError, ValueError):
    """An amount that is not a valid micro-USD value for the operation asked."""


class ReasonRequired(BillingError, ValueError):
    """Operator corrections must say why; the ledger keeps the reason forever."""

    def __init__(self) -> None:
        super().__init__("An adjustment needs a non-empty reason.")


class PlanNotFound(BillingError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"No plan named {name!r}.")


class AccountNotFound(BillingError):
    def __init__(self, tenant_id: UUID | str | None) -> None:
        self.tenant_id = tenant_id
        super().__init__(f"Tenant {tenant_id} has no budget account.")


class InsufficientBudget(BillingError):
    """The available budget does not cover a reservation (or a debit adjustment).

    Nothing was written when this is raised: the conditional UPDATE matched no row.
    """

    def __init__(
        self,
        tenant_id: UUID | str | None,
        requested_micros: int,
        available_micros: int,
        *,
        purpose: str = "reservation",
        pointer: str | None = "/reservation/max_cost_usd",
    ) -> None:
        self.tenant_id = tenant_id
        self.requested_micros = requested_micros
        self.available_micros = available_micros
        # The request field the client can change (None when there is none, e.g. an
        # operator's debit); dpp.problems renders it through ``field_errors``.
        self.pointer = pointer
        super().__init__(
            f"Available budget ${_usd(available_micros)} does not cover the "
            f"{purpose} of ${_usd(requested_micros)}."
        )

    @property
    def field_errors(self) -> list[tuple[str, str]]:
        """``[(JSON Pointer, detail)]`` for the problem's ``errors`` member."""
        return [(self.pointer, str(self))] if self.pointer else []

    @property
    def extensions(self) -> dict[str, Any]:
        return {
            "requested_usd": _usd(self.requested_micros),
            "available_usd": _usd(self.available_micros),
        }


class ReservationNotFound(BillingError):
    """settle/void for a run that never reserved: a bug in the caller, never a no-op."""

    def __init__(self, run_id: UUID | str) -> None:
        self.run_id = run_id
        super().__init__(f"Run {run_id} has no RESERVE transfer.")


class ReservationExists(BillingError):
    """A second reserve for the same run; the unique index refused it."""

    def __init__(self, run_id: UUID | str) -> None:
        self.run_id = run_id
        super().__init__(f"Run {run_id} already has a RESERVE transfer.")


class ChargeExceedsReservation(BillingError, ValueError):
    def __init__(self, run_id: UUID | str, charge_micros: int, reserved_micros: int) -> None:
        self.run_id = run_id
        self.charge_micros = charge_micros
        self.reserved_micros = reserved_micros
        super().__init__(
            f"Charge ${_usd(charge_micros)} for run {run_id} exceeds its "
            f"reservation of ${_usd(reserved_micros)}."
        )


class LedgerInconsistent(BillingError):
    """The account cannot release what the ledger says is pending: the audit's business.

    Raised instead of writing anything, so the caller's transaction rolls back.
    """
