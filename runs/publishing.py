"""Handing runs to the broker. The QUEUED row is the outbox: a run whose publish fails
stays QUEUED and the reaper's requeue scan publishes it again, so nothing here raises."""

import logging
import uuid

from runs.tasks import execute_run

logger = logging.getLogger(__name__)

# A submit must not hang on a sick broker: try briefly, then leave it to the requeue scan.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def publish_run(*, run_id: uuid.UUID | str) -> bool:
    """Publish the execute task; False (logged) when the broker did not take it.

    Through the task object, not ``send_task`` by name: the Celery instrumentation ends
    its publish span (and detaches it) only for a task registered in this process.
    """
    try:
        execute_run.apply_async(args=[str(run_id)], retry=True, retry_policy=_PUBLISH_RETRY)
    except Exception:
        logger.warning(
            "publish failed; the run stays QUEUED for the requeue scan",
            exc_info=True,
            extra={"run_id": str(run_id)},
        )
        return False
    return True
