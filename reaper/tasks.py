"""Thin Celery wrappers over reaper.services, scheduled in config/celery.py."""

import logging

from celery import shared_task

from billing import usage
from dpp.metrics import REAPER_ACTIONS, REAPER_SCANS
from reaper import gauges, services

logger = logging.getLogger(__name__)


def _report(result: services.ScanResult) -> dict[str, int]:
    REAPER_SCANS.labels(scan=result.scan).inc()
    for action, count in result.actions.items():
        REAPER_ACTIONS.labels(scan=result.scan, action=action).inc(count)
    if result.actions:
        logger.info("reaper scan", extra={"scan": result.scan, "actions": dict(result.actions)})
    return dict(result.actions)


@shared_task(name="reaper.expire_leases")
def expire_leases() -> dict[str, int]:
    return _report(services.expire_leases())


@shared_task(name="reaper.requeue_stale")
def requeue_stale() -> dict[str, int]:
    return _report(services.requeue_stale())


@shared_task(name="reaper.audit_ledger")
def audit_ledger() -> dict[str, int]:
    return _report(services.audit_ledger())


@shared_task(name="reaper.purge_expired_results")
def purge_expired_results() -> dict[str, int]:
    return _report(services.purge_expired_results())


@shared_task(name="reaper.record_gauges")
def record_gauges() -> None:
    gauges.record()


@shared_task(name="reaper.roll_up_usage")
def roll_up_usage() -> dict[str, int]:
    sealed = usage.roll_up()
    result = services.ScanResult("roll_up_usage")
    if sealed:
        result.actions["days_sealed"] = sealed
    return _report(result)
