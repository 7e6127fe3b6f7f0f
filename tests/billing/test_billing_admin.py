"""The billing admin: plans in USD with registered packs, accounts with their top-up page
and links, and the read-only ledger with signed amounts."""

import re

import pytest
from django.contrib.admin import site
from django.test import Client, RequestFactory
from django.urls import reverse

from billing import services
from billing.models import Account, Plan, Transfer
from tests.billing.helpers import USD, reserved_run
from tests.factories import seeded_plan

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:billing_account_changelist")


def top_up_page(account: Account) -> str:
    return reverse("admin:billing_account_top_up", args=[account.pk])


def plan_form(**changes: object) -> dict:
    return {
        "name": "free",
        "submit_per_minute": 11,
        "poll_per_minute": 120,
        "max_concurrent_runs": 2,
        "max_cost_per_run_usd": "0.50",
        "allowed_pack_types": ["decision"],
        "retention_days": 7,
        **changes,
    }


# --- The ledger is read-only ----------------------------------------------------------


def test_transfer_admin_refuses_add_change_delete_even_for_a_superuser(operator, funded_account):
    funded_account(usd=1)
    transfer = Transfer.objects.get()
    request = RequestFactory().get("/admin/")
    request.user = operator
    model_admin = site._registry[Transfer]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, transfer)
    assert not model_admin.has_delete_permission(request, transfer)
    assert model_admin.has_view_permission(request, transfer)


def test_transfer_admin_pages_are_view_only(admin_client: Client, funded_account):
    funded_account(usd=1)
    transfer = Transfer.objects.get()
    change_url = reverse("admin:billing_transfer_change", args=[transfer.pk])
    assert admin_client.get(reverse("admin:billing_transfer_changelist")).status_code == 200
    page = admin_client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:billing_transfer_add")).status_code == 403
    response = admin_client.post(change_url, {"amount_micros": 999, "kind": "TOPUP"})
    assert response.status_code == 403
    delete_url = reverse("admin:billing_transfer_delete", args=[transfer.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    transfer.refresh_from_db()
    assert transfer.amount_micros == USD


def test_transfer_lists_sign_amounts_as_the_tenant_sees_them(admin_client: Client, funded_account):
    account = funded_account(usd=10)
    charged, voided = reserved_run(account, USD), reserved_run(account, 2 * USD)
    services.settle(run=charged, charge_micros=9_000, outcome="FAILED")
    services.void(run=voided, outcome="FAILED")
    services.adjust(account=account, amount_micros=-500_000, reason="correction", actor="oncall")

    page = admin_client.get(reverse("admin:billing_transfer_changelist")).content.decode()

    for amount in (
        "+10.000000 credit",
        "-1.000000 hold",
        "-2.000000 hold",
        "-0.009000 debit",
        "+2.000000 release",
        "-0.500000 debit",
    ):
        assert amount in page


def test_a_transfer_links_its_account_and_run(admin_client: Client, funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    reserve = Transfer.objects.get(kind=Transfer.Kind.RESERVE)

    page = admin_client.get(
        reverse("admin:billing_transfer_change", args=[reserve.pk])
    ).content.decode()

    assert reverse("admin:billing_account_change", args=[account.pk]) in page
    assert reverse("admin:runs_run_change", args=[run.pk]) in page


# --- Accounts ---------------------------------------------------------------------------


def test_the_top_up_page_names_the_tenant_and_its_balance(admin_client: Client, funded_account):
    account = funded_account(usd=5)
    reserved_run(account, USD)
    change = admin_client.get(reverse("admin:billing_account_change", args=[account.pk]))
    assert top_up_page(account) in change.content.decode()

    page = admin_client.get(top_up_page(account)).content.decode()

    assert account.tenant.name in page
    assert str(account.tenant_id) in page
    assert re.search(r"available \(USD\)</th><td>4\.000000<", page)
    assert re.search(r"reserved \(USD\)</th><td>1\.000000<", page)


def test_a_top_up_on_the_account_page_credits_and_records_the_operator(
    admin_client: Client, funded_account
):
    account = funded_account(usd=1)

    response = admin_client.post(
        top_up_page(account), {"amount_usd": "2.50", "reason": "wire 2026-11-28"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse(
        "admin:billing_account_change", args=[account.pk]
    )
    assert f"Topped up {account.tenant.name} by $2.500000" in response.content.decode()
    topup = Transfer.objects.get(reason="wire 2026-11-28")
    assert (topup.kind, topup.amount_micros, topup.actor) == ("TOPUP", 2_500_000, "oncall")
    account.refresh_from_db()
    assert account.available_micros == 3_500_000


def test_a_large_top_up_asks_for_confirmation_first(admin_client: Client, funded_account):
    account = funded_account(usd=0)
    form = {"amount_usd": "25000", "reason": "annual prepayment"}

    asked = admin_client.post(top_up_page(account), form)

    assert asked.status_code == 200
    assert "$25000.000000 is a large top-up: check this box to confirm it." in (
        asked.content.decode()
    )
    assert not Transfer.objects.exists()

    confirmed = admin_client.post(top_up_page(account), {**form, "confirm_large": "on"})

    assert confirmed.status_code == 302
    assert Transfer.objects.get().amount_micros == 25_000 * USD


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("0.0000001", "more than 6 decimal places"),
        ("0", "A top-up must be a positive amount."),
        ("1e3", "not a decimal USD amount"),
        ("1000000.000001", "may move at most $1000000.000000"),
    ],
)
def test_a_top_up_with_an_invalid_amount_is_refused_at_the_field(
    admin_client: Client, funded_account, amount: str, error: str
):
    account = funded_account(usd=0)

    response = admin_client.post(
        top_up_page(account), {"amount_usd": amount, "reason": "x", "confirm_large": "on"}
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Transfer.objects.exists()


def test_top_up_action_shows_a_form_first(admin_client: Client, funded_account):
    account = funded_account(usd=0)
    response = admin_client.post(CHANGELIST, {"action": "top_up", "_selected_action": [account.pk]})
    assert response.status_code == 200
    assert b"amount_usd" in response.content
    assert not Transfer.objects.exists()


def test_top_up_action_credits_and_records_the_admin_as_actor(admin_client: Client, funded_account):
    first, second = funded_account(usd=0), funded_account(usd=1)
    response = admin_client.post(
        CHANGELIST,
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
    assert {t.actor for t in topups} == {"oncall"}
    assert {t.amount_micros for t in topups} == {2_500_000}
    first.refresh_from_db()
    assert first.credits_posted == 2_500_000


def test_top_up_action_rejects_an_invalid_amount(admin_client: Client, funded_account):
    account = funded_account(usd=0)
    response = admin_client.post(
        CHANGELIST,
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


def test_account_change_form_edits_the_plan_but_never_the_balances(
    admin_client: Client, funded_account
):
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


def test_accounts_cannot_be_added_or_deleted_in_the_admin(admin_client: Client, funded_account):
    account = funded_account(usd=1)
    assert admin_client.get(reverse("admin:billing_account_add")).status_code == 403
    url = reverse("admin:billing_account_delete", args=[account.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403


def test_tenant_account_runs_and_transfers_link_to_each_other(admin_client: Client, funded_account):
    account = funded_account(usd=1)
    tenant_page = reverse("admin:dpp_tenant_change", args=[account.tenant_id])
    account_page = reverse("admin:billing_account_change", args=[account.pk])
    runs = f"{reverse('admin:runs_run_changelist')}?tenant__id__exact={account.tenant_id}"
    transfers = f"{reverse('admin:billing_transfer_changelist')}?account__id__exact={account.pk}"

    from_tenant = admin_client.get(tenant_page).content.decode()
    from_account = admin_client.get(account_page).content.decode()
    from_list = admin_client.get(CHANGELIST).content.decode()

    assert account_page in from_tenant
    assert tenant_page in from_account
    for page in (from_tenant, from_account, from_list):
        assert runs in page
        assert transfers in page
    listed = admin_client.get(transfers)
    assert listed.status_code == 200
    assert "+1.000000 credit" in listed.content.decode()
    assert admin_client.get(runs).status_code == 200


# --- Plans ------------------------------------------------------------------------------


def test_a_plan_is_edited_in_usd_with_packs_chosen_from_the_registered_ones(
    admin_client: Client,
):
    plan = seeded_plan("free")
    url = reverse("admin:billing_plan_change", args=[plan.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="max_cost_per_run_usd" value="0.500000"' in page
    assert 'type="checkbox" name="allowed_pack_types" value="decision"' in page

    response = admin_client.post(url, plan_form(max_cost_per_run_usd="0.75"))

    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.submit_per_minute, plan.max_cost_per_run_micros) == (11, 750_000)
    assert plan.allowed_pack_types == ["decision"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"allowed_pack_types": ["decison"]}, "Select a valid choice. decison is not one"),
        ({"allowed_pack_types": []}, "This field is required."),
        ({"max_cost_per_run_usd": "1000000.000001"}, "may move at most $1000000.000000"),
        ({"max_cost_per_run_usd": "0"}, "A plan must allow a positive cost per run."),
        ({"max_cost_per_run_usd": "0.5e1"}, "not a decimal USD amount"),
        ({"submit_per_minute": 0}, "greater than or equal to 1"),
        ({"max_concurrent_runs": 0}, "greater than or equal to 1"),
        ({"retention_days": 0}, "greater than or equal to 1"),
    ],
)
def test_plan_limits_are_validated(admin_client: Client, changes: dict, error: str):
    plan = seeded_plan("free")
    before = Plan.objects.filter(pk=plan.pk).values().get()

    response = admin_client.post(
        reverse("admin:billing_plan_change", args=[plan.pk]), plan_form(**changes)
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    assert Plan.objects.filter(pk=plan.pk).values().get() == before


def test_a_plan_may_allow_up_to_one_transfer_per_run(admin_client: Client):
    plan = seeded_plan("free")

    response = admin_client.post(
        reverse("admin:billing_plan_change", args=[plan.pk]),
        plan_form(max_cost_per_run_usd="1000000"),
    )

    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.max_cost_per_run_micros == 1_000_000 * USD


def test_a_plan_naming_an_unregistered_pack_says_so_in_the_list(admin_client: Client):
    Plan.objects.filter(name="free").update(allowed_pack_types=["decison"])
    seeded_plan("pilot")

    page = admin_client.get(reverse("admin:billing_plan_changelist")).content.decode()

    assert "decison (not registered)" in page
