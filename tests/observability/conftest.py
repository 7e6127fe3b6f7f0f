import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import signals
from celery.app.trace import reset_worker_optimizations
from celery.contrib.testing.worker import start_worker
from django.db import connections

from config.celery import app as celery_app
from dpp.logging import JsonFormatter
from tests.observability.helpers import JsonLines


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    """Every log line of this process (API and in-process worker alike), formatted and
    filtered exactly like the configured stdout handler's, parsed."""
    root = logging.getLogger()
    configured = next(h for h in root.handlers if isinstance(h.formatter, JsonFormatter))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    root.addHandler(handler)
    yield JsonLines(lambda: [json.loads(line) for line in stream.getvalue().splitlines()])
    root.removeHandler(handler)


def _drop_connections() -> None:
    """Forget pooled broker connections and producers, so the next publish or consume
    uses the app's current transport options."""
    pool = celery_app._pool
    if pool is not None:
        pool.force_close_all()
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture
def fs_broker(tmp_path: Path) -> Iterator[Path]:
    """The embedded default's filesystem broker, in a throwaway directory: what this
    process publishes (the API's submit, the reaper's requeue) lands there."""
    folder = tmp_path / "broker"
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True)
    previous = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    _drop_connections()
    celery_app.conf.broker_url = "filesystem://"
    celery_app.conf.broker_transport_options = {
        "control_folder": str(folder / "control"),
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
    }
    yield folder / "queue"
    _drop_connections()
    celery_app.conf.broker_url, celery_app.conf.broker_transport_options = previous


def _close_thread_connections(**kwargs) -> None:
    connections.close_all()


@pytest.fixture
def worker(fs_broker: Path, local_results: Path, transactional_db) -> Iterator[object]:
    """A real Celery worker (the solo pool) in a thread of this process, consuming the
    ``runs`` queue of ``fs_broker``: its spans reach the in-memory exporter, its log
    lines the ``json_logs`` handler."""
    # The worker thread's database connections end with each task, so that the
    # transactional test's flush and the test database's teardown never wait for them.
    signals.task_postrun.connect(_close_thread_connections, weak=False)
    try:
        with start_worker(
            celery_app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=["runs"],
            loglevel="INFO",
            shutdown_timeout=30,
        ) as started:
            yield started
    finally:
        signals.task_postrun.disconnect(_close_thread_connections)
        reset_worker_optimizations(celery_app)  # undo the worker's patches of Task.__call__
