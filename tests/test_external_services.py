"""The real services of tests/external.py: SeaweedFS as S3, moto as SQS, and a Celery
worker subprocess consuming from that SQS. None of these tests uses the database.

The fixtures come from ``pytest_plugins = ["tests.external"]`` in tests/conftest.py; they
are deliberately not imported here, since an imported fixture is a second definition and
would start a second set of servers in the same session. Without the project conftest
(e.g. while settings are being edited): ``pytest --noconftest -p no:django -p tests.external``.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from celery import Celery

from tests.external import ManagedProcess, ProcessExitedError, S3Server, SqsServer, venv_binary

RECEIPT_METADATA_KEYS = {"run-id", "tenant-id", "lease-token", "sha256", "charge-usd-micros"}


def s3_client_from_env(env: dict[str, str]) -> Any:
    """An S3 client configured only from the variables DPP reads."""
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(signature_version="s3v4"),
    )


IGNORE_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def test_managed_process_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    process = ManagedProcess("stubborn", [sys.executable, "-c", IGNORE_SIGTERM], log_dir=tmp_path)
    process.start(ready=lambda: "up" in process.log_tail(), timeout=10)

    started = time.monotonic()
    assert process.stop(grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert not process.running


def test_managed_process_kill9_and_early_exit(tmp_path: Path) -> None:
    sleeper = ManagedProcess("sleeper", ["sleep", "60"], log_dir=tmp_path).start()
    assert sleeper.kill9() == -signal.SIGKILL

    crasher = ManagedProcess("crasher", ["sh", "-c", "echo boom; exit 3"], log_dir=tmp_path)
    with pytest.raises(ProcessExitedError, match="boom"):
        crasher.start(ready=lambda: False, timeout=10)
    assert crasher.returncode == 3


def test_s3_receipt_round_trip_with_metadata_and_presigned_download(
    s3_server: S3Server,
) -> None:
    env = s3_server.env()
    client = s3_client_from_env(env)
    bucket = env["AWS_STORAGE_BUCKET_NAME"]
    tenant_id, run_id, lease_token = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    body = json.dumps({"run_id": str(run_id), "winner": "option-a"}).encode()
    key = f"results/{tenant_id}/{run_id}.json"
    metadata = {
        "run-id": str(run_id),
        "tenant-id": str(tenant_id),
        "lease-token": str(lease_token),
        "sha256": hashlib.sha256(body).hexdigest(),
        "charge-usd-micros": "10100",
    }
    assert set(metadata) == RECEIPT_METADATA_KEYS

    client.put_object(
        Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType="application/json"
    )

    head = client.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == metadata
    assert head["ContentLength"] == len(body)
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600
    )
    assert url.startswith(f"{s3_server.endpoint_url}/{bucket}/results/")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "X-Amz-Expires=600" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        downloaded = response.read()
    assert downloaded == body
    assert hashlib.sha256(downloaded).hexdigest() == head["Metadata"]["sha256"]


def test_s3_metadata_keys_come_back_lower_case(s3_server: S3Server) -> None:
    client = s3_server.client()
    key = f"casing/{uuid.uuid4()}"
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"x", Metadata={"Run-ID": "AbC"})

    head = client.head_object(Bucket=s3_server.bucket, Key=key)

    assert head["Metadata"] == {"run-id": "AbC"}


def test_s3_rejects_wrong_secret_and_anonymous_requests(s3_server: S3Server) -> None:
    key = f"auth/{uuid.uuid4()}"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=b"secret")
    wrong = s3_client_from_env({**s3_server.env(), "AWS_SECRET_ACCESS_KEY": "wrong"})

    with pytest.raises(ClientError) as denied:
        wrong.head_object(Bucket=s3_server.bucket, Key=key)
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{s3_server.endpoint_url}/{s3_server.bucket}/{key}", timeout=10)
    assert anonymous.value.code == 403


def test_sqs_env_and_depth(sqs_server: SqsServer) -> None:
    env = sqs_server.env()
    host = sqs_server.endpoint_url.removeprefix("http://")
    assert (
        env["CELERY_BROKER_URL"] == f"sqs://{sqs_server.access_key}:{sqs_server.secret_key}@{host}"
    )
    assert env["DPP_SQS_RUNS_QUEUE_URL"].endswith("/dpp-runs")
    assert env["DPP_SQS_REAPER_QUEUE_URL"].endswith("/dpp-reaper")
    sqs_server.drain("reaper")
    client = sqs_server.client()

    client.send_message(QueueUrl=env["DPP_SQS_REAPER_QUEUE_URL"], MessageBody="{}")

    assert sqs_server.depth("dpp-reaper") == 1
    assert sqs_server.depth("reaper") == 1
    assert sqs_server.depth(sqs_server.reaper_queue_url) == 1
    assert sqs_server.drain("reaper") == 1
    assert sqs_server.depth("reaper") == 0
    assert sqs_server.in_flight("reaper") == 0


# The worker's Celery app: a module of its own, configured from a JSON file beside it.
PROBE_MODULE = """\
import json
import pathlib

from celery import Celery

app = Celery("probe", fixups=[])
app.conf.update(json.loads(pathlib.Path(__file__).with_name("probe_config.json").read_text()))


@app.task(name="probe.touch", bind=True)
def touch(self, marker):
    pathlib.Path(marker).write_text(self.request.id)
"""


def probe_config(sqs: SqsServer) -> dict[str, Any]:
    """Celery settings of the probe app: the SQS parts DPP's settings build, and the
    delivery settings docs/design.md §2 relies on."""
    return {
        "broker_url": sqs.env()["CELERY_BROKER_URL"],
        "broker_transport_options": sqs.broker_transport_options(),
        "broker_connection_retry_on_startup": True,
        "task_default_queue": "runs",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
    }


@pytest.mark.slow
def test_celery_worker_consumes_a_task_from_sqs(
    sqs_server: SqsServer,
    tmp_path: Path,
) -> None:
    config = probe_config(sqs_server)
    (tmp_path / "probe_config.json").write_text(json.dumps(config))
    (tmp_path / "probe_module.py").write_text(PROBE_MODULE)
    marker = tmp_path / "marker"
    sqs_server.drain("runs")
    app = Celery("probe", fixups=[], set_as_current=False)
    app.conf.update(config)
    try:
        task_id = app.send_task("probe.touch", args=[str(marker)], queue="runs").id
    finally:
        app.close()
    assert sqs_server.depth("runs") == 1

    worker = ManagedProcess(
        "celery-worker",
        [
            venv_binary("celery"),
            "-A",
            "probe_module",
            "worker",
            "-Q",
            "runs",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--hostname",
            f"probe-{uuid.uuid4().hex[:8]}@%h",
        ],
        log_dir=tmp_path,
        env={**sqs_server.env(), "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
    )
    with worker.start(ready=marker.exists, timeout=30):
        assert marker.read_text() == task_id
        # Late ack: the message is deleted only after the task returned.
        worker.wait_until(
            lambda: sqs_server.depth("runs") == 0 and sqs_server.in_flight("runs") == 0,
            timeout=10,
        )
    assert worker.returncode == 0
