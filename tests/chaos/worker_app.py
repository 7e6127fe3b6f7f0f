"""The Celery app of the chaos workers: DPP's own app, with the faults of
tests/chaos/faults.py installed in each pool process as it starts (before its first run,
so even the first run's heartbeat is the faulty one). ``celery -A tests.chaos.worker_app``."""

from celery import signals

from config.celery import app

__all__ = ["app"]


@signals.worker_process_init.connect
def install_faults(**kwargs: object) -> None:
    # Importing installs the fault named by DPP_CHAOS_FAULT (none: nothing changes).
    from tests.chaos import faults  # noqa: F401
