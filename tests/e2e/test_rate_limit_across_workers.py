"""The submit quota holds across API processes: 200 concurrent submits, 4 gunicorn workers."""

import json
import threading
import urllib.error
import urllib.request
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection

from billing import services as billing
from billing.models import Transfer
from runs.models import Run
from tests.external import HOST, ManagedProcess, free_port, venv_binary
from tests.factories import AccountFactory, issue_token
from tests.payloads import run_body

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def gunicorn(tmp_path):
    db = connection.settings_dict
    port = free_port()
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.CACHES["default"]["LOCATION"],
        "DPP_VAR_DIR": str(tmp_path / "var"),
    }
    argv = [
        venv_binary("gunicorn"),
        "config.wsgi",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        "4",
        "--worker-class",
        "gthread",
        "--threads",
        "8",
    ]
    with ManagedProcess("gunicorn", argv, log_dir=tmp_path, env=env) as server:
        server.start(ready=lambda: _healthy(f"http://{HOST}:{port}/health"))
        yield f"http://{HOST}:{port}"


def _submit(base: str, token: str, key: str) -> int:
    request = urllib.request.Request(
        f"{base}/v1/runs",
        data=json.dumps(run_body()).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_two_hundred_concurrent_submits_admit_exactly_the_quota(gunicorn):
    account = AccountFactory()
    plan = account.plan
    plan.pk, plan.name = None, "burst"
    plan.submit_per_minute, plan.max_concurrent_runs = 60, 1000
    plan.save()
    account.plan = plan
    account.save()
    billing.top_up(account=account, amount_micros=20_000_000, reason="test")
    token = issue_token(account.tenant)
    barrier = threading.Barrier(200)
    statuses: list[int] = []

    def client(i: int) -> None:
        barrier.wait()
        statuses.append(_submit(gunicorn, token, f"burst-key-{i:05d}"))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(statuses) == {202: 60, 429: 140}
    assert Run.objects.filter(tenant=account.tenant).count() == 60
    assert Transfer.objects.filter(account=account, kind=Transfer.Kind.RESERVE).count() == 60
    account.refresh_from_db()
    assert account.debits_pending == 60 * 50_000
