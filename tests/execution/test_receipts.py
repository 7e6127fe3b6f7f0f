"""runs.receipts: what a worker writes before it settles, and what the reaper will check."""

import dataclasses
import json
import uuid
from pathlib import Path

import pytest

from runs.receipts import (
    SIDECAR_SUFFIX,
    delete_receipt,
    read_receipt,
    receipt_matches,
    write_receipt,
)
from tests.external import S3Server

BODY = b'{"winner":"a"}'


@pytest.fixture
def leased_run(make_run):
    run = make_run(reserved_micros=50_000)
    run.lease_token = uuid.uuid4()
    return run


def test_receipt_round_trips_with_its_metadata_and_matches_its_run(leased_run, local_results):
    written = write_receipt(
        run=leased_run, lease_token=leased_run.lease_token, body=BODY, charge_micros=10_100
    )

    found = read_receipt(leased_run)

    assert found == written
    assert found.key == f"results/{leased_run.tenant_id}/{leased_run.id}.json"
    assert (local_results / found.key).read_bytes() == BODY
    sidecar = json.loads((local_results / (found.key + SIDECAR_SUFFIX)).read_text())
    assert set(sidecar) == {"run-id", "tenant-id", "lease-token", "sha256", "charge-usd-micros"}
    assert found.charge_micros == 10_100
    assert receipt_matches(leased_run, found) == []


def test_no_receipt_until_the_sidecar_is_written(leased_run, local_results: Path):
    assert read_receipt(leased_run) is None
    written = write_receipt(
        run=leased_run, lease_token=leased_run.lease_token, body=BODY, charge_micros=1
    )
    (local_results / (written.key + SIDECAR_SUFFIX)).unlink()

    assert read_receipt(leased_run) is None


def test_delete_receipt_removes_the_result_and_its_sidecar(leased_run, local_results: Path):
    written = write_receipt(
        run=leased_run, lease_token=leased_run.lease_token, body=BODY, charge_micros=1
    )

    delete_receipt(leased_run)
    delete_receipt(leased_run)  # absent is fine: retention may run twice

    assert read_receipt(leased_run) is None
    assert list((local_results / written.key).parent.iterdir()) == []


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"run_id": str(uuid.uuid4())}, "run-id"),
        ({"tenant_id": str(uuid.uuid4())}, "tenant-id"),
        ({"lease_token": str(uuid.uuid4())}, "lease-token"),
        ({"body_sha256": "f" * 64}, "sha256 metadata"),
        ({"charge_micros": 50_001}, "outside 0..reserved"),
        ({"charge_micros": -1}, "outside 0..reserved"),
        ({"charge_micros": None}, "not an integer"),
    ],
)
def test_receipt_mismatches_are_named(leased_run, tamper, reason):
    receipt = write_receipt(
        run=leased_run, lease_token=leased_run.lease_token, body=BODY, charge_micros=100
    )

    reasons = receipt_matches(leased_run, dataclasses.replace(receipt, **tamper))

    assert len(reasons) == 1
    assert reason in reasons[0]


def test_a_receipt_from_an_older_lease_does_not_match_the_current_one(leased_run):
    receipt = write_receipt(
        run=leased_run, lease_token=leased_run.lease_token, body=BODY, charge_micros=100
    )

    assert receipt_matches(leased_run, receipt, lease_token=uuid.uuid4()) != []


def test_bytes_changed_after_writing_are_detected(leased_run, local_results: Path):
    receipt = write_receipt(
        run=leased_run, lease_token=leased_run.lease_token, body=BODY, charge_micros=100
    )
    (local_results / receipt.key).write_bytes(b'{"winner":"b"}')

    reasons = receipt_matches(leased_run, read_receipt(leased_run))

    assert reasons == ["sha256 metadata does not match the stored bytes"]


@pytest.mark.slow
def test_s3_receipt_is_one_object_whose_metadata_is_the_receipt(
    leased_run, settings, s3_server: S3Server
):
    settings.STORAGES = {
        **settings.STORAGES,
        "results": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": s3_server.bucket,
                "endpoint_url": s3_server.endpoint_url,
                "region_name": s3_server.region,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
            },
        },
    }
    assert read_receipt(leased_run) is None

    written = write_receipt(
        run=leased_run, lease_token=leased_run.lease_token, body=BODY, charge_micros=10_100
    )

    head = s3_server.client().head_object(Bucket=s3_server.bucket, Key=written.key)
    assert head["Metadata"] == {
        "run-id": str(leased_run.id),
        "tenant-id": str(leased_run.tenant_id),
        "lease-token": str(leased_run.lease_token),
        "sha256": written.sha256,
        "charge-usd-micros": "10100",
    }
    assert head["ContentType"] == "application/json"
    found = read_receipt(leased_run)
    assert found == written
    assert receipt_matches(leased_run, found) == []
    delete_receipt(leased_run)
    assert read_receipt(leased_run) is None
