"""Gauges that describe the whole system rather than one request: queue depth and runs by
state. Recorded by the reaper every few seconds (``reaper.record_gauges``)."""

import logging
from itertools import product

from celery import current_app
from django.db.models import Count

from dpp.metrics import QUEUE_DEPTH, RUNS_BY_STATE
from runs.models import Run

logger = logging.getLogger(__name__)

QUEUES = ("runs", "reaper")


def record() -> None:
    record_queue_depth()
    record_runs_by_state()


def record_queue_depth() -> None:
    """Messages waiting per Celery queue, as the broker reports them.

    A passive declare asks the transport for the count: ApproximateNumberOfMessages on
    SQS, the message files on the embedded default's filesystem broker.
    """
    with current_app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            try:
                declared = channel.queue_declare(queue=queue, passive=True)
            except Exception:
                logger.warning("queue depth unavailable", extra={"queue": queue}, exc_info=True)
                continue
            QUEUE_DEPTH.labels(queue=queue).set(declared.message_count)


def record_runs_by_state() -> None:
    counts = {
        (row["status"], row["money_state"]): row["n"]
        for row in Run.objects.values("status", "money_state").annotate(n=Count("id"))
    }
    for status, money_state in product(Run.Status.values, Run.MoneyState.values):
        RUNS_BY_STATE.labels(status=status, money_state=money_state).set(
            counts.get((status, money_state), 0)
        )
