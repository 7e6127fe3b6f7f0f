"""The chaos suite: DPP's real processes on real services, with faults injected at precise
points (tests/chaos/faults.py), each scenario ending with the books balanced to the
micro-dollar. Run it with its report:

    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/pytest tests/chaos -s

Every scenario appends one line (runs, outcomes, credits, charges, pending, balance) to
the "chaos: runs and money per scenario" section of the terminal summary.
"""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.chaos.harness import QUEUE_VISIBILITY_SEC, Cluster, Scenario, environment
from tests.chaos.proxy import TcpProxy
from tests.e2e.stack import database_url
from tests.external import HOST, S3Server, SqsServer

# The scenarios' report lines, printed in the terminal summary (and with -s as they end).
REPORT: list[str] = []
CHAOS_QUEUES = {"runs": "dpp-chaos-runs", "reaper": "dpp-chaos-reaper"}


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("chaos: runs and money per scenario")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def chaos_queues(sqs_server: SqsServer) -> dict[str, str]:
    """Queues of their own, whose visibility timeout (3 x the short lease) lets a killed
    worker's messages come back within a scenario."""
    client = sqs_server.client()
    return {
        celery_queue: client.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": str(QUEUE_VISIBILITY_SEC)}
        )["QueueUrl"]
        for celery_queue, name in CHAOS_QUEUES.items()
    }


@pytest.fixture(scope="module")
def cluster(
    django_db_setup,
    s3_server: S3Server,
    sqs_server: SqsServer,
    chaos_queues: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The API and one reaper on the test database, SQS (moto) and S3 (SeaweedFS, behind
    a proxy every process goes through)."""
    base = tmp_path_factory.mktemp("chaos")
    s3_proxy = TcpProxy(HOST, urlsplit(s3_server.endpoint_url).port).up()
    broker_proxy = TcpProxy(HOST, sqs_server.port).up()
    env = environment(
        database=database_url(connection.settings_dict),
        s3_env={**s3_server.env(), "AWS_S3_ENDPOINT_URL": s3_proxy.url},
        sqs=sqs_server,
        DPP_SQS_RUNS_QUEUE_URL=chaos_queues["runs"],
        DPP_SQS_REAPER_QUEUE_URL=chaos_queues["reaper"],
    )
    built = Cluster(
        base=base,
        env=env,
        s3=s3_server,
        sqs=sqs_server,
        queue_urls=chaos_queues,
        s3_proxy=s3_proxy,
        broker_proxy=broker_proxy,
    )
    api = built.start_api()
    try:
        built.reaper("reaper-1")
        yield built
    finally:
        for process in [*built.reapers, api]:
            process.stop(grace=5)
        s3_proxy.down()
        broker_proxy.down()


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest, cluster: Cluster, tmp_path: Path
) -> Iterator[Scenario]:
    """A scenario named after its test; its workers are stopped and the network healed
    when it ends, whatever happened."""
    cluster.sqs.drain(cluster.queue_urls["runs"])
    name = request.node.name.removeprefix("test_")
    running = Scenario(name, cluster, tmp_path / "faults", REPORT.append)
    try:
        yield running
    finally:
        running.release()
        running.stop_workers()
        cluster.s3_proxy.up()
        cluster.broker_proxy.up()
        for process in cluster.reapers[1:]:
            process.stop(grace=5)
        del cluster.reapers[1:]
