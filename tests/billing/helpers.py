"""Helpers for the billing tests: reserved runs, what runs writes, real concurrency."""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections, transaction

from billing import services
from billing.fees import minimum_fee
from billing.limits import MAX_BALANCE_MICROS, MAX_TRANSFER_MICROS
from billing.models import Account, Transfer
from runs.models import Run
from tests.factories import RunFactory

USD = 1_000_000


def new_run(account: Account, micros: int = USD) -> Run:
    """A QUEUED run row of the account's tenant, not yet reserved."""
    return RunFactory(
        tenant=account.tenant, reserved_micros=micros, minimum_fee_micros=minimum_fee(micros)
    )


def reserved_run(account: Account, micros: int = USD) -> Run:
    run = new_run(account, micros)
    services.reserve(run=run, amount_micros=micros)
    return run


def fill_to_the_maximum_balance(account: Account) -> None:
    """Arrange what top-ups of the maximum transfer leave on an empty account: exactly
    the maximum balance, its transfers adding up (the audit is clean).

    A thousand calls of the service would take a minute; two statements do not.
    """
    assert (account.credits_posted, account.debits_posted) == (0, 0)
    count = MAX_BALANCE_MICROS // MAX_TRANSFER_MICROS
    with transaction.atomic():
        Transfer.objects.bulk_create(
            Transfer(
                account=account,
                kind=Transfer.Kind.TOPUP,
                amount_micros=MAX_TRANSFER_MICROS,
                available_after_micros=(index + 1) * MAX_TRANSFER_MICROS,
            )
            for index in range(count)
        )
        Account.objects.filter(pk=account.pk).update(credits_posted=count * MAX_TRANSFER_MICROS)
    account.refresh_from_db()


def record_outcome(run: Run, transfer: Transfer) -> None:
    """What the runs app writes beside a finalization, so the audit sees a whole run."""
    if transfer.kind == Transfer.Kind.SETTLE:
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.FAILED,
            money_state=Run.MoneyState.SETTLED,
            actual_cost_micros=transfer.amount_micros,
        )
    else:
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.FAILED, money_state=Run.MoneyState.REFUNDED, actual_cost_micros=0
        )


@dataclass(frozen=True)
class Outcome:
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_concurrently(calls: list[Callable[[], Any]], timeout: float = 60) -> list[Outcome]:
    """Run each call in its own thread (so its own DB connection), released together.

    Every thread connects before the barrier, so the race is on the statements, not on
    connection setup; each closes its connection at the end.
    """
    barrier = threading.Barrier(len(calls))
    outcomes: list[Outcome | None] = [None] * len(calls)

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=timeout)
            outcomes[index] = Outcome(value=call())
        except BaseException as exc:
            outcomes[index] = Outcome(error=exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return [o for o in outcomes if o is not None]
