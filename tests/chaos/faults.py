"""The chaos pack and the faults it injects into a worker subprocess.

A worker started with ``DPP_CHAOS_FAULT=<fault>`` and ``DPP_CHAOS_DIR=<dir>`` (and
``-A tests.chaos.worker_app``) installs the fault in each pool process as it starts.
Each fault pauses the worker at one precise point of ``runs.execution.execute_run`` and
drops a marker file ``<dir>/<point>.<run_id>`` (JSON: worker pid, database backend pid),
so the test knows the worker is exactly there before it kills it, cuts its database
connection, or lets it go on. A paused worker resumes when ``<dir>/release`` exists (and
later runs then pass without pausing), or after ``PAUSE_LIMIT_SEC``.

Faults:

``stall_in_pack``   the pack never returns (the heartbeat keeps the lease alive).
``after_receipt``   the receipt is stored; finalize has not started.
``in_finalize``     inside the finalize transaction, after the SETTLE insert and the
                    account update, before COMMIT (holding the account row lock).
``bit_rot``         as ``after_receipt``, but the stored bytes no longer match the
                    receipt's sha256 (the object was damaged in storage).
``watch_heartbeat`` the heartbeat thread marks ``heartbeat.<run_id>`` (with its own
                    database backend) on its first beat, so the test can cut that
                    connection; the pack sleeps ``inputs["sleep_sec"]`` (any fault).
``race``            no heartbeat, and on a run's first attempt the worker sleeps
                    ``inputs["pause_pack_sec"]`` in the pack,
                    ``inputs["pause_before_receipt_sec"]`` after renewing its lease and
                    before writing the receipt, ``inputs["pause_after_receipt_sec"]``
                    between receipt and finalize: the lease lapses while the worker is
                    alive (a GC pause, a frozen VM) and the reaper races it.

Production code knows nothing of this: the hooks replace module attributes
(``runs.execution.write_receipt``, ``billing.services.settle``,
``runs.execution._Heartbeat``, ``runs.lifecycle.extend_lease``) in the worker process only.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from django.db import connection

from billing import services as billing
from runs import execution, lifecycle
from runs.models import Run
from runs.packs.base import ExecutionContext, Pack
from runs.packs.errors import PackValidationError
from runs.receipts import Receipt, _s3_key
from runs.results import result_storage

FAULT_ENV = "DPP_CHAOS_FAULT"
DIR_ENV = "DPP_CHAOS_DIR"
EXECUTIONS_FILE = "executions.log"
RELEASE_FILE = "release"
PAUSE_LIMIT_SEC = 120.0
DEFAULT_COST_MICROS = 10_000


def _dir() -> Path:
    return Path(os.environ[DIR_ENV])


def _mark(point: str, run_id: object) -> None:
    """Tell the test this process is at ``point`` for ``run_id``."""
    backend_pid = connection.connection.info.backend_pid if connection.connection else None
    marker = _dir() / f"{point}.{run_id}"
    temporary = marker.with_name(f".{marker.name}.tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "backend_pid": backend_pid}))
    temporary.rename(marker)


def _released() -> bool:
    return (_dir() / RELEASE_FILE).exists()


def _pause(point: str, run_id: object) -> None:
    """Stop here until the test releases the worker (or kills it)."""
    if _released():
        return
    _mark(point, run_id)
    deadline = time.monotonic() + PAUSE_LIMIT_SEC
    while not _released() and time.monotonic() < deadline:
        time.sleep(0.05)


def _first_attempt(run_id: object) -> bool:
    return Run.objects.filter(id=run_id, attempts=1).exists()


class ChaosPack(Pack):
    """A fast pack with a per-run price (``inputs["cost"]``) that counts its executions in
    ``<DPP_CHAOS_DIR>/executions.log`` and honours the worker's fault."""

    def validate(self, inputs: dict[str, Any]) -> None:
        cost = inputs.get("cost", DEFAULT_COST_MICROS)
        if isinstance(cost, bool) or not isinstance(cost, int) or cost <= 0:
            raise PackValidationError([{"pointer": "/cost", "detail": "a positive integer"}])

    def estimate_cost(self, inputs: dict[str, Any]) -> int:
        return inputs.get("cost", DEFAULT_COST_MICROS)

    def execute(self, inputs: dict[str, Any], ctx: ExecutionContext) -> tuple[dict[str, Any], int]:
        # O_APPEND writes this short are atomic: processes never interleave their lines.
        with open(_dir() / EXECUTIONS_FILE, "a") as log:
            log.write(f"{ctx.run_id}\n")
        fault = os.environ.get(FAULT_ENV, "")
        if fault == "stall_in_pack":
            _pause("in_pack", ctx.run_id)
        elif fault == "race" and _first_attempt(ctx.run_id):
            time.sleep(float(inputs.get("pause_pack_sec", 0)))
        time.sleep(float(inputs.get("sleep_sec", 0)))
        document = {"run_id": ctx.run_id, "answer": 42, "padding": "x" * 256}
        return document, self.estimate_cost(inputs)


def _after_receipt(write_receipt):
    @functools.wraps(write_receipt)
    def hooked(*, run: Run, **kwargs: Any):
        racing = os.environ.get(FAULT_ENV) == "race" and run.attempts == 1
        if racing:
            time.sleep(float(run.inputs.get("pause_before_receipt_sec", 0)))
        receipt = write_receipt(run=run, **kwargs)
        if os.environ.get(FAULT_ENV) == "bit_rot":
            _damage(receipt)
        if os.environ.get(FAULT_ENV) in ("after_receipt", "bit_rot"):
            _pause("after_receipt", run.id)
        elif racing:
            time.sleep(float(run.inputs.get("pause_after_receipt_sec", 0)))
        return receipt

    return hooked


def _damage(receipt: Receipt) -> None:
    """Flip the stored bytes, keep the metadata: what bit rot or a bad copy leaves."""
    storage = result_storage()
    client, key = storage.connection.meta.client, _s3_key(storage, receipt.key)
    stored = client.get_object(Bucket=storage.bucket_name, Key=key)
    body = stored["Body"].read()
    client.put_object(
        Bucket=storage.bucket_name,
        Key=key,
        Body=body[:-1] + bytes([body[-1] ^ 0x01]),
        Metadata=stored["Metadata"],
        ContentType="application/json",
    )


def _in_finalize(settle):
    @functools.wraps(settle)
    def hooked(*, run: Any, charge_micros: int, outcome: str):
        transfer = settle(run=run, charge_micros=charge_micros, outcome=outcome)
        # Still inside the finalize transaction: nothing of it is committed yet.
        assert connection.in_atomic_block
        _pause("in_finalize", run.id)
        return transfer

    return hooked


def _watched(extend_lease):
    @functools.wraps(extend_lease)
    def hooked(*, run_id: Any, lease_token: Any) -> lifecycle.Renewal:
        renewal = extend_lease(run_id=run_id, lease_token=lease_token)
        beating = threading.current_thread().name.startswith("lease-heartbeat")
        if beating and not (_dir() / f"heartbeat.{run_id}").exists():
            _mark("heartbeat", run_id)
        return renewal

    return hooked


class _NoHeartbeat:
    """A worker whose heartbeat thread is stuck: its lease lapses while it works."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _NoHeartbeat:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def install() -> None:
    fault = os.environ.get(FAULT_ENV, "")
    if fault in ("after_receipt", "bit_rot", "race"):
        execution.write_receipt = _after_receipt(execution.write_receipt)
    if fault == "in_finalize":
        billing.settle = _in_finalize(billing.settle)
    if fault == "race":
        execution._Heartbeat = _NoHeartbeat
    if fault == "watch_heartbeat":
        lifecycle.extend_lease = _watched(lifecycle.extend_lease)


if os.environ.get(FAULT_ENV):
    install()
