"""Every amount and every balance stays far inside 64 bits (billing/limits.py).

The finding: two top-ups of $9,000,000,000,000 passed validation; on SQLite the sum
became a float and the budget, the accounts list and the audit broke, on PostgreSQL the
top-up died with "bigint out of range". Here the overflow is tried through the service,
the CLI and the admin on PostgreSQL; ``test_ledger_bounds_embedded`` tries it on the
embedded default's SQLite.
"""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from rest_framework.test import APIClient

from billing import services
from billing.errors import BalanceLimitExceeded, TransferTooLarge
from billing.limits import MAX_BALANCE_MICROS, MAX_TRANSFER_MICROS
from billing.models import Account, Plan, Transfer
from reaper.audit import audit
from tests.billing.helpers import USD, fill_to_the_maximum_balance, new_run, reserved_run
from tests.factories import issue_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plans")]

# The finding's amount: $9,000,000,000,000, i.e. 9 * 10**18 micro-USD.
ABSURD_USD = "9000000000000"
ABSURD_MICROS = 9 * 10**18


def ledger(account: Account) -> tuple:
    account.refresh_from_db()
    return (
        account.credits_posted,
        account.debits_posted,
        account.debits_pending,
        Transfer.objects.filter(account=account).count(),
    )


def budget(account: Account) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(account.tenant)}")
    response = client.get("/v1/budget")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_reported_overflow_is_refused_by_the_service_and_writes_nothing(funded_account):
    account = funded_account(usd=10)
    before = ledger(account)

    for _ in range(2):
        with pytest.raises(TransferTooLarge, match=r"at most \$1000000\.000000"):
            services.top_up(account=account, amount_micros=ABSURD_MICROS, reason="typo")

    assert ledger(account) == before
    assert budget(account)["available_usd"] == "10.000000"
    assert audit() == []


def test_one_transfer_may_move_the_maximum_and_not_a_micro_dollar_more(funded_account):
    account = funded_account(usd=0)

    services.top_up(account=account, amount_micros=MAX_TRANSFER_MICROS, reason="largest")
    with pytest.raises(TransferTooLarge):
        services.top_up(account=account, amount_micros=MAX_TRANSFER_MICROS + 1, reason="over")
    with pytest.raises(TransferTooLarge):
        services.adjust(
            account=account, amount_micros=MAX_TRANSFER_MICROS + 1, reason="x", actor="a"
        )
    with pytest.raises(TransferTooLarge):
        services.adjust(
            account=account, amount_micros=-MAX_TRANSFER_MICROS - 1, reason="x", actor="a"
        )

    assert ledger(account) == (MAX_TRANSFER_MICROS, 0, 0, 1)


def test_a_credit_above_the_maximum_balance_is_refused_and_writes_nothing(funded_account):
    account = funded_account(usd=0)
    fill_to_the_maximum_balance(account)
    full = ledger(account)
    assert full[0] == MAX_BALANCE_MICROS

    with pytest.raises(BalanceLimitExceeded, match=r"above the maximum of \$1000000000\.000000"):
        services.top_up(account=account, amount_micros=1, reason="one more micro-dollar")
    with pytest.raises(BalanceLimitExceeded):
        services.adjust(account=account, amount_micros=1, reason="goodwill", actor="oncall")

    assert ledger(account) == full
    assert budget(account)["available_usd"] == "1000000000.000000"
    assert audit() == []


def test_spending_makes_room_below_the_maximum_balance_again(funded_account):
    account = funded_account(usd=0)
    fill_to_the_maximum_balance(account)
    run = reserved_run(account, USD)
    services.settle(
        run=run, charge_micros=USD, outcome="FAILED"
    )  # $1 spent: the account holds $1 less

    services.top_up(account=account, amount_micros=USD, reason="back to the maximum")

    with pytest.raises(BalanceLimitExceeded):
        services.top_up(account=account, amount_micros=1, reason="over")
    account.refresh_from_db()
    assert account.credits_posted - account.debits_posted == MAX_BALANCE_MICROS


def test_a_reservation_above_one_transfer_is_a_callers_bug(funded_account):
    account = funded_account(usd=10)
    run = new_run(account, USD)
    run.reserved_micros = MAX_TRANSFER_MICROS + 1

    with pytest.raises(TransferTooLarge):
        services.reserve(run=run, amount_micros=MAX_TRANSFER_MICROS + 1)
    assert ledger(account) == (10 * USD, 0, 0, 1)


def test_the_cli_refuses_the_overflow_with_a_clear_error_and_writes_nothing(funded_account):
    account = funded_account(usd=10)
    before = ledger(account)

    for _ in range(2):
        with pytest.raises(CommandError, match=r"top-up may move at most \$1000000\.000000"):
            call_command("dpp_topup", str(account.tenant_id), ABSURD_USD, stdout=StringIO())

    assert ledger(account) == before
    call_command("dpp_audit", stdout=StringIO())  # exits 0: no SystemExit


def test_the_cli_refuses_a_top_up_above_the_maximum_balance(funded_account):
    account = funded_account(usd=0)
    fill_to_the_maximum_balance(account)
    full = ledger(account)

    with pytest.raises(CommandError, match="nothing was credited"):
        call_command("dpp_topup", str(account.tenant_id), "0.000001", stdout=StringIO())

    assert ledger(account) == full


def test_an_opening_budget_above_one_transfer_creates_no_tenant(db):
    with pytest.raises(CommandError, match="may move at most"):
        call_command("dpp_tenant", "create", "whale", "--budget-usd", ABSURD_USD, stdout=StringIO())
    assert not Account.objects.filter(tenant__name="whale").exists()


def test_the_admin_refuses_the_overflow_and_writes_nothing(admin_client, funded_account):
    account = funded_account(usd=10)
    before = ledger(account)
    url = reverse("admin:billing_account_top_up", args=[account.pk])

    for _ in range(2):
        response = admin_client.post(
            url, {"amount_usd": ABSURD_USD, "reason": "typo", "confirm_large": "on"}
        )
        assert response.status_code == 200
        assert "top-up may move at most $1000000.000000" in response.content.decode()

    assert ledger(account) == before
    assert admin_client.get(reverse("admin:billing_account_changelist")).status_code == 200
    assert budget(account)["available_usd"] == "10.000000"


def test_the_admin_shows_the_services_refusal_above_the_maximum_balance(
    admin_client, funded_account
):
    account = funded_account(usd=0)
    fill_to_the_maximum_balance(account)
    full = ledger(account)

    response = admin_client.post(
        reverse("admin:billing_account_top_up", args=[account.pk]),
        {"amount_usd": "1.00", "reason": "wire 2026-12-01"},
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="error"' in page  # an error message, not a success
    assert "nothing was credited" in page
    assert 'value="wire 2026-12-01"' in page  # the typed form is kept
    assert ledger(account) == full


def test_the_check_constraints_refuse_what_bypasses_the_services(funded_account):
    account = funded_account(usd=10)
    accounts = Account.objects.filter(pk=account.pk)

    with pytest.raises(IntegrityError, match="account_within_bounds"), transaction.atomic():
        accounts.update(credits_posted=F("credits_posted") + ABSURD_MICROS)
    with pytest.raises(IntegrityError, match="account_within_bounds"), transaction.atomic():
        accounts.update(credits_posted=F("credits_posted") + MAX_BALANCE_MICROS)
    topups = Transfer.objects
    with pytest.raises(IntegrityError, match="transfer_amount_within_bounds"), transaction.atomic():
        topups.create(
            account=account,
            kind=Transfer.Kind.TOPUP,
            amount_micros=ABSURD_MICROS,
            available_after_micros=0,
        )
    plans = Plan.objects.filter(name="pilot")
    with pytest.raises(IntegrityError, match="plan_max_cost_within"), transaction.atomic():
        plans.update(max_cost_per_run_micros=ABSURD_MICROS)
    with pytest.raises(IntegrityError, match="plan_limits_at_least_one"), transaction.atomic():
        plans.update(submit_per_minute=0)

    assert ledger(account)[:3] == (10 * USD, 0, 0)
