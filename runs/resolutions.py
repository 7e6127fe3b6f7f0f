"""What an operator may decide about an AUDIT_REQUIRED run, and why a decision is refused.

The outcomes are the promises ``docs/api.md`` makes to tenants: a COMPLETED run costs
what its verified receipt states, a FAILED run at most its minimum fee, and a refund
nothing. ``runs.lifecycle.resolve`` applies one (its compare-and-set, its RunEvent and
its money in one transaction); ``reaper.services.resolve_audit`` records who decided.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from billing.money import micros_to_usd
from runs.receipts import Receipt


@dataclass(frozen=True)
class Complete:
    """COMPLETED with the result ``receipt`` proves, charged the receipt's charge."""

    receipt: Receipt


@dataclass(frozen=True)
class Fail:
    """FAILED, charged ``fee_micros``: at most the run's minimum fee."""

    fee_micros: int


@dataclass(frozen=True)
class Refund:
    """The whole reservation released and nothing charged."""


Resolution = Complete | Fail | Refund


class ResolutionRefused(ValueError):
    """A decision that would break a promise to the tenant or contradict the ledger.

    Raised inside the resolution's transaction, so nothing of it is written; the message
    is for the operator who asked.
    """


class ReceiptNotVerified(ResolutionRefused):
    def __init__(self, run_id: uuid.UUID | str, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__(
            f"The receipt of run {run_id} does not verify, so it cannot complete the run: "
            f"{'; '.join(reasons)}."
        )


class FeeAboveMinimum(ResolutionRefused):
    def __init__(self, run_id: uuid.UUID | str, fee_micros: int, minimum_fee_micros: int) -> None:
        self.fee_micros = fee_micros
        self.minimum_fee_micros = minimum_fee_micros
        super().__init__(
            f"A failed run is charged between $0.000000 and its minimum fee of "
            f"${micros_to_usd(minimum_fee_micros)}; ${micros_to_usd(fee_micros)} was asked "
            f"for run {run_id}."
        )


class LedgerDisagrees(ResolutionRefused):
    """The ledger finalized the run already, differently: its transfers are append-only."""

    def __init__(
        self, run_id: uuid.UUID | str, *, kind: str, amount_micros: int, transfer_id: int
    ) -> None:
        self.kind = kind
        self.amount_micros = amount_micros
        held = (
            "released its whole reservation"
            if kind == "VOID"
            else f"charged ${micros_to_usd(amount_micros)}"
        )
        super().__init__(
            f"The ledger already {held} for run {run_id} ({kind} transfer {transfer_id}), "
            "and a transfer is never undone. Choose the outcome that matches it, and "
            "correct any difference with an adjustment."
        )
