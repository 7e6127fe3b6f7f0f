"""Settlement receipts: the result object a worker writes before it finalizes a run.

The object at ``results/<tenant_id>/<run_id>.json`` carries, as metadata, the run and
tenant it belongs to, the lease under which it was written, the sha256 of its bytes and
the charge. It is what lets the reaper settle a run whose worker died after writing it
(roll forward) and the audit check a COMPLETED run's result (docs/design.md §2, §3).

S3: the metadata travels on the same PUT as the bytes, so object and receipt appear
together or not at all. Local files: the metadata is a sidecar ``<key>.meta.json`` written
after the bytes; the sidecar is the commit point, so a crash between the two writes leaves
no receipt (and the run is retried) rather than a receipt without its result.
"""

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage
from storages.backends.s3 import S3Storage

from runs.models import Run
from runs.results import result_key, result_storage

SIDECAR_SUFFIX = ".meta.json"
_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class Receipt:
    """A receipt as found in storage; nothing in it is trusted until ``receipt_matches``."""

    key: str
    run_id: str
    tenant_id: str
    lease_token: str
    sha256: str
    """The digest the writer stated in the metadata."""
    charge_micros: int | None
    """None when the metadata value is not an integer."""
    body_sha256: str
    """The digest of the bytes actually stored."""
    size: int


def write_receipt(
    *, run: Run, lease_token: uuid.UUID | str, body: bytes, charge_micros: int
) -> Receipt:
    """Store ``body`` as the run's result with the receipt metadata.

    Overwrites an earlier attempt's object: the reaper retries a run only when it found no
    receipt, so such an object never settled anything.
    """
    key = result_key(tenant_id=str(run.tenant_id), run_id=str(run.id))
    metadata = {
        "run-id": str(run.id),
        "tenant-id": str(run.tenant_id),
        "lease-token": str(lease_token),
        "sha256": hashlib.sha256(body).hexdigest(),
        "charge-usd-micros": str(charge_micros),
    }
    storage = result_storage()
    if isinstance(storage, S3Storage):
        storage.connection.meta.client.put_object(
            Bucket=storage.bucket_name,
            Key=_s3_key(storage, key),
            Body=body,
            Metadata=metadata,
            ContentType="application/json",
        )
    else:
        path = Path(_filesystem(storage).path(key))
        _write_atomically(path, body)
        _write_atomically(_sidecar(path), json.dumps(metadata).encode())
    return _receipt(key, metadata, body)


def read_receipt(run: Run) -> Receipt | None:
    """The receipt stored for ``run``, or None when there is none (or it is incomplete)."""
    key = result_key(tenant_id=str(run.tenant_id), run_id=str(run.id))
    storage = result_storage()
    if isinstance(storage, S3Storage):
        try:
            found = storage.connection.meta.client.get_object(
                Bucket=storage.bucket_name, Key=_s3_key(storage, key)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return _receipt(key, found.get("Metadata", {}), found["Body"].read())
    path = Path(_filesystem(storage).path(key))
    try:
        metadata = json.loads(_sidecar(path).read_bytes())
        body = path.read_bytes()
    except FileNotFoundError:
        return None
    return _receipt(key, metadata if isinstance(metadata, dict) else {}, body)


def delete_receipt(run: Run) -> None:
    """Delete the run's result object and its receipt (retention); absent is not an error."""
    key = result_key(tenant_id=str(run.tenant_id), run_id=str(run.id))
    storage = result_storage()
    if isinstance(storage, S3Storage):
        storage.connection.meta.client.delete_object(
            Bucket=storage.bucket_name, Key=_s3_key(storage, key)
        )
        return
    path = Path(_filesystem(storage).path(key))
    # The sidecar first: a crash in between leaves bytes without a receipt, never the reverse.
    _sidecar(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def receipt_matches(
    run: Run, receipt: Receipt, lease_token: uuid.UUID | str | None = None
) -> list[str]:
    """Why ``receipt`` cannot settle ``run``: an empty list means it can.

    The lease compared is ``lease_token`` if given, else the run's current one; a receipt
    written under an older lease is not this attempt's result.
    """
    expected_lease = str(lease_token if lease_token is not None else run.lease_token)
    reasons = []
    if receipt.run_id != str(run.id):
        reasons.append(f"run-id {receipt.run_id!r} is not this run")
    if receipt.tenant_id != str(run.tenant_id):
        reasons.append(f"tenant-id {receipt.tenant_id!r} is not the run's tenant")
    if receipt.lease_token != expected_lease:
        reasons.append(f"lease-token {receipt.lease_token!r} is not lease {expected_lease}")
    if receipt.sha256 != receipt.body_sha256:
        reasons.append("sha256 metadata does not match the stored bytes")
    if run.result_sha256 and run.result_sha256 != receipt.body_sha256:
        reasons.append("stored bytes do not match the run's result_sha256")
    if receipt.charge_micros is None:
        reasons.append("charge-usd-micros is missing or not an integer")
    elif not 0 <= receipt.charge_micros <= run.reserved_micros:
        reasons.append(
            f"charge {receipt.charge_micros} is outside 0..reserved {run.reserved_micros}"
        )
    return reasons


def _receipt(key: str, metadata: dict[str, Any], body: bytes) -> Receipt:
    try:
        charge: int | None = int(metadata.get("charge-usd-micros", ""))
    except (TypeError, ValueError):
        charge = None
    return Receipt(
        key=key,
        run_id=str(metadata.get("run-id", "")),
        tenant_id=str(metadata.get("tenant-id", "")),
        lease_token=str(metadata.get("lease-token", "")),
        sha256=str(metadata.get("sha256", "")),
        charge_micros=charge,
        body_sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
    )


def _s3_key(storage: S3Storage, key: str) -> str:
    """The object key the storage's own ``url()`` and ``open()`` use for ``key``."""
    prefix = storage.location.strip("/")
    return f"{prefix}/{key}" if prefix else key


def _filesystem(storage: Storage) -> FileSystemStorage:
    if not isinstance(storage, FileSystemStorage):
        raise ImproperlyConfigured(
            f"STORAGES['results'] must be S3Storage or FileSystemStorage, not {type(storage)}"
        )
    return storage


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, and a crash leaves no torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
