"""The API's /metrics in one process (the Django test client): every docs/design.md §5 name,
parsed by prometheus_client's own parser, and the values the platform's events move.

The multi-process views (gunicorn workers, the Celery worker's and beat's ports) are in
test_processes.py.
"""

import time
import uuid

import pytest

from dpp import health
from reaper import tasks as reaper_tasks
from runs import execution, publishing
from runs.models import Run
from tests.observability.helpers import DESIGN_METRICS, metric_names, samples, value


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


@pytest.mark.django_db
def test_api_metrics_name_every_design_metric_once(client, fs_broker, local_results):
    assert client.get("/readyz").status_code == 200
    text = scrape(client)

    assert set(DESIGN_METRICS) <= metric_names(text)
    for name in DESIGN_METRICS:
        family = name.removesuffix("_total")
        assert text.count(f"# TYPE {family} ") + text.count(f"# TYPE {family}_total ") == 1
    assert value(text, "dpp_readyz_database_status") == 1
    assert value(text, "http_requests_total", method="GET", status="200") >= 1
    assert (
        value(text, "django_http_requests_latency_seconds_by_view_method_count", view="readyz") >= 1
    )
    # Counters whose label values are known up front start at 0, so that the first
    # increase() or rate() sees the first event.
    kinds = [sample.labels["kind"] for sample in samples(text, "dpp_money_usd_micros_total")]
    assert sorted(kinds) == ["adjust", "reserve", "settle", "topup", "void"]
    assert samples(
        text, "log_entries_total", severity="CRITICAL", reconcile_type="no_receipt_audit"
    )


@pytest.mark.django_db
def test_a_failed_readiness_check_sets_the_database_status_to_0(
    client, fs_broker, local_results, monkeypatch
):
    def unreachable() -> None:
        raise ConnectionError("database unreachable")

    monkeypatch.setitem(health.CHECKS, "database", unreachable)
    assert client.get("/readyz").status_code == 503
    assert value(scrape(client), "dpp_readyz_database_status") == 0

    monkeypatch.undo()
    assert client.get("/readyz").status_code == 200
    assert value(scrape(client), "dpp_readyz_database_status") == 1


@pytest.mark.django_db(transaction=True)
def test_execution_and_an_audit_required_run_move_their_metrics(client, make_run, json_logs):
    before = scrape(client)
    started = time.time()
    run = make_run()
    execution.execute_run(run_id=run.id)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    executed = scrape(client)

    def delta(name, **labels):
        return value(executed, name, **labels) - value(before, name, **labels)

    assert delta("dpp_runs_total", pack_type="decision", status="COMPLETED") == 1
    assert delta("dpp_run_duration_seconds_count", pack_type="decision", status="COMPLETED") == 1
    assert delta("dpp_money_usd_micros_total", kind="reserve") == run.reserved_micros
    assert delta("dpp_money_usd_micros_total", kind="settle") == run.actual_cost_micros
    assert value(executed, "dpp_worker_last_heartbeat_timestamp") >= int(started)

    # Corrupt the run (its charge no longer matches its SETTLE), then the periodic audit.
    Run.objects.filter(id=run.id).update(actual_cost_micros=1)
    assert reaper_tasks.audit_ledger.apply().get() == {"flagged": 1}
    audited = scrape(client)

    assert (
        value(audited, "dpp_audit_required_total") - value(executed, "dpp_audit_required_total")
        == 1
    )
    critical = {"severity": "CRITICAL", "reconcile_type": "no_receipt_audit"}
    assert (
        value(audited, "log_entries_total", **critical)
        - value(executed, "log_entries_total", **critical)
        == 1
    )
    assert (
        value(audited, "dpp_reaper_scans_total", scan="audit_ledger")
        - value(executed, "dpp_reaper_scans_total", scan="audit_ledger")
        == 1
    )
    (alert,) = [line for line in json_logs.all() if line["level"] == "CRITICAL"]
    assert (alert["reconcile_type"], alert["run_id"]) == ("no_receipt_audit", str(run.id))
    assert alert["tenant_id"] == str(run.tenant_id)
    # The audit ran as a Celery task: its line carries the task's trace.
    assert alert["trace_id"]
    assert alert["task_id"]


@pytest.mark.django_db
def test_queue_depth_is_what_the_broker_holds(client, fs_broker):
    waiting = 5
    for _ in range(waiting):
        assert publishing.publish_run(run_id=uuid.uuid4())  # no worker consumes fs_broker here

    reaper_tasks.record_gauges.apply().get()

    text = scrape(client)
    assert value(text, "dpp_queue_depth", queue="runs") == waiting
    assert value(text, "dpp_queue_depth", queue="reaper") == 0
    assert len(list(fs_broker.iterdir())) == waiting
