import pytest
from django.contrib.admin import site
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse

from billing.models import Account, Transfer
from tests.billing.helpers import USD, reserved_run
from tests.factories import seeded_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", password=None)


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def test_transfer_admin_refuses_add_change_delete_even_for_a_superuser(superuser, funded_account):
    funded_account(usd=1)
    transfer = Transfer.objects.get()
    request = RequestFactory().get("/admin/")
    request.user = superuser
    model_admin = site._registry[Transfer]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, transfer)
    assert not model_admin.has_delete_permission(request, transfer)
    assert model_admin.has_view_permission(request, transfer)


def test_transfer_admin_pages_are_view_only(admin_client, funded_account):
    funded_account(usd=1)
    transfer = Transfer.objects.get()
    change_url = reverse("admin:billing_transfer_change", args=[transfer.pk])
    assert admin_client.get(reverse("admin:billing_transfer_changelist")).status_code == 200
    assert admin_client.get(change_url).status_code == 200
    assert admin_client.get(reverse("admin:billing_transfer_add")).status_code == 403
    response = admin_client.post(change_url, {"amount_micros": 999, "kind": "TOPUP"})
    assert response.status_code == 403
    delete_url = reverse("admin:billing_transfer_delete", args=[transfer.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    transfer.refresh_from_db()
    assert transfer.amount_micros == USD


def test_top_up_action_shows_a_form_first(admin_client, funded_account):
    account = funded_account(usd=0)
    response = admin_client.post(
        reverse("admin:billing_account_changelist"),
        {"action": "top_up", "_selected_action": [account.pk]},
    )
    assert response.status_code == 200
    assert b"amount_usd" in response.content
    assert not Transfer.objects.exists()


def test_top_up_action_credits_and_records_the_admin_as_actor(admin_client, funded_account):
    first, second = funded_account(usd=0), funded_account(usd=1)
    response = admin_client.post(
        reverse("admin:billing_account_changelist"),
        {
            "action": "top_up",
            "_selected_action": [first.pk, second.pk],
            "apply": "1",
            "amount_usd": "2.500000",
            "reason": "wire 2026-11-28",
        },
    )
    assert response.status_code == 302
    topups = Transfer.objects.filter(reason="wire 2026-11-28")
    assert sorted(t.account_id for t in topups) == sorted([first.pk, second.pk])
    assert {t.actor for t in topups} == {"root"}
    assert {t.amount_micros for t in topups} == {2_500_000}
    first.refresh_from_db()
    assert first.credits_posted == 2_500_000


def test_top_up_action_rejects_an_invalid_amount(admin_client, funded_account):
    account = funded_account(usd=0)
    response = admin_client.post(
        reverse("admin:billing_account_changelist"),
        {
            "action": "top_up",
            "_selected_action": [account.pk],
            "apply": "1",
            "amount_usd": "0.0000001",
            "reason": "x",
        },
    )
    assert response.status_code == 200
    assert b"more than 6 decimal places" in response.content
    assert not Transfer.objects.exists()


def test_account_change_form_edits_the_plan_but_never_the_balances(admin_client, funded_account):
    account = funded_account(usd=5)
    url = reverse("admin:billing_account_change", args=[account.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"5.000000" in page.content
    # Meanwhile a run reserves money; saving the form must not write the stale columns.
    reserved_run(account, USD)
    free = seeded_plan("free")
    response = admin_client.post(
        url, {"plan": free.pk, "credits_posted": 10**12, "debits_pending": 0}
    )
    assert response.status_code == 302
    account = Account.objects.get(pk=account.pk)
    assert account.plan == free
    assert (account.credits_posted, account.debits_pending) == (5 * USD, USD)


def test_accounts_cannot_be_added_or_deleted_in_the_admin(admin_client, funded_account):
    account = funded_account(usd=1)
    assert admin_client.get(reverse("admin:billing_account_add")).status_code == 403
    url = reverse("admin:billing_account_delete", args=[account.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403


def test_plans_are_editable(admin_client):
    plan = seeded_plan("free")
    url = reverse("admin:billing_plan_change", args=[plan.pk])
    response = admin_client.post(
        url,
        {
            "name": "free",
            "submit_per_minute": 11,
            "poll_per_minute": 120,
            "max_concurrent_runs": 2,
            "max_cost_per_run_micros": 500_000,
            "allowed_pack_types": '["decision"]',
            "retention_days": 7,
        },
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.submit_per_minute == 11
