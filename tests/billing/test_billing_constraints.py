"""The database refuses a negative balance and a second debit even if the code is wrong."""

import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from billing import services
from billing.models import Account, Transfer
from tests.billing.helpers import USD, reserved_run

pytestmark = pytest.mark.django_db


def raw(sql: str, params: list) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_transfer(
    *,
    account: Account,
    kind: str,
    run_id: uuid.UUID | None,
    amount: int,
    outcome: str | None = None,
    available_after: int = 0,
) -> None:
    if outcome is None:
        outcome = "FAILED" if kind in ("SETTLE", "VOID") else ""
    raw(
        f"INSERT INTO {Transfer._meta.db_table} "
        "(account_id, kind, run_id, amount_micros, reason, actor, trace_id, created_at, "
        "outcome, available_after_micros) "
        "VALUES (%s, %s, %s, %s, '', '', '', NOW(), %s, %s)",
        [account.pk, kind, run_id, amount, outcome, available_after],
    )


def test_raw_update_that_would_overdraw_is_rejected(funded_account):
    account = funded_account(usd=1)
    with pytest.raises(IntegrityError, match="account_cannot_overdraw"):
        raw(
            f"UPDATE {Account._meta.db_table} SET debits_pending = debits_pending + %s "
            "WHERE id = %s",
            [USD + 1, account.pk],
        )
    with pytest.raises(IntegrityError, match="account_cannot_overdraw"):
        raw(
            f"UPDATE {Account._meta.db_table} SET debits_posted = credits_posted + 1 WHERE id = %s",
            [account.pk],
        )
    account.refresh_from_db()
    assert (account.debits_posted, account.debits_pending) == (0, 0)


def test_raw_update_to_a_negative_column_is_rejected(funded_account):
    account = funded_account(usd=1)
    with pytest.raises(IntegrityError, match="account_columns_non_negative"):
        raw(
            f"UPDATE {Account._meta.db_table} SET debits_pending = -1 WHERE id = %s",
            [account.pk],
        )


def test_a_second_settle_inserted_by_raw_sql_is_rejected(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    services.settle(run=run, charge_micros=100_000, outcome="FAILED")
    with pytest.raises(IntegrityError, match="transfer_one_finalization_per_run"):
        insert_transfer(account=account, kind="SETTLE", run_id=run.id, amount=200_000)
    with pytest.raises(IntegrityError, match="transfer_one_finalization_per_run"):
        insert_transfer(account=account, kind="VOID", run_id=run.id, amount=USD)
    assert Transfer.objects.filter(run=run, kind__in=["SETTLE", "VOID"]).count() == 1


def test_a_second_reserve_inserted_by_raw_sql_is_rejected(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    with pytest.raises(IntegrityError, match="transfer_one_reserve_per_run"):
        insert_transfer(account=account, kind="RESERVE", run_id=run.id, amount=USD)


@pytest.mark.parametrize(
    ("kind", "amount", "with_run"),
    [
        ("TOPUP", 0, False),
        ("TOPUP", -5, False),
        ("ADJUST", 0, False),
        ("RESERVE", -1, True),
        ("SETTLE", 1, False),  # a run transfer without a run
    ],
)
def test_transfer_shape_checks_refuse_malformed_rows(funded_account, kind, amount, with_run):
    account = funded_account(usd=10)
    run = reserved_run(account, USD) if with_run else None
    with pytest.raises(IntegrityError):
        insert_transfer(account=account, kind=kind, run_id=run.id if run else None, amount=amount)


def test_an_adjustment_without_a_reason_is_rejected_by_the_database(funded_account):
    account = funded_account(usd=10)
    with pytest.raises(IntegrityError, match="transfer_adjust_has_reason"):
        insert_transfer(account=account, kind="ADJUST", run_id=None, amount=5)


def test_a_finalization_without_its_outcome_is_rejected(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    with pytest.raises(IntegrityError, match="transfer_finalization_states_outcome"):
        insert_transfer(account=account, kind="VOID", run_id=run.id, amount=USD, outcome="")


def test_a_topup_with_an_outcome_is_rejected(funded_account):
    account = funded_account(usd=10)
    with pytest.raises(IntegrityError, match="transfer_finalization_states_outcome"):
        insert_transfer(account=account, kind="TOPUP", run_id=None, amount=1, outcome="FAILED")


def test_a_negative_balance_after_a_transfer_is_rejected(funded_account):
    account = funded_account(usd=10)
    with pytest.raises(IntegrityError, match="transfer_available_after_non_negative"):
        insert_transfer(account=account, kind="TOPUP", run_id=None, amount=1, available_after=-1)
