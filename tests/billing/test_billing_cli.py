import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from billing.models import Account, Transfer
from dpp.models import ApiKey, Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plans")]


def command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def budget(api_key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client.get("/v1/budget")


def test_tenant_create_json_prints_a_working_key():
    out = command("dpp_tenant", "create", "acme", "--budget-usd", "12.5", "--json")
    created = json.loads(out)
    assert set(created) >= {"tenant_id", "api_key"}
    response = budget(created["api_key"])
    assert response.status_code == 200
    assert response.json()["available_usd"] == "12.500000"
    assert response.json()["plan"]["name"] == "pilot"
    topup = Transfer.objects.get(account__tenant_id=created["tenant_id"])
    assert (topup.kind, topup.amount_micros, topup.reason) == (
        "TOPUP",
        12_500_000,
        "opening budget",
    )
    assert topup.actor.startswith("cli")


def test_tenant_create_on_a_plan_without_budget_prints_human_text():
    out = command("dpp_tenant", "create", "tiny co", "--plan", "free")
    tenant = Tenant.objects.get(name="tiny co")
    assert str(tenant.id) in out
    assert "plan free" in out
    assert "dpp_" in out
    assert not Transfer.objects.filter(account__tenant=tenant).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plan", "platinum"], "No plan named 'platinum'"),
        (["--budget-usd", "1.0000001"], "more than 6 decimal places"),
        (["--budget-usd", "-5"], "must not be negative"),
        (["--budget-usd", "ten"], "not a decimal USD amount"),
    ],
)
def test_tenant_create_errors_are_clear_and_leave_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        command("dpp_tenant", "create", "nope", *args)
    assert not Tenant.objects.filter(name="nope").exists()


def test_revoke_key_makes_the_key_answer_401():
    created = json.loads(command("dpp_tenant", "create", "acme", "--json"))
    assert budget(created["api_key"]).status_code == 200
    prefix = created["api_key"].split("_")[1]
    out = command("dpp_tenant", "revoke-key", prefix)
    assert prefix in out
    assert ApiKey.objects.get(prefix=prefix).status == ApiKey.Status.REVOKED
    response = budget(created["api_key"])
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthenticated"


def test_revoke_unknown_key_is_a_command_error():
    with pytest.raises(CommandError, match="No API key with prefix"):
        command("dpp_tenant", "revoke-key", "zzzzzzzzzzzz")


def test_topup_credits_the_tenant_with_reason_and_actor():
    created = json.loads(command("dpp_tenant", "create", "acme", "--budget-usd", "1", "--json"))
    out = command(
        "dpp_topup", created["tenant_id"], "2.000001", "--reason", "PO 42", "--actor", "finance"
    )
    assert "available $3.000001" in out
    transfer = Transfer.objects.filter(reason="PO 42").get()
    assert (transfer.amount_micros, transfer.actor) == (2_000_001, "finance")
    assert budget(created["api_key"]).json()["credited_usd"] == "3.000001"


@pytest.mark.parametrize(
    ("tenant_id", "amount", "message"),
    [
        ("not-a-uuid", "1", "No tenant with id"),
        ("00000000-0000-4000-8000-000000000000", "1", "No tenant with id"),
        (None, "0", "must be a positive amount"),
        (None, "0.1234567", "more than 6 decimal places"),
        (None, "1.5e2", "not a decimal USD amount"),
    ],
)
def test_topup_errors_are_command_errors(tenant_id, amount, message):
    account_tenant = json.loads(command("dpp_tenant", "create", "acme", "--json"))["tenant_id"]
    with pytest.raises(CommandError, match=message):
        command("dpp_topup", tenant_id or account_tenant, amount)
    assert not Transfer.objects.exists()


def test_topup_of_a_tenant_without_account_is_a_command_error():
    tenant = Tenant.objects.create(name="orphan")
    with pytest.raises(CommandError, match="has no budget account"):
        command("dpp_topup", str(tenant.id), "1")
    assert not Account.objects.filter(tenant=tenant).exists()
