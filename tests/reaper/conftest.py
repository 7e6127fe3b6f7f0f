import io
import json
import logging
from collections.abc import Iterator

import pytest
from celery import Celery
from django.contrib.auth.models import User
from django.test import Client

from dpp.logging import JsonFormatter
from runs import tasks
from runs.services import EXECUTE_TASK
from tests.reaper.helpers import Broker, JsonLines


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    """``publish_run`` sends to an in-memory broker (from every thread), and the test can
    read back which runs were published, in order."""
    app = Celery("dpp-reaper-tests", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url="memory://", broker_transport_options={})
    # publish_run sends through the task object: the same task, bound to this app.
    task = app.task(name=EXECUTE_TASK, shared=False)(tasks.execute_run.run)
    monkeypatch.setattr(tasks, "execute_run", task)
    published = Broker(app)
    published.drain()  # the memory transport's queues are shared by the whole process
    yield published
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


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser("oncall", "oncall@example.com", password=None)


@pytest.fixture
def admin_client(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client
