"""Billing's errors: exceptions that carry data, never HTTP status codes.

Only ``InsufficientBudget`` reaches clients, so only it is a ``DomainError`` (402
``insufficient-budget``). The others are raised to operators (the CLI and the admin show
their message) or mean a bug in the caller — a settle without a reservation, a ledger
that does not add up — and are answered, if one ever escapes a request, as the generic
500 problem. ``InvalidAmount`` belongs to the money helpers (``billing.money``).
"""

from uuid import UUID

from billing.limits import MAX_BALANCE_MICROS, MAX_CREDITED_MICROS, MAX_TRANSFER_MICROS
from billing.money import InvalidAmount, micros_to_usd
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


class TransferTooLarge(BillingError, InvalidAmount):
    """One transfer above ``MAX_TRANSFER_MICROS``; refused before anything was written."""

    def __init__(self, amount_micros: int, *, what: str = "transfer") -> None:
        self.amount_micros = amount_micros
        super().__init__(
            f"A single {what} may move at most ${micros_to_usd(MAX_TRANSFER_MICROS)}; "
            f"${micros_to_usd(amount_micros)} was refused and nothing was written."
        )


class BalanceLimitExceeded(BillingError):
    """A credit that would take the account above ``MAX_BALANCE_MICROS`` held, or above
    ``MAX_CREDITED_MICROS`` credited over its life. Nothing was written: the conditional
    UPDATE matched no row."""

    def __init__(
        self,
        tenant_id: UUID | str | None,
        credit_micros: int,
        *,
        balance_micros: int,
        credited_micros: int,
    ) -> None:
        self.tenant_id = tenant_id
        self.credit_micros = credit_micros
        credit = micros_to_usd(credit_micros)
        if credited_micros + credit_micros > MAX_CREDITED_MICROS:
            detail = (
                f"Crediting ${credit} would take everything ever credited to tenant "
                f"{tenant_id} (${micros_to_usd(credited_micros)}) above the ledger's maximum "
                f"of ${micros_to_usd(MAX_CREDITED_MICROS)} per account"
            )
        else:
            detail = (
                f"Crediting ${credit} would take the balance of tenant {tenant_id} "
                f"(available + reserved: ${micros_to_usd(balance_micros)}) above the maximum "
                f"of ${micros_to_usd(MAX_BALANCE_MICROS)}"
            )
        super().__init__(f"{detail}; nothing was credited.")


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


class InvalidQueryParameters(BillingError, DomainError):
    """Query parameters of the statement or usage that cannot be used as given."""

    slug = "invalid-query-parameter"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        field_errors = [
            (f"/{name}", str(message)) for name, messages in errors.items() for message in messages
        ]
        super().__init__(
            f"{len(field_errors)} query parameter(s) are invalid.", field_errors=field_errors
        )
