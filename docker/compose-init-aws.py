"""Create the compose stack's SQS queues and S3 bucket (the one-shot ``aws-init`` service).

Reads the same variables as DPP (docs/design.md §6): ``DPP_SQS_RUNS_QUEUE_URL`` and
``DPP_SQS_REAPER_QUEUE_URL`` (the SQS endpoint is their scheme and host),
``AWS_STORAGE_BUCKET_NAME``, ``AWS_S3_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` and the AWS
credentials. Idempotent: an existing queue gets its visibility timeout set again, an
existing bucket is kept. The queues' visibility timeout is 3 x ``DPP_LEASE_TTL_SEC``, as
kombu would give a queue it created: longer than the lease, so SQS never redelivers a run
that a live worker still holds. Exits non-zero when a queue URL SQS reports differs from
the configured one (the workers would poll a queue that does not exist).
"""

import logging
import os
import sys
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger("compose-init-aws")


def ensure_queue(sqs, configured_url: str, visibility_timeout: str) -> str:
    name = urlsplit(configured_url).path.rstrip("/").rsplit("/", 1)[-1]
    attributes = {"VisibilityTimeout": visibility_timeout}
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    if urlsplit(url).path != urlsplit(configured_url).path:
        raise SystemExit(f"queue {name}: SQS answers {url}, DPP is set to {configured_url}")
    return url


def ensure_bucket(s3, bucket: str, region: str) -> None:
    kwargs = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    visibility_timeout = str(3 * int(os.environ.get("DPP_LEASE_TTL_SEC", "120")))
    queue_urls = [os.environ["DPP_SQS_RUNS_QUEUE_URL"], os.environ["DPP_SQS_REAPER_QUEUE_URL"]]
    endpoint = urlsplit(queue_urls[0])
    sqs = boto3.client(
        "sqs", endpoint_url=f"{endpoint.scheme}://{endpoint.netloc}", region_name=region
    )
    for configured_url in queue_urls:
        url = ensure_queue(sqs, configured_url, visibility_timeout)
        logger.info("queue ready: %s (VisibilityTimeout=%s)", url, visibility_timeout)
    bucket = os.environ["AWS_STORAGE_BUCKET_NAME"]
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"], region_name=region)
    ensure_bucket(s3, bucket, region)
    logger.info("bucket ready: %s", bucket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
