"""The Celery app. Its settings are the ``CELERY_*`` names in config/settings.py; the
periodic schedule and the per-process set-up (tracing, metrics) live here."""

import os
from contextlib import suppress

from celery import Celery, signals
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("dpp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_reaper(sender: Celery, **kwargs) -> None:
    """The reaper's beat schedule (DESIGN.md §2); every scan is safe to run twice at once."""
    for task, interval in (
        ("reaper.expire_leases", settings.DPP_REAPER_LEASE_SCAN_SEC),
        ("reaper.requeue_stale", settings.DPP_REAPER_REQUEUE_SCAN_SEC),
        ("reaper.audit_ledger", settings.DPP_REAPER_AUDIT_SEC),
        ("reaper.purge_expired_results", settings.DPP_REAPER_RETENTION_SEC),
        ("reaper.record_gauges", settings.DPP_REAPER_GAUGES_SEC),
    ):
        # Expire a tick that waited longer than its interval: the next one does the work.
        sender.add_periodic_task(interval, sender.signature(task), name=task, expires=interval)


@signals.setup_logging.connect
def keep_django_logging(**kwargs) -> None:
    """Connected so that Celery keeps settings.LOGGING (JSON lines) instead of its own."""


@signals.worker_init.connect
def start_worker_metrics(**kwargs) -> None:
    from dpp import metrics

    metrics.reset_multiprocess_dir()
    if settings.DPP_METRICS_PORT:
        metrics.serve(settings.DPP_METRICS_PORT)


@signals.worker_process_init.connect
def trace_worker_process(**kwargs) -> None:
    from dpp import tracing

    tracing.configure("dpp-worker")


@signals.beat_init.connect
def start_beat(**kwargs) -> None:
    from dpp import metrics, tracing

    tracing.configure("dpp-reaper")
    # Standalone beat serves its own port; beat embedded in a worker (-B) shares the worker's.
    if settings.DPP_METRICS_PORT:
        with suppress(OSError):
            metrics.serve(settings.DPP_METRICS_PORT)
