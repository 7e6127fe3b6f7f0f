"""``GET /v1/usage``: one row per UTC day, sealed days from the rollup table the beat task
fills, the rest from the ledger as it answers; ranges checked; CSV too."""

import csv
import io
from datetime import date, timedelta

import pytest
from rest_framework.test import APIClient

from billing import services, usage
from billing.models import Account, Transfer, UsageDay, UsageWatermark
from reaper import tasks
from reaper.audit import audit
from tests.billing.helpers import USD, reserved_run, run_concurrently
from tests.factories import issue_token

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def client_for(account: Account) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(account.tenant)}")
    return client


def day_of_activity(account: Account, day: date) -> None:
    """Four runs submitted on ``day``: completed, failed, canceled while queued, canceled
    while processing; plus a top-up, which is not usage."""
    start = Transfer.objects.order_by("-id").values_list("id", flat=True).first() or 0
    completed, failed, refunded, stopped = (reserved_run(account, USD) for _ in range(4))
    services.settle(run=completed, charge_micros=123_456, outcome="COMPLETED")
    services.settle(run=failed, charge_micros=20_000, outcome="FAILED")
    services.void(run=refunded, outcome="CANCELED")
    services.settle(run=stopped, charge_micros=20_000, outcome="CANCELED")
    services.top_up(account=account, amount_micros=USD, reason="more")
    Transfer.objects.filter(account=account, id__gt=start).update(
        created_at=usage.midnight(day) + timedelta(hours=12)
    )


EXPECTED = {
    "runs_submitted": 4,
    "runs_completed": 1,
    "runs_failed": 1,
    "runs_canceled": 2,
    "spent_usd": "0.163456",
    "refunded_usd": "1.000000",
}
ZERO = {
    "runs_submitted": 0,
    "runs_completed": 0,
    "runs_failed": 0,
    "runs_canceled": 0,
    "spent_usd": "0.000000",
    "refunded_usd": "0.000000",
}


def rows(account: Account, query: str) -> list[dict]:
    response = client_for(account).get(f"/v1/usage?{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_today_is_computed_from_the_ledger_as_it_answers(funded_account):
    account = funded_account(usd=10)
    today = usage.today()
    day_of_activity(account, today)

    assert rows(account, f"from={today}&to={today}") == [{"date": str(today), **EXPECTED}]
    # One more run, and today's row moves with the ledger at once.
    services.settle(run=reserved_run(account, USD), charge_micros=1, outcome="COMPLETED")
    [row] = rows(account, f"from={today}&to={today}")
    assert (row["runs_submitted"], row["runs_completed"], row["spent_usd"]) == (5, 2, "0.163457")


def test_sealed_days_are_served_from_the_rollup_the_beat_task_writes(funded_account, settings):
    settings.DPP_USAGE_SEAL_AFTER_SEC = 0
    account = funded_account(usd=10)
    today = usage.today()
    two_days_ago = today - timedelta(days=2)
    Transfer.objects.filter(account=account).update(created_at=usage.midnight(two_days_ago))
    day_of_activity(account, two_days_ago)
    day_of_activity(account, today)

    assert tasks.roll_up_usage() == {"days_sealed": 2}
    assert tasks.roll_up_usage() == {}

    assert UsageWatermark.objects.get().unsealed_from == today
    stored = UsageDay.objects.get(account=account)
    assert (stored.date, stored.runs_canceled, stored.spent_micros) == (two_days_ago, 2, 163_456)
    assert rows(account, f"from={two_days_ago}&to={today}") == [
        {"date": str(two_days_ago), **EXPECTED},
        {"date": str(two_days_ago + timedelta(days=1)), **ZERO},
        {"date": str(today), **EXPECTED},
    ]
    # The sealed day really is the table's: what the audit would flag, the API shows.
    UsageDay.objects.filter(pk=stored.pk).update(runs_failed=9)
    assert rows(account, f"from={two_days_ago}&to={two_days_ago}")[0]["runs_failed"] == 9
    # (These runs exist in the ledger only: the run-level invariants are not this test's.)
    assert [v.invariant for v in audit() if v.invariant > 5] == [7]


def test_a_day_is_sealed_only_once_it_ended_long_enough_ago(funded_account, settings):
    settings.DPP_USAGE_SEAL_AFTER_SEC = 3600
    account = funded_account(usd=10)
    today = usage.today()
    Transfer.objects.filter(account=account).update(created_at=usage.midnight(today))
    now = usage.midnight(today) + timedelta(minutes=59)

    assert usage.roll_up(now=now - timedelta(days=0)) == 0
    assert usage.roll_up(now=usage.midnight(today + timedelta(days=1)) + timedelta(minutes=59)) == 0
    assert usage.roll_up(now=usage.midnight(today + timedelta(days=1)) + timedelta(minutes=61)) == 1
    assert UsageDay.objects.get(account=account).date == today


@pytest.mark.django_db(transaction=True)
def test_two_reapers_rolling_up_at_once_seal_each_day_once(funded_account, settings):
    settings.DPP_USAGE_SEAL_AFTER_SEC = 0
    account = funded_account(usd=10)
    start = usage.today() - timedelta(days=5)
    for offset in range(5):
        day_of_activity(account, start + timedelta(days=offset))
    Transfer.objects.filter(kind="TOPUP", reason="test").update(created_at=usage.midnight(start))

    outcomes = run_concurrently([usage.roll_up, usage.roll_up])

    assert sorted(outcome.value for outcome in outcomes) == [0, 5]
    assert UsageDay.objects.filter(account=account).count() == 5
    assert [v for v in audit() if v.invariant > 5] == []


@pytest.mark.parametrize(
    ("query", "pointer"),
    [
        ("from=2026-13-01", "/from"),
        ("from=yesterday", "/from"),
        ("to=01-12-2026", "/to"),
        ("from=2026-12-02&to=2026-12-01", "/to"),
        ("from=2025-01-01&to=2026-01-02", "/to"),
    ],
)
def test_a_bad_range_is_a_400_problem_pointing_at_the_parameter(funded_account, query, pointer):
    response = client_for(funded_account(usd=1)).get(f"/v1/usage?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/invalid-query-parameter"
    assert [error["pointer"] for error in problem["errors"]] == [pointer]


def test_366_days_are_allowed_and_days_after_today_are_left_out(funded_account):
    account = funded_account(usd=1)
    today = usage.today()

    year = rows(account, f"from={today - timedelta(days=365)}&to={today}")
    future = rows(account, f"from={today}&to={today + timedelta(days=10)}")
    default = rows(account, "")

    assert len(year) == 366
    assert [row["date"] for row in future] == [str(today)]
    assert (len(default), default[-1]["date"]) == (30, str(today))


def test_csv_has_a_header_and_one_line_per_day(funded_account):
    account = funded_account(usd=10)
    today = usage.today()
    day_of_activity(account, today)

    response = client_for(account).get(
        f"/v1/usage?from={today - timedelta(days=1)}&to={today}", HTTP_ACCEPT="text/csv"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines == [
        [
            "date",
            "runs_submitted",
            "runs_completed",
            "runs_failed",
            "runs_canceled",
            "spent_usd",
            "refunded_usd",
        ],
        [str(today - timedelta(days=1)), "0", "0", "0", "0", "0.000000", "0.000000"],
        [str(today), "4", "1", "1", "2", "0.163456", "1.000000"],
    ]


def test_another_tenants_usage_never_appears(funded_account):
    busy, idle = funded_account(usd=10), funded_account(usd=10)
    today = usage.today()
    day_of_activity(busy, today)

    assert rows(idle, f"from={today}&to={today}") == [{"date": str(today), **ZERO}]


def test_usage_is_in_the_openapi_schema_with_csv(api_client):
    operation = api_client.get("/openapi.json").json()["paths"]["/v1/usage"]["get"]
    assert operation["operationId"] == "usage_list"
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert operation["responses"]["400"]["content"].keys() == {PROBLEM}
