"""Arranging runs for the reaper tests: leases, receipts (valid and not), the ledger."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from django.conf import settings

from billing.models import Account, Transfer
from runs import lifecycle
from runs.models import Run, RunEvent
from runs.receipts import SIDECAR_SUFFIX, Receipt, write_receipt
from runs.results import result_key
from runs.tasks import execute_run

RESULT_BODY = b'{"winner":"o1"}'


class Broker:
    """What ``publish_run`` sent to the in-memory broker."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def drain(self) -> list[str]:
        """The run ids published since the last drain, in order."""
        ids: list[str] = []
        with self._app.connection_for_read() as connection:
            queue = connection.SimpleQueue("runs")
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except queue.Empty:
                        break
                    assert message.headers["task"] == execute_run.name
                    ids.append(message.payload[0][0])
                    message.ack()
            finally:
                queue.close()
        return ids


@dataclass(frozen=True)
class JsonLines:
    read: Callable[[], list[dict[str, Any]]]

    def critical(self) -> list[dict[str, Any]]:
        return [line for line in self.read() if line["level"] == "CRITICAL"]


def lease(run: Run) -> lifecycle.Lease:
    """Claim ``run`` as a worker would; with ``instant_leases`` it is expired at once."""
    claimed = lifecycle.claim(run_id=run.id)
    assert claimed is not None
    return claimed


def exhaust_attempts(run: Run, expire: Callable[[], object]) -> lifecycle.Lease:
    """Claim and lose the run until its last attempt is the one under lease."""
    for _ in range(settings.DPP_MAX_ATTEMPTS - 1):
        lease(run)
        expire()
    return lease(run)


def receipt_for(current: lifecycle.Lease, *, charge_micros: int = 9_000, **kwargs: Any) -> Receipt:
    return write_receipt(
        run=current.run,
        lease_token=kwargs.get("lease_token", current.token),
        body=kwargs.get("body", RESULT_BODY),
        charge_micros=charge_micros,
    )


def receipt_paths(results_dir: Path, run: Run) -> tuple[Path, Path]:
    path = results_dir / result_key(tenant_id=str(run.tenant_id), run_id=str(run.id))
    return path, path.with_name(path.name + SIDECAR_SUFFIX)


def rewrite_metadata(results_dir: Path, run: Run, **changes: str) -> None:
    """Change receipt metadata in place, as a buggy writer or a tamperer would."""
    _, sidecar = receipt_paths(results_dir, run)
    metadata = json.loads(sidecar.read_text())
    metadata.update({key.replace("_", "-"): value for key, value in changes.items()})
    sidecar.write_text(json.dumps(metadata))


def corrupt_bytes(results_dir: Path, run: Run) -> None:
    body, _ = receipt_paths(results_dir, run)
    body.write_bytes(body.read_bytes() + b" ")


def money(account: Account) -> tuple[int, int, int]:
    """(credits_posted, debits_posted, debits_pending)."""
    account.refresh_from_db()
    return account.credits_posted, account.debits_posted, account.debits_pending


def finalizations(run: Run) -> list[tuple[str, int]]:
    return list(
        Transfer.objects.filter(
            run_id=run.id, kind__in=(Transfer.Kind.SETTLE, Transfer.Kind.VOID)
        ).values_list("kind", "amount_micros")
    )


def history(run: Run) -> list[tuple[str, int]]:
    return list(RunEvent.objects.filter(run_id=run.id).values_list("kind", "attempt"))
