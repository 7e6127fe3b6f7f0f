"""The real processes, started the way the Procfile starts them and configured only by
environment variables: gunicorn (2 workers, PROMETHEUS_MULTIPROC_DIR), a prefork Celery
worker on the runs and reaper queues (its own multiprocess directory and
DPP_METRICS_PORT) and Celery beat (DPP_METRICS_PORT). They share the embedded
filesystem broker and the test database; their traces go over OTLP/HTTP to a receiver in
this test (OTEL_EXPORTER_OTLP_ENDPOINT).

Proves: every process's /metrics parses and names every docs/design.md §5 metric; the API's
counts add up over its workers; a run's metrics, an AUDIT_REQUIRED flag and the queue
gauge in the worker's port; one trace from the client's traceparent through the API to
the worker, and from beat to the worker; JSON-only stdout with trace and run ids.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from runs.models import Run
from tests.e2e.stack import (
    NON_EMBEDDED_VARIABLES,
    REPO_ROOT,
    HttpApi,
    database_url,
    dpp_env,
    publishing_to,
    wait_until_terminal,
)
from tests.external import HOST, free_port, venv_binary
from tests.factories import issue_token
from tests.observability.collector import OtlpCollector
from tests.observability.helpers import DESIGN_METRICS, metric_names, samples, value
from tests.observability.processes import Service, http_get
from tests.payloads import run_body

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REQUESTS = 40


@dataclass(frozen=True)
class Stack:
    api_url: str
    api: Service
    api_metrics_dir: Path
    worker: Service
    worker_metrics_url: str
    beat: Service
    beat_metrics_url: str
    broker_dir: Path
    collector: OtlpCollector


def _answers(url: str) -> bool:
    return http_get(url)[0] == 200


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("observability")
    var_dir = base / "var"
    with django_db_blocker.unblock():
        database = database_url(connection.settings_dict)
    collector = OtlpCollector()
    common = {
        **dpp_env(database=database, var_dir=var_dir),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # Beat ticks the queue gauge every second; the other scans stay out of the way.
        "DPP_REAPER_GAUGES_SEC": "1",
    }
    for variable in (*NON_EMBEDDED_VARIABLES, "PROMETHEUS_MULTIPROC_DIR", "OTEL_SERVICE_NAME"):
        common.pop(variable, None)
    api_port, worker_port, beat_port = free_port(), free_port(), free_port()
    api_metrics_dir = var_dir / "prometheus" / "api"

    def service(name: str, argv: list[str], **env: str) -> Service:
        environment = {**common, **env}
        return Service(name, argv, env=environment, log_dir=base, cwd=REPO_ROOT)

    worker = service(
        "worker",
        [
            *(venv_binary("celery"), "-A", "config", "worker", "-Q", "runs,reaper"),
            *("--concurrency", "2", "--loglevel", "INFO", "--hostname", "obs-worker@%h"),
        ],
        PROMETHEUS_MULTIPROC_DIR=str(var_dir / "prometheus" / "worker"),
        DPP_METRICS_PORT=str(worker_port),
    )
    api = service(
        "api",
        [
            *(venv_binary("gunicorn"), "config.wsgi", "--config", "config/gunicorn.py"),
            *("--bind", f"{HOST}:{api_port}", "--worker-class", "gthread", "--workers", "2"),
            *("--threads", "4", "--log-level", "warning"),
        ],
        PROMETHEUS_MULTIPROC_DIR=str(api_metrics_dir),
    )
    beat = service(
        "beat",
        [venv_binary("celery"), "-A", "config", "beat", "--loglevel", "INFO"],
        DPP_METRICS_PORT=str(beat_port),
    )
    with collector.running():
        try:
            worker.start(ready=lambda: "ready." in worker.stdout_path.read_text())
            api.start(ready=lambda: _answers(f"http://{HOST}:{api_port}/health"))
            beat.start(ready=lambda: _answers(f"http://{HOST}:{beat_port}/metrics"))
            yield Stack(
                api_url=f"http://{HOST}:{api_port}",
                api=api,
                api_metrics_dir=api_metrics_dir,
                worker=worker,
                worker_metrics_url=f"http://{HOST}:{worker_port}/metrics",
                beat=beat,
                beat_metrics_url=f"http://{HOST}:{beat_port}/metrics",
                broker_dir=var_dir / "broker",
                collector=collector,
            )
        finally:
            for process in (beat, api, worker):
                process.stop()


def scrape(url: str) -> str:
    status, text = http_get(url)
    assert status == 200, text
    return text


def assert_every_design_metric(text: str) -> None:
    missing = set(DESIGN_METRICS) - metric_names(text)
    assert not missing


def per_process(folder: Path, name: str) -> dict[int, float]:
    """``name`` summed over each process's own multiprocess file (pid -> value)."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=alone)
            counts[int(path.stem.rsplit("_", 1)[1])] = value(
                generate_latest(registry).decode(), name
            )
    return counts


def test_the_apis_metrics_add_up_over_its_gunicorn_workers(stack: Stack):
    before = value(scrape(f"{stack.api_url}/metrics"), "http_requests_total")
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # Until both workers have answered some (the kernel picks who accepts).
        while sent < 10 * REQUESTS:
            statuses = list(pool.map(lambda _: http_get(f"{stack.api_url}/health")[0], range(8)))
            assert statuses == [200] * 8
            sent += 8
            served = per_process(stack.api_metrics_dir, "http_requests_total")
            if sent >= REQUESTS and len([n for n in served.values() if n > 0]) >= 2:
                break
    assert http_get(f"{stack.api_url}/readyz")[0] == 200

    # Each worker's own count first; the scrape's own request is counted after it answers.
    served = per_process(stack.api_metrics_dir, "http_requests_total")
    text = scrape(f"{stack.api_url}/metrics")
    assert_every_design_metric(text)
    assert len([n for n in served.values() if n > 0]) == 2, served
    total = value(text, "http_requests_total")
    assert total - before >= sent + 1  # + the /readyz; earlier scrapes count too
    assert total == sum(served.values())
    assert value(text, "http_requests_total", method="GET", status="200") == total
    assert value(text, "dpp_readyz_database_status") == 1
    assert value(text, "django_http_requests_latency_seconds_by_view_method_count", view="health")


def test_beats_port_names_every_design_metric(stack: Stack):
    assert_every_design_metric(scrape(stack.beat_metrics_url))


def test_one_run_through_the_real_processes(stack: Stack, funded_account):
    client_trace, client_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    request_id = f"obs-{uuid.uuid4().hex}"
    started = time.time()
    http = HttpApi(base_url=stack.api_url, token=issue_token(funded_account.tenant))
    status, body = http.request(
        "POST",
        "/v1/runs",
        run_body(),
        headers={
            "Idempotency-Key": uuid.uuid4().hex,
            "traceparent": f"00-{client_trace}-{client_span}-01",
            "X-Request-ID": request_id,
        },
    )
    assert status == 202, body
    run_id = body["run_id"]
    (run,) = wait_until_terminal([run_id], timeout=30)
    assert run.status == Run.Status.COMPLETED
    assert run.traceparent.split("-")[1] == client_trace

    # --- the worker's port: the run's metrics, then an AUDIT_REQUIRED flag -------------
    worker_text = scrape(stack.worker_metrics_url)
    assert_every_design_metric(worker_text)
    labels = {"pack_type": "decision", "status": "COMPLETED"}
    assert value(worker_text, "dpp_runs_total", **labels) == 1
    assert value(worker_text, "dpp_run_duration_seconds_count", **labels) == 1
    assert value(worker_text, "dpp_money_usd_micros_total", kind="settle") == run.actual_cost_micros
    assert value(worker_text, "dpp_worker_last_heartbeat_timestamp") >= int(started)
    api_text = scrape(f"{stack.api_url}/metrics")
    assert value(api_text, "dpp_money_usd_micros_total", kind="reserve") >= run.reserved_micros

    Run.objects.filter(id=run.id).update(actual_cost_micros=1)
    with publishing_to(
        broker_url="filesystem://",
        transport_options={
            "control_folder": str(stack.broker_dir / "control"),
            "data_folder_in": str(stack.broker_dir / "queue"),
            "data_folder_out": str(stack.broker_dir / "queue"),
            "processed_folder": str(stack.broker_dir / "processed"),
        },
    ) as app:
        app.send_task("reaper.audit_ledger")
    audited = wait_for_metric(stack.worker_metrics_url, "dpp_audit_required_total", 1)
    critical = {"severity": "CRITICAL", "reconcile_type": "no_receipt_audit"}
    assert value(audited, "log_entries_total", **critical) == 1
    # Beat's record_gauges ticks ran in this worker (it consumes the reaper queue).
    assert samples(audited, "dpp_queue_depth", queue="runs")

    # --- one trace: client -> API server span -> publish -> worker execute -------------
    def complete(spans) -> bool:
        names = {(s.service, s.name) for s in spans if s.trace_id == client_trace}
        return {("dpp-api", "apply_async/runs.execute_run"), ("dpp-worker", EXECUTE)} <= names

    in_trace = [s for s in stack.collector.wait_for(complete) if s.trace_id == client_trace]
    (server,) = [s for s in in_trace if s.kind == "SERVER"]
    (publish,) = [s for s in in_trace if s.name == "apply_async/runs.execute_run"]
    (execute,) = [s for s in in_trace if s.name == EXECUTE]
    assert (server.service, publish.service, execute.service) == (
        "dpp-api",
        "dpp-api",
        "dpp-worker",
    )
    assert server.parent_span_id == client_span
    assert server.attributes["dpp.request_id"] == request_id
    assert execute.parent_span_id == publish.span_id
    assert execute.attributes["dpp.run_id"] == run_id

    # --- log lines: the API's and the worker's for this run carry the client's trace --
    api_lines = [line for line in stack.api.json_lines() if line.get("request_id") == request_id]
    (access,) = [line for line in api_lines if line["logger"] == "dpp.access"]
    assert (access["trace_id"], access["span_id"]) == (client_trace, server.span_id)
    assert access["run_id"] == run_id
    assert access["budget_decision"] == "reserved"
    run_lines = [line for line in stack.worker.json_lines() if line.get("run_id") == run_id]
    # The reaper's lines about the run (the audit's alert) are in the audit task's trace.
    reaper_lines = [line for line in run_lines if line["logger"].startswith("reaper.")]
    worker_lines = [line for line in run_lines if line not in reaper_lines]
    (alert,) = reaper_lines
    assert (alert["level"], alert["reconcile_type"]) == ("CRITICAL", "no_receipt_audit")
    assert alert["tenant_id"] == str(funded_account.tenant_id)
    assert alert["trace_id"] != client_trace
    assert {line["logger"] for line in worker_lines} >= {
        "celery.app.trace",  # "Task runs.execute_run[...] succeeded in ..."
        "runs.lifecycle",  # "run finalized"
    }
    for line in worker_lines:
        assert (line["trace_id"], line["span_id"]) == (client_trace, execute.span_id), line
        assert line["tenant_id"] == str(funded_account.tenant_id), line
    # Every worker line written inside a run's span names its run (and vice versa).
    for line in stack.worker.json_lines():
        if line.get("trace_id") == client_trace:
            assert line["run_id"] == run_id, line


EXECUTE = "run/runs.execute_run"


def wait_for_metric(url: str, name: str, expected: float, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(url)
        if value(text, name) == expected or time.monotonic() > deadline:
            assert value(text, name) == expected
            return text
        time.sleep(0.2)


def test_beats_ticks_are_traced_into_the_worker(stack: Stack):
    def ticked(spans) -> bool:
        published = {s.trace_id for s in spans if s.service == "dpp-reaper"}
        return any(
            s.service == "dpp-worker"
            and s.name == "run/reaper.record_gauges"
            and s.trace_id in published
            for s in spans
        )

    spans = stack.collector.wait_for(ticked)
    (trace_id, *_) = [
        s.trace_id
        for s in spans
        if s.name == "run/reaper.record_gauges"
        and s.service == "dpp-worker"
        and s.trace_id in {p.trace_id for p in spans if p.service == "dpp-reaper"}
    ]
    (publish,) = [s for s in spans if s.trace_id == trace_id and s.service == "dpp-reaper"]
    assert publish.name == "apply_async/reaper.record_gauges"
    assert publish.kind == "PRODUCER"


# Printed by Celery straight to the terminal, not through logging: a warm shutdown's
# notice (worker), and beat's start-up banner unless it runs with --quiet.
KNOWN_NON_JSON = {
    "worker": ("worker: Warm shutdown (MainProcess)", ""),  # an empty line, then the notice
    "beat": (
        "celery beat v",
        "__    -    ... __   -        _",
        "LocalTime -> ",
        "Configuration ->",
        "    . broker -> ",
        "    . loader -> ",
        "    . scheduler -> ",
        "    . db -> ",
        "    . logfile -> ",
        "    . maxinterval -> ",
        "",
    ),
    "api": (),
}


def test_stdout_is_json_lines_only(stack: Stack):
    """Last in the module: stops the processes to see their shutdown output as well."""
    for process in (stack.beat, stack.api, stack.worker):
        process.stop()
    for process in (stack.api, stack.worker, stack.beat):
        lines = process.json_lines()
        assert lines, process.name
        for line in lines:
            assert set(line) >= {"timestamp", "level", "logger", "message"}, line
            if "run_id" in line and line["logger"] != "celery.worker.strategy":
                assert "trace_id" in line, line
        others = process.other_stdout_lines()
        unexpected = [line for line in others if not line.startswith(KNOWN_NON_JSON[process.name])]
        assert not unexpected, (process.name, unexpected)
