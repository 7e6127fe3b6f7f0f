"""Request fingerprints for idempotency: SHA-256 of the canonical JSON body."""

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()
