"""Readiness checks of the execution path: the broker and the result storage.

Registered with ``dpp.health.readiness_check`` when the app is ready, so ``/readyz``
answers 503 when a worker could not receive runs or store their receipts.
"""

import os

from celery import current_app
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage

from dpp.health import readiness_check
from runs.results import result_storage

BROKER_TIMEOUT_SEC = 2.0


class BrokerMisconfigured(Exception):
    """The broker answers but breaks an assumption docs/design.md §2 relies on."""


class StorageUnwritable(Exception):
    """The local results directory cannot be written."""


@readiness_check("broker")
def check_broker() -> None:
    """Connect to the broker; on SQS also read the runs queue's visibility timeout.

    kombu sets a visibility timeout only on queues it creates, so a predefined queue keeps
    its own; if it is not longer than the lease, SQS would hand a leased run to a second
    worker while the first still holds it.
    """
    with current_app.connection_for_read() as broker:
        broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SEC)
        if broker.transport.driver_type != "sqs":
            return
        client = broker.default_channel.sqs(queue="runs")
        url = settings.DPP_SQS_RUNS_QUEUE_URL or client.get_queue_url(QueueName="runs")["QueueUrl"]
        attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    visibility = int(attributes["Attributes"]["VisibilityTimeout"])
    if visibility <= settings.DPP_LEASE_TTL_SEC:
        raise BrokerMisconfigured(
            f"runs queue VisibilityTimeout {visibility} s must exceed the lease TTL "
            f"{settings.DPP_LEASE_TTL_SEC} s"
        )


@readiness_check("storage")
def check_storage() -> None:
    """S3: the bucket answers to our credentials. Local: the results directory is writable."""
    storage = result_storage()
    if isinstance(storage, S3Storage):
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    elif isinstance(storage, FileSystemStorage):
        os.makedirs(storage.location, exist_ok=True)
        if not os.access(storage.location, os.W_OK | os.X_OK):
            raise StorageUnwritable(f"{storage.location} is not writable")
