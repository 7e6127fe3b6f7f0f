"""A worker's pipeline for one run: claim, heartbeat, execute, receipt, finalize.

Each state change goes through ``runs.lifecycle`` (docs/design.md §2), so a worker, a
duplicate delivery and the reaper can race on a run and only one of them wins.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from billing.money import require_micros
from dpp import context
from runs import lifecycle
from runs.lifecycle import Canceled, Completed, Failed, Outcome, Renewal
from runs.models import Run
from runs.packs.base import ExecutionContext
from runs.packs.errors import PackExecutionError
from runs.packs.registry import get_pack
from runs.receipts import delete_receipt, write_receipt
from runs.timebox import CancelRequested, Timebox, TimeboxExceeded

logger = logging.getLogger(__name__)

PACK_ERROR = "PACK_ERROR"
TIMEBOX_EXCEEDED = "TIMEBOX_EXCEEDED"


def execute_run(*, run_id: uuid.UUID | str) -> None:
    """Claim, execute, store the receipt and finalize one run: the worker's task.

    Only the pack runs under the timebox; the receipt write and finalize cannot be
    interrupted by it. A crash between any two steps leaves a PROCESSING run whose lease
    expires, with or without a receipt, which is exactly what the reaper repairs. A cancel
    found by a heartbeat stops the pack through its timebox; one found by the renewal
    after the pack, or that wins the race with finalize, ends the run Canceled all the same.
    """
    lease = lifecycle.claim(run_id=run_id)
    if lease is None:
        logger.info(
            "run not claimable (duplicate delivery); acknowledged", extra={"run_id": str(run_id)}
        )
        return
    run = lease.run
    with context.bound(run_id=str(run.id), tenant_id=str(run.tenant_id)):
        box = Timebox(run.timebox_sec)
        with _Heartbeat(run_id=run.id, lease_token=lease.token, on_cancel=box.interrupt):
            result = _run_pack(run, box)
        # Renewing is also the check that the lease is still ours, and it leaves a whole
        # TTL for the receipt and finalize before the reaper may judge the run.
        renewal = lifecycle.extend_lease(run_id=run.id, lease_token=lease.token)
        if renewal == Renewal.LOST:
            logger.warning("lease lost while the pack ran; the reaper owns the run now")
            return
        if renewal == Renewal.CANCEL_REQUESTED:
            _cancel(run, lease.token, result if isinstance(result, Canceled) else None)
            return
        if isinstance(result, _PackOutput):
            receipt = write_receipt(
                run=run,
                lease_token=lease.token,
                body=result.body,
                charge_micros=result.charge_micros,
            )
            outcome: Outcome = Completed.from_receipt(receipt)
        else:
            outcome = result
        if lifecycle.finalize(run_id=run.id, lease_token=lease.token, outcome=outcome):
            return
        # Lost to a cancel requested since the renewal (if it lost to the reaper, there is
        # nothing more to do): a receipt written for the outcome that lost is nobody's.
        if (
            lifecycle.cancel_requested(run_id=run.id, lease_token=lease.token)
            and _cancel(run, lease.token)
            and isinstance(outcome, Completed)
        ):
            _discard_receipt(run)


def _discard_receipt(run: Run) -> None:
    """The result of a run that ended CANCELED is nobody's: delete it, best effort."""
    try:
        delete_receipt(run)
    except Exception:
        # The run is settled either way; an object left behind costs storage, not money.
        logger.warning("receipt of a canceled run left in storage", exc_info=True)


def _cancel(run: Run, lease_token: uuid.UUID, stopped: Canceled | None = None) -> bool:
    """Finalize the run CANCELED under this worker's lease; False if that lost too."""
    return lifecycle.finalize(
        run_id=run.id,
        lease_token=lease_token,
        outcome=stopped or Canceled("Canceled while it was processing."),
    )


@dataclass(frozen=True)
class _PackOutput:
    body: bytes
    charge_micros: int


def _run_pack(run: Run, box: Timebox) -> _PackOutput | Failed | Canceled:
    """Execute the pack under its timebox and turn every way it can end into a value."""
    ctx = ExecutionContext(
        run_id=str(run.id),
        reserved_micros=run.reserved_micros,
        min_reliability_score=run.min_reliability_score,
    )
    try:
        pack = get_pack(run.pack_type)
        started = time.monotonic()
        with box:
            document, cost = pack.execute(run.inputs, ctx)
        # The alarm cannot preempt C code that holds on, nor run outside the main thread:
        # a result that arrives late is a timeout all the same.
        if time.monotonic() - started > run.timebox_sec:
            raise TimeboxExceeded
        return _PackOutput(body=_encode(document), charge_micros=_metered(cost, run))
    except CancelRequested:
        return Canceled("The pack was stopped: the run was canceled.")
    except TimeboxExceeded:
        return Failed(
            TIMEBOX_EXCEEDED, f"the pack did not finish within its timebox of {run.timebox_sec} s"
        )
    except PackExecutionError as exc:
        return Failed(exc.reason_code, exc.detail)
    except Exception as exc:
        # The stack goes to the log for operators; the client sees the class name only.
        logger.exception("pack crashed", extra={"pack_type": run.pack_type})
        return Failed(
            PACK_ERROR, f"the {run.pack_type} pack failed unexpectedly ({type(exc).__name__})"
        )


def _encode(document: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are not JSON, so they fail the run."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _metered(cost: Any, run: Run) -> int:
    """The pack's cost, capped at the reservation (docs/design.md §2: never more)."""
    charge = require_micros(cost, name="a pack's cost")
    if charge < 0:
        raise ValueError(f"a pack's cost must not be negative, got {charge}")
    return min(charge, run.reserved_micros)


class _Heartbeat:
    """Extends the lease every TTL/3 from a daemon thread while the pack runs.

    The thread inherits the log context, uses its own database connection and closes it
    when it stops. A failed beat is retried at the next interval; a lost lease ends it,
    and so does a cancel request, after calling ``on_cancel`` to stop the pack.
    """

    def __init__(
        self,
        *,
        run_id: uuid.UUID,
        lease_token: uuid.UUID,
        on_cancel: Callable[[], None],
    ) -> None:
        self._run_id = run_id
        self._lease_token = lease_token
        self._on_cancel = on_cancel
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._beat,),
            name=f"lease-heartbeat-{run_id}",
            daemon=True,
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.DPP_LEASE_TTL_SEC / 3):
                try:
                    renewal = lifecycle.extend_lease(
                        run_id=self._run_id, lease_token=self._lease_token
                    )
                except Exception:
                    logger.warning("heartbeat failed; retrying at the next beat", exc_info=True)
                    # Nothing in this thread runs Django's per-request connection cleanup:
                    # a dropped connection would fail every later beat and let the lease
                    # lapse under a live pack. Close it; the next beat reconnects.
                    connection.close()
                    continue
                if renewal == Renewal.CANCEL_REQUESTED:
                    logger.info("heartbeat found the run canceled; stopping the pack")
                    self._on_cancel()
                    return
                if renewal == Renewal.LOST:
                    logger.warning("heartbeat found the lease taken; stopping")
                    return
        finally:
            connection.close()
