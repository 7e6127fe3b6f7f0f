"""``GET /v1/ledger``: the caller's transfers newest first, each with the available balance
it left, cursor-paginated, filtered, as JSON or CSV; exact under concurrent writers."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from billing import services
from billing.models import Account, Transfer
from billing.money import micros_to_usd
from dpp.models import Tenant
from reaper.audit import audit
from tests.billing.helpers import USD, record_outcome, reserved_run, run_concurrently
from tests.factories import issue_token

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def client_for(tenant: Tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(tenant)}")
    return client


def statement(client: APIClient, query: str = "") -> list[dict]:
    response = client.get(f"/v1/ledger{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.fixture
def history(funded_account) -> Account:
    """A top-up, a settled run, a voided run, a run in flight and a debit adjustment."""
    account = funded_account(usd=10)
    settled = reserved_run(account, 2 * USD)
    record_outcome(
        settled, services.settle(run=settled, charge_micros=400_001, outcome="FAILED").transfer
    )
    voided = reserved_run(account, USD)
    record_outcome(voided, services.void(run=voided, outcome="FAILED").transfer)
    reserved_run(account, 3 * USD)
    services.adjust(account=account, amount_micros=-250_000, reason="correction", actor="ops")
    return account


def test_the_statement_lists_every_transfer_newest_first_with_the_balance_it_left(history):
    client = client_for(history.tenant)

    rows = statement(client)

    assert [(row["kind"], row["amount_usd"], row["available_usd_after"]) for row in rows] == [
        ("ADJUST", "-0.250000", "6.349999"),
        ("RESERVE", "3.000000", "6.599999"),
        ("VOID", "1.000000", "9.599999"),
        ("RESERVE", "1.000000", "8.599999"),
        ("SETTLE", "0.400001", "9.599999"),
        ("RESERVE", "2.000000", "8.000000"),
        ("TOPUP", "10.000000", "10.000000"),
    ]
    assert set(rows[0]) == {
        "id",
        "kind",
        "amount_usd",
        "run_id",
        "reason",
        "created_at",
        "available_usd_after",
    }
    assert rows[0]["reason"] == "correction"
    assert rows[-1]["run_id"] is None
    assert rows[1]["run_id"] is not None
    assert rows[0]["available_usd_after"] == client.get("/v1/budget").json()["available_usd"]


def test_settles_and_debit_adjustments_add_up_to_the_change_of_spent(history):
    client = client_for(history.tenant)
    spent_before = client.get("/v1/budget").json()["spent_usd"]
    cut = timezone.now()
    run = reserved_run(history, USD)
    services.settle(run=run, charge_micros=123_457, outcome="COMPLETED")
    other = reserved_run(history, USD)
    services.settle(run=other, charge_micros=5_000, outcome="FAILED")

    window = statement(client, f"?created_after={cut.isoformat().replace('+00:00', 'Z')}")

    spent_after = client.get("/v1/budget").json()["spent_usd"]
    settled = sum(
        int(row["amount_usd"].replace(".", "")) for row in window if row["kind"] == "SETTLE"
    )
    assert micros_to_usd(settled) == "0.128457"
    assert int(spent_after.replace(".", "")) - int(spent_before.replace(".", "")) == settled


def test_pages_follow_the_cursor_and_link_header(history):
    client = client_for(history.tenant)
    everything = [row["id"] for row in statement(client)]

    first = client.get("/v1/ledger?limit=3")
    body = first.json()
    assert [row["id"] for row in body["results"]] == everything[:3]
    assert body["previous"] is None
    assert first["Link"] == f'<{body["next"]}>; rel="next"'
    second = client.get(body["next"]).json()
    third = client.get(second["next"]).json()
    assert [row["id"] for row in second["results"] + third["results"]] == everything[3:]
    assert third["next"] is None


def test_filters_by_kind_run_and_time(history):
    client = client_for(history.tenant)
    rows = statement(client)
    run_id = rows[1]["run_id"]

    assert [row["kind"] for row in statement(client, "?kind=RESERVE")] == ["RESERVE"] * 3
    assert [row["kind"] for row in statement(client, f"?run_id={run_id}")] == ["RESERVE"]
    Transfer.objects.filter(kind="TOPUP").update(created_at=timezone.now() - timedelta(days=3))
    before = (timezone.now() - timedelta(days=1)).isoformat()
    older = statement(client, "?created_before=" + before.replace("+00:00", "%2B00:00"))
    assert [row["kind"] for row in older] == ["TOPUP"]
    newer = statement(client, "?created_after=" + before.replace("+00:00", "Z"))
    assert len(newer) == len(rows) - 1


@pytest.mark.parametrize(
    ("query", "pointer"),
    [
        ("kind=REFUND", "/kind"),
        ("run_id=not-a-uuid", "/run_id"),
        ("created_after=yesterday", "/created_after"),
        ("created_before=2026-12-01T00:00:00", "/created_before"),  # no offset
        ("created_after=2026-12-01", "/created_after"),
        ("limit=101", "/limit"),
        ("limit=0", "/limit"),
    ],
)
def test_a_bad_filter_is_a_400_problem_pointing_at_the_parameter(history, query, pointer):
    response = client_for(history.tenant).get(f"/v1/ledger?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/invalid-query-parameter"
    assert [error["pointer"] for error in problem["errors"]] == [pointer]


def test_csv_has_a_header_and_the_same_rows(history):
    client = client_for(history.tenant)
    rows = statement(client)

    response = client.get("/v1/ledger", HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("id,kind,amount_usd,run_id,reason,created_at,available_usd_after\r\n")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [dict(row) for row in parsed] == [
        {name: "" if value is None else str(value) for name, value in row.items()} for row in rows
    ]


def test_csv_cells_cannot_smuggle_a_formula_into_a_spreadsheet(funded_account):
    account = funded_account(usd=1)
    services.adjust(account=account, amount_micros=1, reason="=HYPERLINK(1)", actor="ops")

    text = client_for(account.tenant).get("/v1/ledger", HTTP_ACCEPT="text/csv").content.decode()

    assert ",'=HYPERLINK(1)," in text
    services.adjust(account=account, amount_micros=-2, reason="debit", actor="ops")
    text = client_for(account.tenant).get("/v1/ledger", HTTP_ACCEPT="text/csv").content.decode()
    assert ",ADJUST,-0.000002,," in text


def test_another_tenants_transfers_never_appear(history, funded_account):
    intruder = client_for(funded_account(usd=1).tenant)
    theirs = statement(client_for(history.tenant))

    mine = statement(intruder)
    by_run = statement(intruder, f"?run_id={theirs[1]['run_id']}")

    assert [row["kind"] for row in mine] == ["TOPUP"]
    assert by_run == []


def test_unauthenticated_and_unacceptable_requests_are_problems(api_client, history):
    assert api_client.get("/v1/ledger").status_code == 401
    response = client_for(history.tenant).get("/v1/ledger", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert response["Content-Type"] == PROBLEM


def test_the_statement_carries_rate_limit_headers(history):
    response = client_for(history.tenant).get("/v1/ledger")
    assert response["RateLimit-Policy"].startswith('"poll"')
    assert response["RateLimit"].startswith('"poll"')


def test_a_page_costs_the_same_few_queries_however_long_the_history(history):
    client = client_for(history.tenant)
    client.get("/v1/ledger")  # the key's last-used stamp is written once a minute

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/v1/ledger?limit=5").status_code == 200
        return len(captured)

    few = queries()
    for _ in range(20):
        services.top_up(account=history, amount_micros=1, reason="more")
    assert queries() == few <= 4


@pytest.mark.django_db(transaction=True)
def test_balances_after_are_exact_under_concurrent_writers(funded_account):
    account = funded_account(usd=100)
    runs = [reserved_run(account, USD) for _ in range(8)]
    calls = [
        lambda run=run: services.settle(
            run=run, charge_micros=10_000 + run.reserved_micros % 7, outcome="FAILED"
        )
        for run in runs
    ]
    calls += [lambda: reserved_run(account, 500_000) for _ in range(8)]
    calls += [
        lambda: services.top_up(account=account, amount_micros=1_234, reason="race")
        for _ in range(4)
    ]

    outcomes = run_concurrently(calls)

    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    rows = list(
        Transfer.objects.filter(account=account)
        .order_by("id")
        .values_list("available_after_micros", flat=True)
    )
    account.refresh_from_db()
    assert rows[-1] == account.available_micros
    # Every balance follows from the one before it (dpp_audit's invariant 6 proves it).
    assert [v for v in audit() if v.invariant in (1, 6)] == []
    body = client_for(account.tenant).get("/v1/ledger?limit=1").json()
    assert body["results"][0]["available_usd_after"] == micros_to_usd(account.available_micros)
