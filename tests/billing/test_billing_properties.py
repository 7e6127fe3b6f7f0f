"""Property: any sequence of ledger operations keeps the columns equal to the transfers."""

from dataclasses import dataclass, field

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import services
from billing.errors import ChargeExceedsReservation, InsufficientBudget
from billing.models import Account, Transfer
from billing.selectors import balances_from_transfers
from reaper.audit import audit
from runs.models import Run
from tests.billing.helpers import USD, new_run, record_outcome
from tests.factories import AccountFactory

amounts = st.integers(min_value=1, max_value=3 * USD)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("top_up"), amounts),
        st.tuples(st.just("reserve"), amounts),
        st.tuples(st.just("settle"), st.integers(0, 30), st.integers(0, 3 * USD + 1)),
        st.tuples(st.just("void"), st.integers(0, 30)),
        st.tuples(st.just("adjust"), st.integers(-3 * USD, 3 * USD).filter(bool)),
    ),
    max_size=25,
)


@dataclass
class Model:
    """The expected state, kept in plain integers beside the real ledger."""

    credits: int = 0
    debits: int = 0
    pending: int = 0
    runs: list[tuple[Run, int]] = field(default_factory=list)
    finalized: dict = field(default_factory=dict)

    @property
    def available(self) -> int:
        return self.credits - self.debits - self.pending


def apply(op: tuple, account: Account, model: Model) -> None:
    kind = op[0]
    if kind == "top_up":
        services.top_up(account=account, amount_micros=op[1])
        model.credits += op[1]
    elif kind == "reserve":
        amount = op[1]
        try:
            # As a submit does: the run and its reservation commit or vanish together.
            with transaction.atomic():
                run = new_run(account, amount)
                services.reserve(run=run, amount_micros=amount)
        except InsufficientBudget:
            assert amount > model.available
        else:
            assert amount <= model.available
            model.pending += amount
            model.runs.append((run, amount))
    elif kind == "adjust":
        amount = op[1]
        try:
            services.adjust(account=account, amount_micros=amount, reason="property", actor="t")
        except InsufficientBudget:
            assert -amount > model.available
        else:
            if amount > 0:
                model.credits += amount
            else:
                assert -amount <= model.available
                model.debits -= amount
    elif model.runs:
        run, reserved = model.runs[op[1] % len(model.runs)]
        charge = op[2] if kind == "settle" else 0
        if run.id in model.finalized:
            first = model.finalized[run.id]
            again = (
                services.settle(run=run, charge_micros=charge, outcome="FAILED")
                if kind == "settle"
                else services.void(run=run, outcome="FAILED")
            )
            assert again.result != services.Finalization.POSTED  # nothing moved
            assert again.transfer.pk == first.pk
            return
        if charge > reserved:
            with pytest.raises(ChargeExceedsReservation):
                services.settle(run=run, charge_micros=charge, outcome="FAILED")
            return
        transfer = (
            services.settle(run=run, charge_micros=charge, outcome="FAILED")
            if kind == "settle"
            else services.void(run=run, outcome="FAILED")
        ).transfer
        record_outcome(run, transfer)
        model.finalized[run.id] = transfer
        model.pending -= reserved
        model.debits += charge


def assert_consistent(account: Account, model: Model) -> None:
    account.refresh_from_db()
    columns = (account.credits_posted, account.debits_posted, account.debits_pending)
    assert columns == (model.credits, model.debits, model.pending)
    assert min(columns) >= 0
    assert account.available_micros >= 0
    assert balances_from_transfers(account=account) == {
        "credits_posted": account.credits_posted,
        "debits_posted": account.debits_posted,
        "debits_pending": account.debits_pending,
    }


@pytest.mark.django_db
@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_any_sequence_of_operations_keeps_the_ledger_consistent(ops):
    # Each example runs in its own savepoint, rolled back at the end, so examples start
    # from the same empty ledger and the audit judges only this sequence.
    with transaction.atomic():
        account = AccountFactory()
        model = Model()
        for op in ops:
            apply(op, account, model)
            assert_consistent(account, model)
        assert Transfer.objects.filter(account=account, kind="RESERVE").count() == len(model.runs)
        assert audit() == []
        transaction.set_rollback(True)
