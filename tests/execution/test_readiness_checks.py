"""/readyz's broker and storage checks (runs/checks.py), in-process."""

from pathlib import Path

import pytest

from tests.e2e.stack import publishing_to
from tests.external import S3Server, SqsServer


def checks_of(response) -> dict[str, tuple[bool, str | None]]:
    return {check["name"]: (check["ok"], check["error"]) for check in response.json()["checks"]}


@pytest.mark.django_db
def test_readyz_checks_the_broker_and_the_result_storage(client, local_results: Path):
    response = client.get("/readyz")

    assert response.status_code == 200
    checks = checks_of(response)
    assert checks["broker"] == (True, None)
    assert checks["storage"] == (True, None)


@pytest.mark.django_db
def test_readyz_is_503_when_the_results_directory_cannot_be_created(
    client, settings, tmp_path: Path
):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.STORAGES = {
        **settings.STORAGES,
        "results": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": blocker / "results"},
        },
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    assert checks_of(response)["storage"] == (False, "NotADirectoryError")


@pytest.mark.slow
@pytest.mark.django_db
def test_readyz_is_503_when_the_bucket_does_not_exist(client, settings, s3_server: S3Server):
    settings.STORAGES = {
        **settings.STORAGES,
        "results": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "no-such-bucket",
                "endpoint_url": s3_server.endpoint_url,
                "region_name": s3_server.region,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
            },
        },
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    assert checks_of(response)["storage"] == (False, "ClientError")


@pytest.mark.slow
@pytest.mark.django_db
def test_readyz_is_503_when_the_runs_queue_could_redeliver_a_leased_run(
    client, settings, sqs_server: SqsServer
):
    short = sqs_server.client().create_queue(
        QueueName="dpp-runs-short-visibility", Attributes={"VisibilityTimeout": "30"}
    )["QueueUrl"]
    settings.DPP_SQS_RUNS_QUEUE_URL = short

    with publishing_to(
        broker_url=sqs_server.broker_url, transport_options=sqs_server.broker_transport_options()
    ):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert checks_of(response)["broker"] == (False, "BrokerMisconfigured")


@pytest.mark.slow
@pytest.mark.django_db
def test_readyz_accepts_a_runs_queue_whose_visibility_outlasts_the_lease(
    client, settings, sqs_server: SqsServer
):
    settings.DPP_SQS_RUNS_QUEUE_URL = sqs_server.runs_queue_url

    with publishing_to(
        broker_url=sqs_server.broker_url, transport_options=sqs_server.broker_transport_options()
    ):
        response = client.get("/readyz")

    assert checks_of(response)["broker"] == (True, None)
