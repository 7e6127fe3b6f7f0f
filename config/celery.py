"""The Celery app. Its settings are the ``CELERY_*`` names in config/settings.py; the
periodic schedule lives here, in one place."""

import os

from celery import Celery
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
