"""The same flow on the embedded default's backends: the API (gunicorn) and a Celery
worker on the filesystem broker, result files served by the API's signed download link."""

import hashlib
import time

import pytest

from billing.models import Transfer
from reaper.audit import audit
from runs.models import Run
from runs.packs.decision import price_micros
from tests.e2e.stack import Stack, wait_until_terminal
from tests.execution.packs import executions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.embedded,
    pytest.mark.django_db(transaction=True),
]

DECISION_PRICE = price_micros(n_options=4, n_criteria=3)


def test_run_completes_on_the_filesystem_broker_and_downloads_through_the_signed_link(
    embedded_stack: Stack, new_tenant
):
    api, account = new_tenant(embedded_stack)
    started = time.monotonic()

    run_id = api.submit(pack_type="counting-decision")
    (run,) = wait_until_terminal([run_id], timeout=20)

    assert time.monotonic() - started < 10
    assert (run.status, run.money_state) == (Run.Status.COMPLETED, Run.MoneyState.SETTLED)
    assert run.actual_cost_micros == DECISION_PRICE
    assert list(
        Transfer.objects.filter(run_id=run_id, kind=Transfer.Kind.SETTLE).values_list(
            "amount_micros", flat=True
        )
    ) == [DECISION_PRICE]
    assert executions(embedded_stack.pack_log, run_id) == 1
    account.refresh_from_db()
    assert (account.debits_posted, account.debits_pending) == (DECISION_PRICE, 0)
    body = api.run(run_id)
    url = body["result"]["download_url"]
    assert url.startswith(f"{embedded_stack.api_url}/v1/results/")
    downloaded = api.download(url)
    assert hashlib.sha256(downloaded).hexdigest() == body["result"]["sha256"] == run.result_sha256
    assert audit() == []


def test_readyz_of_the_embedded_default_checks_the_filesystem_broker_and_result_files(
    embedded_stack: Stack, new_tenant
):
    api, _ = new_tenant(embedded_stack)

    status, body = api.request("GET", "/readyz")

    assert status == 200, body
    assert {check["name"]: check["ok"] for check in body["checks"]} == {
        "database": True,
        "cache": True,
        "broker": True,
        "storage": True,
    }
