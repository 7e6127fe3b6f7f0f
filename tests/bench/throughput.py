"""``make bench``: end-to-end throughput and submit → completed latency of the decision pack.

The API (gunicorn) and one Celery worker with ``BENCH_WORKERS`` prefork processes
(default 2) run as subprocesses against SQS (moto) and S3 (SeaweedFS), started as the
tests start them, on a freshly created and migrated ``dpp_bench`` PostgreSQL database on
the server of ``DATABASE_URL``. After a short warm-up:

- load: ``BENCH_RUNS`` runs (default 300) submitted over HTTP at once by ``BENCH_CLIENTS``
  threads (default 8); throughput is runs / (last completion - first submission), and
  latency includes the wait in the queue behind the others;
- idle: ``BENCH_IDLE_RUNS`` runs (default 20) one at a time, each waited for: the
  pipeline's own latency with an empty queue.

Latency is the run's own ``completed_at - created_at``. It prints figures and asserts
nothing about timing.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.external import (
    ACCESS_KEY,
    REGION,
    S3_BUCKET,
    SECRET_KEY,
    SQS_QUEUES,
    SQS_VISIBILITY_TIMEOUT_SEC,
    WEED_STOP_GRACE_SEC,
    S3Server,
    SqsServer,
    _moto_server,
    _sqs_client,
    _start_on_free_ports,
    _weed_server,
)

BENCH_DATABASE = "dpp_bench"
USD = 1_000_000


def _setting(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def recreate_database(server_url: str) -> str:
    """Drop and create ``dpp_bench`` on the server of ``server_url``; return its URL."""
    parts = urlsplit(server_url)
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    return urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))


def start_emulators(stack: ExitStack, base: Path) -> tuple[S3Server, SqsServer]:
    """SeaweedFS and moto exactly as the ``s3_server`` and ``sqs_server`` fixtures run them."""
    (base / "s3").mkdir()
    (base / "sqs").mkdir()
    weed, s3_endpoint = _start_on_free_ports(lambda attempt: _weed_server(base / "s3", attempt))
    stack.callback(weed.stop, grace=WEED_STOP_GRACE_SEC)
    moto, sqs_port = _start_on_free_ports(lambda attempt: _moto_server(base / "sqs", attempt))
    stack.callback(moto.stop)
    sqs_endpoint = f"http://127.0.0.1:{sqs_port}"
    client = _sqs_client(sqs_endpoint)
    queue_urls = {
        name: client.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": str(SQS_VISIBILITY_TIMEOUT_SEC)}
        )["QueueUrl"]
        for name in SQS_QUEUES.values()
    }
    s3 = S3Server(s3_endpoint, S3_BUCKET, ACCESS_KEY, SECRET_KEY, REGION, weed)
    sqs = SqsServer(sqs_endpoint, sqs_port, ACCESS_KEY, SECRET_KEY, REGION, queue_urls, moto)
    return s3, sqs


def percentile(sorted_values: list[float], q: int) -> float:
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[q - 1]


def _percentiles(sorted_seconds: list[float]) -> str:
    return ", ".join(
        [
            *(f"p{q} {percentile(sorted_seconds, q) * 1000:.0f} ms" for q in (50, 95, 99)),
            f"max {sorted_seconds[-1] * 1000:.0f} ms",
        ]
    )


def main() -> None:
    runs_total = _setting("BENCH_RUNS", 300)
    idle_runs = _setting("BENCH_IDLE_RUNS", 20)
    workers = _setting("BENCH_WORKERS", 2)
    clients = _setting("BENCH_CLIENTS", 8)
    server_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dpp")
    database = recreate_database(server_url)

    with tempfile.TemporaryDirectory(prefix="dpp-bench-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        os.environ.update(DATABASE_URL=database, DPP_VAR_DIR=str(base / "var"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        # Django models can be imported only now that settings point at the bench database.
        from django.core.management import call_command

        from billing import services as billing
        from billing.models import Plan
        from reaper.audit import audit
        from runs.models import Run
        from tests.e2e.stack import HttpApi, dpp_env, start_api, start_worker, wait_until_terminal
        from tests.factories import issue_token

        call_command("migrate", verbosity=0)
        s3, sqs = start_emulators(stack, base)
        env = {**dpp_env(database=database, var_dir=base / "var"), **s3.env(), **sqs.env()}
        stack.enter_context(
            start_worker("bench-worker", env=env, log_dir=base, concurrency=workers)
        )
        api_process, api_url = start_api("bench-api", env=env, log_dir=base)
        stack.enter_context(api_process)

        plan = Plan.objects.create(
            name="bench",
            submit_per_minute=1_000_000,
            poll_per_minute=1_000_000,
            max_concurrent_runs=1_000_000,
            max_cost_per_run_micros=5 * USD,
            allowed_pack_types=["decision"],
        )
        account = billing.tenant_open(name="bench", plan_name=plan.name, budget_micros=100 * USD)
        api = HttpApi(base_url=api_url, token=issue_token(account.tenant))

        wait_until_terminal([api.submit() for _ in range(2 * workers)], timeout=60)
        submit_seconds: list[float] = []

        def submit_one(_: int) -> str:
            started = time.perf_counter()
            run_id = api.submit()
            submit_seconds.append(time.perf_counter() - started)
            return run_id

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            run_ids = list(pool.map(submit_one, range(runs_total)))
        submitted = time.perf_counter() - started
        runs = wait_until_terminal(run_ids, timeout=max(120, runs_total))
        latencies = sorted((run.completed_at - run.created_at).total_seconds() for run in runs)
        window = (
            max(run.completed_at for run in runs) - min(run.created_at for run in runs)
        ).total_seconds()
        completed = sum(run.status == Run.Status.COMPLETED for run in runs)
        idle = sorted(
            (run.completed_at - run.created_at).total_seconds()
            for run in (
                wait_until_terminal([api.submit()], timeout=60)[0] for _ in range(idle_runs)
            )
        )
        violations = audit()
        submit_sorted = sorted(submit_seconds)

        _out(f"DPP end-to-end benchmark: decision pack 4 x 3, {runs_total} + {idle_runs} runs")
        _out(
            f"  stack: API gunicorn 2x8 threads, 1 celery worker x {workers} prefork processes, "
            f"SQS (moto), S3 (SeaweedFS), PostgreSQL {BENCH_DATABASE}, {clients} client threads"
        )
        _out(f"  completed under load       {completed}/{runs_total}")
        _out(f"  throughput                 {runs_total / window:.1f} runs/s (end to end)")
        _out(f"  submit rate                {runs_total / submitted:.1f} runs/s (HTTP 202s)")
        _out(f"  submit HTTP latency, load: {_percentiles(submit_sorted)}")
        _out(f"  submit -> completed, load: {_percentiles(latencies)}")
        _out(f"  submit -> completed, idle: {_percentiles(idle)} ({idle_runs} runs one by one)")
        _out(f"  ledger audit               {len(violations)} violations")


if __name__ == "__main__":
    main()
