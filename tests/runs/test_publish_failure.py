"""The runs table is the outbox: a broker that cannot take the task never fails a submit."""

import logging

import pytest
from celery import current_app

from billing import services as billing
from billing.models import Transfer
from runs.models import Run
from tests.factories import USD, AccountFactory, issue_token
from tests.payloads import run_body


@pytest.fixture
def dead_broker():
    """Point the Celery app at a broker port where nothing listens, then restore it."""
    previous = current_app.conf.broker_url

    def reconnect(url: str) -> None:
        # Celery caches both the connection pool and the producer pool built on it.
        current_app.close()
        current_app.amqp._producer_pool = None
        current_app.conf.broker_url = url

    reconnect("redis://127.0.0.1:1/0")
    yield
    reconnect(previous)


@pytest.mark.django_db(transaction=True)
def test_submit_with_the_broker_down_is_accepted_and_left_queued(api_client, dead_broker, caplog):
    account = AccountFactory()
    billing.top_up(account=account, amount_micros=USD, reason="test")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(account.tenant)}")

    with caplog.at_level(logging.WARNING, logger="runs.publishing"):
        response = api_client.post(
            "/v1/runs", run_body(), format="json", HTTP_IDEMPOTENCY_KEY="outbox-key-01"
        )

    assert response.status_code == 202
    run = Run.objects.get(id=response.json()["run_id"])
    # The row is the outbox: QUEUED since its submission, which the requeue scan republishes.
    assert (run.status, run.money_state) == ("QUEUED", "RESERVED")
    # Nothing touched the row after its submission: no write follows the commit.
    submitted = run.events.get()
    assert (submitted.kind, submitted.created_at) == ("SUBMITTED", run.updated_at)
    assert run.version == 1
    assert Transfer.objects.filter(run=run, kind=Transfer.Kind.RESERVE).count() == 1
    warnings = [r for r in caplog.records if "publish failed" in r.getMessage()]
    assert [r.run_id for r in warnings] == [str(run.id)]
