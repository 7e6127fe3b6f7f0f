"""Billing's errors: exceptions that carry data, never HTTP status codes.

Only ``InsufficientBudget`` reaches clients, so only it is a ``DomainError`` (402
``insufficient-budget``). The others are raised to operators (the CLI and the admin show
their message) or mean a bug in the caller — a settle without a reservation, a ledger
that does not add up — and are answered, if one ever escapes a request, as the generic
500 problem. ``InvalidAmount`` belongs to the money helpers (``billing.money``).
"""

from uuid import UUID

from billing.money import micros_to_usd
from dpp.errors import DomainError


class BillingError(Exception):
    """Base of the ledger's errors, so a caller can catch the family.

    ``billing.money.InvalidAmount`` is not in it: callers that take amounts catch both.
    """


class ReasonRequired(BillingError, ValueError):
    """Operator corrections must say why; the ledger keeps the reason forever."""

    def __init__(self) -> None:
        super().__init__("An adjustment needs a non-empty reason.")


class PlanNotFound(BillingError):
    """An operator named a plan that does not exist (CLI and admin)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"No plan named {name!r}.")


class AccountNotFound(BillingError):
    """A tenant without a budget account. Every tenant is opened with one, so this is an
    operator's mistake: ``GET /v1/budget`` answers it as ``not-found``, elsewhere a 500."""

    def __init__(self, tenant_id: UUID | str | None) -> None:
        self.tenant_id = tenant_id
        super().__init__(f"Tenant {tenant_id} has no budget account.")


class InsufficientBudget(BillingError, DomainError):
    """The available budget does not cover a reservation (or a debit adjustment).

    Nothing was written when this is raised: the conditional UPDATE matched no row.
    """

    slug = "insufficient-budget"

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
        detail = (
            f"Available budget ${micros_to_usd(available_micros)} does not cover the "
            f"{purpose} of ${micros_to_usd(requested_micros)}."
        )
        # ``pointer`` is the request field the client can change (None when there is
        # none, e.g. an operator's debit).
        super().__init__(
            detail,
            field_errors=[(pointer, detail)] if pointer else [],
            extensions={
                "requested_usd": micros_to_usd(requested_micros),
                "available_usd": micros_to_usd(available_micros),
            },
        )


class ReservationNotFound(BillingError):
    """settle/void for a run that never reserved: a bug in the caller, never a no-op (→ 500)."""

    def __init__(self, run_id: UUID | str) -> None:
        self.run_id = run_id
        super().__init__(f"Run {run_id} has no RESERVE transfer.")


class ReservationExists(BillingError):
    """A second reserve for the same run; the unique index refused it (a bug → 500)."""

    def __init__(self, run_id: UUID | str) -> None:
        self.run_id = run_id
        super().__init__(f"Run {run_id} already has a RESERVE transfer.")


class ChargeExceedsReservation(BillingError, ValueError):
    """A charge above what the run reserved: the caller broke the cap (a bug → 500)."""

    def __init__(self, run_id: UUID | str, charge_micros: int, reserved_micros: int) -> None:
        self.run_id = run_id
        self.charge_micros = charge_micros
        self.reserved_micros = reserved_micros
        super().__init__(
            f"Charge ${micros_to_usd(charge_micros)} for run {run_id} exceeds its "
            f"reservation of ${micros_to_usd(reserved_micros)}."
        )


class LedgerInconsistent(BillingError):
    """The account cannot release what the ledger says is pending: the audit's business.

    Raised instead of writing anything, so the caller's transaction rolls back. A broken
    invariant, not a client's error: never a ``DomainError`` (→ 500).
    """
