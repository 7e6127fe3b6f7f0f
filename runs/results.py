"""Result objects: where they live, and the short-lived links clients download them from.

With S3 the link is a presigned GET; in the embedded default it is an API URL signed
with Django's signer. Both expire after ``RESULT_LINK_TTL`` seconds.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.urls import reverse
from django.utils import timezone

from runs.models import Run

RESULT_LINK_TTL = 600
_SIGNER_SALT = "dpp.runs.result-download"


@dataclass(frozen=True)
class ResultLink:
    url: str
    expires_at: datetime


def result_storage() -> Storage:
    return storages["results"]


def result_key(*, tenant_id: str, run_id: str) -> str:
    return f"results/{tenant_id}/{run_id}.json"


def result_expired_at(run: Run) -> datetime | None:
    """When a completed run's result passed retention (it is or is about to be deleted)."""
    if run.status != Run.Status.COMPLETED:
        return None
    if run.result_purged_at is not None:
        return min(run.result_purged_at, run.retention_until or run.result_purged_at)
    if run.retention_until is not None and run.retention_until <= timezone.now():
        return run.retention_until
    return None


def download_link(run: Run) -> ResultLink | None:
    if run.status != Run.Status.COMPLETED or not run.result_key or result_expired_at(run):
        return None
    storage = result_storage()
    expires_at = timezone.now() + timedelta(seconds=RESULT_LINK_TTL)
    if isinstance(storage, FileSystemStorage):
        token = signing.TimestampSigner(salt=_SIGNER_SALT).sign(str(run.id))
        url = reverse("run-result-download", kwargs={"token": token})
    else:
        url = storage.url(run.result_key)
    return ResultLink(url=url, expires_at=expires_at)


def run_id_from_token(token: str) -> str | None:
    try:
        return signing.TimestampSigner(salt=_SIGNER_SALT).unsign(token, max_age=RESULT_LINK_TTL)
    except signing.BadSignature:
        return None
