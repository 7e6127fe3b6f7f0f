"""The Celery app. Its settings are the ``CELERY_*`` names in config/settings.py; the
periodic schedule and the per-process set-up (tracing, metrics, log context) live here."""

import logging
import os
from contextlib import AbstractContextManager, suppress

from celery import Celery, signals
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

app = Celery("dpp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_reaper(sender: Celery, **kwargs) -> None:
    """The reaper's beat schedule (docs/design.md §2); every scan is safe to run twice at once."""
    for task, interval in (
        ("reaper.expire_leases", settings.DPP_REAPER_LEASE_SCAN_SEC),
        ("reaper.requeue_stale", settings.DPP_REAPER_REQUEUE_SCAN_SEC),
        ("reaper.audit_ledger", settings.DPP_REAPER_AUDIT_SEC),
        ("reaper.purge_expired_results", settings.DPP_REAPER_RETENTION_SEC),
        ("reaper.record_gauges", settings.DPP_REAPER_GAUGES_SEC),
        ("reaper.roll_up_usage", settings.DPP_REAPER_USAGE_SEC),
    ):
        # Expire a tick that waited longer than its interval: the next one does the work.
        sender.add_periodic_task(interval, sender.signature(task), name=task, expires=interval)


@signals.setup_logging.connect
def keep_django_logging(**kwargs) -> None:
    """Connected so that Celery keeps settings.LOGGING (JSON lines) instead of its own."""


@signals.celeryd_init.connect
def json_only_stdout(instance, **kwargs) -> None:
    """No ASCII-art banner on stdout (docs/design.md §5: one JSON object per line); its facts
    are logged as one line once the worker is set up."""
    instance.quiet = True


@signals.celeryd_after_setup.connect
def log_worker_setup(sender: str, instance, **kwargs) -> None:
    logger.info(
        "worker starting",
        extra={
            "hostname": sender,
            "queues": sorted(instance.app.amqp.queues.consume_from or ()),
            "concurrency": instance.concurrency,
            "pool": getattr(instance.pool_cls, "__module__", str(instance.pool_cls)),
            "transport": str(instance.app.conf.broker_url).split(":", 1)[0],
        },
    )


@signals.worker_init.connect
def start_worker_metrics(**kwargs) -> None:
    from dpp import metrics

    metrics.reset_multiprocess_dir()
    metrics.initialize(list(settings.DPP_PACKS))
    if settings.DPP_METRICS_PORT:
        metrics.serve(settings.DPP_METRICS_PORT)


@signals.worker_process_init.connect
def trace_worker_process(**kwargs) -> None:
    from dpp import metrics, tracing

    tracing.configure("dpp-worker")
    metrics.initialize(list(settings.DPP_PACKS))


# The log context of each task execution, entered at prerun and left at postrun, so that
# Celery's own lines about the task ("succeeded in ...") carry the run's ids as well.
_task_context: dict[str, AbstractContextManager[None]] = {}


@signals.task_prerun.connect
def bind_task_context(task_id: str, task, args=(), kwargs=None, **extra) -> None:
    from dpp import context

    fields = {"task_id": task_id, **_run_fields(task.name, args, kwargs or {})}
    bound = context.bound(**fields)
    bound.__enter__()
    _task_context[task_id] = bound


@signals.task_postrun.connect
def unbind_task_context(task_id: str, **extra) -> None:
    bound = _task_context.pop(task_id, None)
    if bound is not None:
        bound.__exit__(None, None, None)


def _run_fields(task_name: str, args, kwargs) -> dict[str, str]:
    """``run_id`` and ``tenant_id`` of a task about one run (``runs.execute_run``)."""
    run_id = kwargs.get("run_id") or (args[0] if task_name == "runs.execute_run" and args else None)
    if not run_id:
        return {}
    fields = {"run_id": str(run_id)}
    try:
        from runs.models import Run

        tenant_id = Run.objects.filter(id=run_id).values_list("tenant_id", flat=True).first()
    except Exception:  # a malformed id: the task itself reports it
        tenant_id = None
    if tenant_id is not None:
        fields["tenant_id"] = str(tenant_id)
    return fields


@signals.beat_init.connect
def start_beat(**kwargs) -> None:
    from dpp import metrics, tracing

    tracing.configure("dpp-reaper")
    metrics.initialize(list(settings.DPP_PACKS))
    # Standalone beat serves its own port; beat embedded in a worker (-B) shares the worker's.
    if settings.DPP_METRICS_PORT:
        with suppress(OSError):
            metrics.serve(settings.DPP_METRICS_PORT)
