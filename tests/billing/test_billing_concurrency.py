"""Races against real PostgreSQL: each thread has its own connection and transaction."""

import pytest
from django.core.management import call_command

from billing import services
from billing.errors import InsufficientBudget
from billing.models import Account, Transfer
from billing.services import Finalization
from reaper.audit import audit
from tests.billing.helpers import USD, new_run, record_outcome, reserved_run, run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_concurrent_reservations_never_overdraw(funded_account, capsys):
    account = funded_account(usd=10)
    runs = [new_run(account, USD) for _ in range(50)]

    outcomes = run_concurrently(
        [lambda run=run: services.reserve(run=run, amount_micros=USD) for run in runs]
    )

    succeeded = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if isinstance(o.error, InsufficientBudget)]
    assert len(outcomes) == 50
    assert (len(succeeded), len(refused)) == (10, 40), [o.error for o in outcomes if not o.ok]
    account.refresh_from_db()
    assert (account.credits_posted, account.debits_posted, account.debits_pending) == (
        10 * USD,
        0,
        10 * USD,
    )
    assert Transfer.objects.filter(account=account, kind="RESERVE").count() == 10
    # The 40 refused runs were never reserved, as a refused submit would roll them back.
    reserved = set(Transfer.objects.filter(kind="RESERVE").values_list("run_id", flat=True))
    for run in runs:
        if run.id not in reserved:
            run.delete()
    assert audit() == []
    call_command("dpp_audit")
    assert capsys.readouterr().out.startswith(
        "ledger audit clean: 1 accounts, 11 transfers, 10 runs"
    )


def test_concurrent_settle_void_settle_finalize_exactly_once(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, 2 * USD)

    outcomes = run_concurrently(
        [
            lambda: services.settle(run=run, charge_micros=300_000, outcome="FAILED"),
            lambda: services.void(run=run, outcome="FAILED"),
            lambda: services.settle(run=run, charge_micros=1_500_000, outcome="FAILED"),
        ]
    )

    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    finalizations = Transfer.objects.filter(run=run, kind__in=["SETTLE", "VOID"])
    assert finalizations.count() == 1
    winner = finalizations.get()
    assert {o.value.transfer.pk for o in outcomes} == {winner.pk}
    assert sorted(o.value.result != Finalization.POSTED for o in outcomes) == [False, True, True]
    account.refresh_from_db()
    charged = winner.amount_micros if winner.kind == "SETTLE" else 0
    assert (account.credits_posted, account.debits_posted, account.debits_pending) == (
        10 * USD,
        charged,
        0,
    )
    record_outcome(run, winner)
    assert audit() == []


def test_many_runs_finalized_concurrently_keep_the_account_consistent(funded_account):
    account = funded_account(usd=20)
    runs = [reserved_run(account, USD) for _ in range(12)]

    calls = []
    for index, run in enumerate(runs):
        if index % 3 == 0:
            calls.append(lambda run=run: services.void(run=run, outcome="FAILED"))
        calls.append(
            lambda run=run, c=index * 10_000: services.settle(
                run=run, charge_micros=c, outcome="FAILED"
            )
        )
    outcomes = run_concurrently(calls)

    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for run in runs:
        record_outcome(run, Transfer.objects.get(run=run, kind__in=["SETTLE", "VOID"]))
    account = Account.objects.get(pk=account.pk)
    assert account.debits_pending == 0
    assert audit() == []
