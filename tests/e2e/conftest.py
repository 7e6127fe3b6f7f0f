from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connection

from billing import services as billing
from billing.models import Account, Plan
from tests.e2e.stack import (
    WORKER_PROCESSES,
    HttpApi,
    Stack,
    database_url,
    dpp_env,
    start_api,
    start_worker,
)
from tests.execution.packs import PACK_LOG_ENV, TEST_PACKS
from tests.external import S3Server, SqsServer
from tests.factories import USD, TenantFactory, issue_token, seeded_plan


@pytest.fixture(scope="module")
def test_database_url(django_db_setup) -> str:
    """The test database, where transactional tests commit what the subprocesses read."""
    return database_url(connection.settings_dict)


@pytest.fixture(scope="module")
def sqs_s3_stack(
    s3_server: S3Server,
    sqs_server: SqsServer,
    test_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The API and a 4-process worker, configured only by the environment: SQS (moto)
    broker with predefined queues, S3 (SeaweedFS) results, the test database."""
    base = tmp_path_factory.mktemp("sqs-s3-stack")
    pack_log = base / "executions.log"
    pack_log.touch()
    env = {
        **dpp_env(database=test_database_url, var_dir=base / "var"),
        **s3_server.env(),
        **sqs_server.env(),
        PACK_LOG_ENV: str(pack_log),
    }
    sqs_server.client().purge_queue(QueueUrl=sqs_server.runs_queue_url)
    worker = start_worker("worker-sqs", env=env, log_dir=base, concurrency=WORKER_PROCESSES)
    with worker:
        api, api_url = start_api("api-sqs", env=env, log_dir=base)
        with api:
            yield Stack(api_url=api_url, worker=worker, pack_log=pack_log)


@pytest.fixture(scope="module")
def embedded_stack(
    test_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The API and a worker of the embedded default: the filesystem broker and result
    files under one var/ directory (the database stays the test database)."""
    base = tmp_path_factory.mktemp("embedded-stack")
    pack_log = base / "executions.log"
    pack_log.touch()
    env = {**dpp_env(database=test_database_url, var_dir=base / "var"), PACK_LOG_ENV: str(pack_log)}
    worker = start_worker("worker-embedded", env=env, log_dir=base, concurrency=2, embedded=True)
    with worker:
        api, api_url = start_api("api-embedded", env=env, log_dir=base, embedded=True)
        with api:
            yield Stack(api_url=api_url, worker=worker, pack_log=pack_log)


@pytest.fixture
def new_tenant() -> Callable[[Stack], tuple[HttpApi, Account]]:
    """A tenant with $10 on a plan that allows the test packs and is never the bottleneck
    (rate limits and concurrency far above what the tests use), and its API client."""

    def make(stack: Stack) -> tuple[HttpApi, Account]:
        # Unauthenticated requests (the signed result link) are limited by the default
        # plan, which an earlier transactional test's flush may have removed.
        seeded_plan(settings.DPP_DEFAULT_PLAN)
        plan, _ = Plan.objects.get_or_create(
            name="e2e",
            defaults={
                "submit_per_minute": 100_000,
                "poll_per_minute": 100_000,
                "max_concurrent_runs": 100_000,
                "max_cost_per_run_micros": 5 * USD,
                "allowed_pack_types": ["decision", *TEST_PACKS],
                "retention_days": 30,
            },
        )
        tenant = TenantFactory()
        account = billing.account_open(tenant=tenant, plan=plan)
        billing.top_up(account=account, amount_micros=10 * USD, reason="e2e")
        return HttpApi(base_url=stack.api_url, token=issue_token(tenant)), account

    return make
