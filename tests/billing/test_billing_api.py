import pytest
from rest_framework.test import APIClient

from billing import services
from dpp.models import Tenant
from tests.billing.helpers import USD, reserved_run
from tests.factories import TenantFactory, issue_token

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def client_for(tenant: Tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(tenant)}")
    return client


def test_budget_reports_exact_six_place_strings_and_the_plan(funded_account):
    account = funded_account(usd=10)
    settled = reserved_run(account, 2 * USD)
    services.settle(run=settled, charge_micros=50_001, outcome="FAILED")
    reserved_run(account, 1_500_000)

    response = client_for(account.tenant).get("/v1/budget")

    assert response.status_code == 200
    assert response.json() == {
        "available_usd": "8.449999",
        "reserved_usd": "1.500000",
        "spent_usd": "0.050001",
        "credited_usd": "10.000000",
        "currency": "USD",
        "plan": {
            "name": "pilot",
            "submit_per_minute": 60,
            "poll_per_minute": 600,
            "max_concurrent_runs": 20,
            "max_cost_per_run_usd": "5.000000",
            "allowed_pack_types": ["decision"],
            "retention_days": 30,
        },
    }


def test_each_tenant_sees_only_its_own_budget(funded_account):
    rich, poor = funded_account(usd=100), funded_account(usd=1)
    assert client_for(rich.tenant).get("/v1/budget").json()["available_usd"] == "100.000000"
    assert client_for(poor.tenant).get("/v1/budget").json()["available_usd"] == "1.000000"


def test_unauthenticated_budget_is_a_401_problem(api_client):
    response = api_client.get("/v1/budget")
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["type"] == "/problems/unauthenticated"


def test_a_wrong_key_is_a_401_problem(api_client, db):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer dpp_abcdefghijkl_" + "x" * 43)
    response = api_client.get("/v1/budget")
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthenticated"


def test_a_suspended_tenant_gets_403(funded_account):
    account = funded_account(usd=1)
    client = client_for(account.tenant)
    Tenant.objects.filter(pk=account.tenant_id).update(status=Tenant.Status.SUSPENDED)
    response = client.get("/v1/budget")
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/tenant-suspended"


def test_a_tenant_without_an_account_is_a_404_problem(db):
    response = client_for(TenantFactory()).get("/v1/budget")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_budget_is_read_only(auth_client):
    response = auth_client.post("/v1/budget", {}, format="json")
    assert response.status_code == 405
    assert response["Content-Type"] == PROBLEM


def test_budget_is_in_the_openapi_schema(api_client, db):
    schema = api_client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/budget"]["get"]
    assert operation["operationId"] == "budget_retrieve"
    assert "402" not in operation["responses"]
    assert set(operation["responses"]) >= {"200", "401", "403"}
