import io
import json
import logging
from collections.abc import Iterator

import pytest
from celery import Celery
from celery import _state as celery_state

from dpp.logging import JsonFormatter
from tests.reaper.helpers import Broker, JsonLines


@pytest.fixture
def broker() -> Iterator[Broker]:
    """``publish_run`` sends to an in-memory broker, from every thread, and the test can
    read back which runs were published, in order.

    The memory app becomes both the current and the default Celery app (threads see the
    default), so publishing by task name and through the task object both reach it.
    """
    app = Celery("dpp-reaper-tests", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url="memory://", broker_transport_options={})
    app.autodiscover_tasks(["runs", "reaper"], force=True)
    previous_current, previous_default = celery_state.get_current_app(), celery_state.default_app
    app.set_default()
    app.set_current()
    published = Broker(app)
    published.drain()  # the memory transport's queues are shared by the whole process
    try:
        yield published
    finally:
        celery_state.set_default_app(previous_default)
        previous_current.set_current()
        app.close()


@pytest.fixture
def instant_leases(settings) -> None:
    """Leases expire the moment they are taken, so the next scan finds them expired."""
    settings.DPP_LEASE_TTL_SEC = 0


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    """Every log line, formatted and filtered like the configured stdout handler's."""
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
