"""Every write to the ledger. Each function is one transaction and nests in a caller's.

Account columns change only through single conditional UPDATEs with F() expressions:
the WHERE clause is the guard (it is re-evaluated against the latest row version when
two transactions race), the table's CHECK constraints are the backstop, and the
append-only transfer written in the same transaction is the record. Nothing here reads a
balance into Python and writes it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Subquery
from django.db.models.functions import Now

from billing.errors import (
    AccountNotFound,
    BalanceLimitExceeded,
    ChargeExceedsReservation,
    InsufficientBudget,
    LedgerInconsistent,
    PlanNotFound,
    ReasonRequired,
    ReservationExists,
    ReservationNotFound,
    TransferTooLarge,
)
from billing.limits import MAX_BALANCE_MICROS, MAX_CREDITED_MICROS, MAX_TRANSFER_MICROS
from billing.models import Account, Plan, Transfer
from billing.money import InvalidAmount, require_micros
from dpp.metrics import MONEY
from dpp.services import tenant_create
from dpp.tracing import current_ids

if TYPE_CHECKING:
    from dpp.models import Tenant


class RunRef(Protocol):
    """What billing needs of a ``runs.Run``: billing knows a run only by its ids."""

    id: UUID
    tenant_id: UUID
    reserved_micros: int


FINALIZATIONS = (Transfer.Kind.SETTLE, Transfer.Kind.VOID)


class Finalization(StrEnum):
    """What ``settle`` or ``void`` did, as TigerBeetle reports a two-phase transfer."""

    POSTED = "posted"
    """This call wrote the run's SETTLE or VOID and moved the money."""
    ALREADY_POSTED = "already_posted"
    """The run already had a SETTLE: nothing moved."""
    ALREADY_VOIDED = "already_voided"
    """The run already had a VOID: nothing moved."""


@dataclass(frozen=True)
class Finalized:
    """The outcome of ``settle``/``void`` and the run's one finalizing transfer."""

    result: Finalization
    transfer: Transfer

    @property
    def charged_micros(self) -> int:
        """What the run costs the tenant, whoever finalized it."""
        return self.transfer.amount_micros if self.transfer.kind == Transfer.Kind.SETTLE else 0


def _record(*, account_id: int, **fields) -> Transfer:
    """Append one transfer (its trace id attached) and count it once the money is real.

    Called right after the UPDATE that moved the account, whose row lock this transaction
    now holds until it commits: the balance the INSERT reads is exactly the one this
    transfer left, and the next transfer of the account takes a later id.
    """
    available = Account.objects.filter(pk=account_id).values(
        balance=F("credits_posted") - F("debits_posted") - F("debits_pending")
    )
    transfer = Transfer.objects.create(
        account_id=account_id,
        available_after_micros=Subquery(available[:1]),
        trace_id=current_ids().get("trace_id", ""),
        **fields,
    )
    transaction.on_commit(
        lambda: MONEY.labels(kind=transfer.kind.lower()).inc(abs(transfer.amount_micros))
    )
    return transfer


def _available(*, pk: int) -> int:
    """The balance for an error message only; it may be stale the moment it is read."""
    row = (
        Account.objects.filter(pk=pk)
        .values_list("credits_posted", "debits_posted", "debits_pending")
        .first()
    )
    if row is None:
        return 0
    credits, debits, pending = row
    return credits - debits - pending


def _transfer_amount(value: object, *, name: str, what: str) -> int:
    """``value`` as integer micros whose magnitude one transfer may move."""
    amount = require_micros(value, name=name)
    if abs(amount) > MAX_TRANSFER_MICROS:
        raise TransferTooLarge(abs(amount), what=what)
    return amount


def _room_for_credit(amount_micros: int) -> Q:
    """The guard of a credit: the account stays within both bounds of ``billing.limits``.

    Written as ``column <= constant - amount`` so that no operand of the comparison can
    leave 64 bits either (``amount`` is already at most one transfer).
    """
    return Q(
        credits_posted__lte=F("debits_posted") + (MAX_BALANCE_MICROS - amount_micros),
    ) & Q(credits_posted__lte=MAX_CREDITED_MICROS - amount_micros)


def _credit(account: Account, amount_micros: int) -> None:
    """Add ``amount_micros`` (> 0) to credits_posted, or raise with nothing written."""
    rows = Account.objects.filter(pk=account.pk)
    updated = rows.filter(_room_for_credit(amount_micros)).update(
        credits_posted=F("credits_posted") + amount_micros, updated_at=Now()
    )
    if updated:
        return
    row = rows.values_list("credits_posted", "debits_posted").first()
    if row is None:
        raise AccountNotFound(account.tenant_id)
    credited, spent = row
    raise BalanceLimitExceeded(
        account.tenant_id,
        amount_micros,
        balance_micros=credited - spent,
        credited_micros=credited,
    )


# --- Accounts ---------------------------------------------------------------------------


@transaction.atomic
def account_open(*, tenant: Tenant, plan: Plan | None = None) -> Account:
    """The tenant's account, created on the default plan if it has none yet.

    Idempotent, so a retried onboarding script cannot fail half-way; ``plan`` applies
    only to a new account (changing plans is an admin edit, not a side effect).
    """
    if plan is None:
        try:
            plan = Plan.objects.get(name=settings.DPP_DEFAULT_PLAN)
        except Plan.DoesNotExist as exc:
            raise PlanNotFound(settings.DPP_DEFAULT_PLAN) from exc
    account, _ = Account.objects.get_or_create(tenant=tenant, defaults={"plan": plan})
    return account


@transaction.atomic
def tenant_open(
    *,
    name: str,
    plan_name: str | None = None,
    budget_micros: int = 0,
    actor: str = "",
) -> Account:
    """A new tenant with its account and, if ``budget_micros`` > 0, an opening TOPUP.

    One transaction: a bad plan name or amount leaves no tenant behind.
    """
    budget_micros = require_micros(budget_micros, name="budget_micros")
    if budget_micros < 0:
        raise InvalidAmount("An opening budget must not be negative.")
    plan = None
    if plan_name is not None:
        try:
            plan = Plan.objects.get(name=plan_name)
        except Plan.DoesNotExist as exc:
            raise PlanNotFound(plan_name) from exc
    account = account_open(tenant=tenant_create(name=name), plan=plan)
    if budget_micros:
        top_up(account=account, amount_micros=budget_micros, reason="opening budget", actor=actor)
        account.refresh_from_db()
    return account


# --- Credits ----------------------------------------------------------------------------


@transaction.atomic
def top_up(*, account: Account, amount_micros: int, reason: str = "", actor: str = "") -> Transfer:
    """Credit ``amount_micros`` (> 0, at most one transfer) to the account.

    Raises ``TransferTooLarge`` or ``BalanceLimitExceeded`` (nothing written) when the
    amount or the resulting balance would leave the bounds of ``billing.limits``.
    """
    amount_micros = _transfer_amount(amount_micros, name="amount_micros", what="top-up")
    if amount_micros <= 0:
        raise InvalidAmount("A top-up must be a positive amount.")
    _credit(account, amount_micros)
    return _record(
        account_id=account.pk,
        kind=Transfer.Kind.TOPUP,
        amount_micros=amount_micros,
        reason=reason,
        actor=actor,
    )


@transaction.atomic
def adjust(*, account: Account, amount_micros: int, reason: str, actor: str) -> Transfer:
    """An operator's signed correction: positive credits, negative posts a debit.

    A debit may not take the account below what is already spent and reserved, for the
    same reason a reservation may not: the CHECK constraint would refuse it anyway. A
    credit is bounded like a top-up.
    """
    amount_micros = _transfer_amount(amount_micros, name="amount_micros", what="adjustment")
    if amount_micros == 0:
        raise InvalidAmount("An adjustment must not be zero.")
    if not reason.strip():
        raise ReasonRequired
    if amount_micros > 0:
        _credit(account, amount_micros)
    else:
        debit = -amount_micros
        rows = Account.objects.filter(pk=account.pk)
        updated = rows.filter(
            debits_posted__lte=F("credits_posted") - F("debits_pending") - debit
        ).update(debits_posted=F("debits_posted") + debit, updated_at=Now())
        if not updated and rows.exists():
            raise InsufficientBudget(
                account.tenant_id,
                debit,
                _available(pk=account.pk),
                purpose="debit adjustment",
                pointer=None,
            )
        if not updated:
            raise AccountNotFound(account.tenant_id)
    return _record(
        account_id=account.pk,
        kind=Transfer.Kind.ADJUST,
        amount_micros=amount_micros,
        reason=reason,
        actor=actor,
    )


# --- Runs: reserve, then exactly one of settle / void ----------------------------------


@transaction.atomic
def reserve(*, run: RunRef, amount_micros: int) -> Transfer:
    """Move ``amount_micros`` of the tenant's available budget to pending for ``run``.

    ``amount_micros`` must equal ``run.reserved_micros``: the run row and the ledger
    state the same reservation, and the audit checks that they do.
    Raises InsufficientBudget (nothing written) when the budget does not cover it. Plans
    cap a run's cost below one transfer, so ``TransferTooLarge`` here is a caller's bug.
    """
    amount_micros = _transfer_amount(amount_micros, name="amount_micros", what="reservation")
    if amount_micros <= 0:
        raise InvalidAmount("A reservation must be a positive amount.")
    if amount_micros != run.reserved_micros:
        raise InvalidAmount(
            f"Reservation of {amount_micros} µUSD differs from run.reserved_micros "
            f"({run.reserved_micros})."
        )
    # Account ids never change, so reading the id first is not a read-modify-write.
    account_id = (
        Account.objects.filter(tenant_id=run.tenant_id).values_list("pk", flat=True).first()
    )
    if account_id is None:
        raise AccountNotFound(run.tenant_id)
    updated = Account.objects.filter(
        pk=account_id,
        debits_pending__lte=F("credits_posted") - F("debits_posted") - amount_micros,
    ).update(debits_pending=F("debits_pending") + amount_micros, updated_at=Now())
    if not updated:
        raise InsufficientBudget(run.tenant_id, amount_micros, _available(pk=account_id))
    try:
        with transaction.atomic():
            return _record(
                account_id=account_id,
                kind=Transfer.Kind.RESERVE,
                run_id=run.id,
                amount_micros=amount_micros,
            )
    except IntegrityError as exc:
        # transfer_one_reserve_per_run; raising rolls back the UPDATE above with it.
        raise ReservationExists(run.id) from exc


@transaction.atomic
def settle(*, run: RunRef, charge_micros: int, outcome: str) -> Finalized:
    """Post ``charge_micros`` (0 ≤ charge ≤ reserved) and release the whole reservation.

    ``outcome`` is how the run ended (``Transfer.Outcome``), kept on the transfer.
    Idempotent: if the run already has a SETTLE or VOID, the result says which and carries
    that transfer, and nothing moves — a second finalize never writes a second debit.
    """
    charge_micros = require_micros(charge_micros, name="charge_micros")
    if charge_micros < 0:
        raise InvalidAmount("A charge must not be negative.")
    return _finalize(
        run=run, kind=Transfer.Kind.SETTLE, charge_micros=charge_micros, outcome=outcome
    )


@transaction.atomic
def void(*, run: RunRef, outcome: str) -> Finalized:
    """Release the whole reservation without a charge; the transfer's amount is the release.

    Idempotent in the same way as ``settle``.
    """
    return _finalize(run=run, kind=Transfer.Kind.VOID, charge_micros=0, outcome=outcome)


def _finalize(*, run: RunRef, kind: str, charge_micros: int, outcome: str) -> Finalized:
    if outcome not in Transfer.Outcome.values:
        raise ValueError(f"outcome must be one of {Transfer.Outcome.values}, not {outcome!r}")
    existing = _finalization(run.id)
    if existing is not None:
        return existing
    reservation = (
        Transfer.objects.filter(run_id=run.id, kind=Transfer.Kind.RESERVE)
        .only("id", "account_id", "amount_micros")
        .first()
    )
    if reservation is None:
        raise ReservationNotFound(run.id)
    reserved = reservation.amount_micros
    if charge_micros > reserved:
        raise ChargeExceedsReservation(run.id, charge_micros, reserved)

    # The account first, then the transfer (so the transfer records the balance it left,
    # see _record). A concurrent finalize of the same run waits here for our row lock; the
    # partial unique index transfer_one_finalization_per_run then refuses its INSERT, and
    # the savepoint takes its UPDATE back: only one of them moves money.
    try:
        with transaction.atomic():
            updated = Account.objects.filter(
                pk=reservation.account_id, debits_pending__gte=reserved
            ).update(
                debits_pending=F("debits_pending") - reserved,
                debits_posted=F("debits_posted") + charge_micros,
                updated_at=Now(),
            )
            if not updated:
                raise LedgerInconsistent(
                    f"Account {reservation.account_id} has less pending than run {run.id} reserved."
                )
            transfer = _record(
                account_id=reservation.account_id,
                kind=kind,
                run_id=run.id,
                amount_micros=charge_micros if kind == Transfer.Kind.SETTLE else reserved,
                outcome=outcome,
            )
    except (IntegrityError, LedgerInconsistent):
        # The race above, seen after the winner committed: its release may have left too
        # little pending for ours to pass the guard, or our INSERT hit the unique index.
        existing = _finalization(run.id)
        if existing is None:
            raise
        return existing
    return Finalized(Finalization.POSTED, transfer)


def _finalization(run_id: UUID) -> Finalized | None:
    transfer = Transfer.objects.filter(run_id=run_id, kind__in=FINALIZATIONS).first()
    if transfer is None:
        return None
    already = (
        Finalization.ALREADY_POSTED
        if transfer.kind == Transfer.Kind.SETTLE
        else Finalization.ALREADY_VOIDED
    )
    return Finalized(already, transfer)
