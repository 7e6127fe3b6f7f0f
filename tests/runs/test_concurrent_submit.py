"""Concurrent duplicates over real HTTP: each request its own thread and DB connection."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from billing import services as billing
from billing.models import Transfer
from runs.models import Run
from tests.factories import USD, AccountFactory, issue_token
from tests.payloads import run_body


def _post(url: str, token: str, key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post_concurrently(n: int, url: str, token: str, key: str, body: dict) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = _post(url, token, key, body)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_duplicates_create_one_run_and_one_reservation(live_server):
    account = AccountFactory()
    billing.top_up(account=account, amount_micros=USD, reason="test")
    token = issue_token(account.tenant)

    results = _post_concurrently(
        20, f"{live_server.url}/v1/runs", token, "same-key-0001", run_body()
    )

    assert [status for status, _ in results] == [202] * 20
    assert len({body["run_id"] for _, body in results}) == 1
    assert Run.objects.filter(tenant=account.tenant).count() == 1
    assert Transfer.objects.filter(account=account, kind=Transfer.Kind.RESERVE).count() == 1
    account.refresh_from_db()
    assert account.debits_pending == 50_000


@pytest.mark.django_db(transaction=True)
def test_concurrent_distinct_submits_never_overdraw(live_server):
    account = AccountFactory()
    billing.top_up(account=account, amount_micros=200_000, reason="test")
    token = issue_token(account.tenant)
    url = f"{live_server.url}/v1/runs"
    barrier = threading.Barrier(10)
    statuses: list[int] = []

    def worker(i: int) -> None:
        barrier.wait()
        statuses.append(_post(url, token, f"distinct-key-{i:04d}", run_body())[0])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [202] * 4 + [402] * 6
    account.refresh_from_db()
    assert account.debits_pending == 200_000
    assert Run.objects.filter(tenant=account.tenant).count() == 4
