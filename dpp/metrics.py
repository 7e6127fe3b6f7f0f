"""The platform's Prometheus metrics (docs/design.md §5), defined once for every process.

Under gunicorn or Celery's prefork pool several processes share one set of metrics:
``PROMETHEUS_MULTIPROC_DIR`` (one directory per process group, emptied at start) makes
prometheus_client aggregate them, and every gauge below says how to combine processes.

Every process's ``/metrics`` declares every family below (and django-prometheus' request
families), with samples only for what that process has measured: a family nobody in the
process group has touched yet is still listed, empty, so dashboards and alert rules find
the name on every target. docs/observability.md says which process fills which metric.
"""

import logging
import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus_client writes a file per process there from the first metric on.
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered by the API", ["method", "status"])
RUNS = Counter("dpp_runs", "Runs reaching a state", ["pack_type", "status"])
RUN_DURATION = Histogram(
    "dpp_run_duration_seconds",
    "Seconds from claim to finalize",
    ["pack_type", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90, 120),
)
MONEY = Counter("dpp_money_usd_micros", "Micro-USD moved by the ledger", ["kind"])
# The ledger's transfer kinds (billing.models.Transfer.Kind, lower-cased): counted from 0 so
# that rate() and increase() see the first transfer of each kind.
MONEY_KINDS = ("topup", "reserve", "settle", "void", "adjust")
for _kind in MONEY_KINDS:
    MONEY.labels(kind=_kind)
READYZ_DATABASE = Gauge(
    "dpp_readyz_database_status",
    "1 if the last readiness check reached the database, else 0",
    multiprocess_mode="mostrecent",
)
WORKER_HEARTBEAT = Gauge(
    "dpp_worker_last_heartbeat_timestamp",
    "Unix time of the last lease heartbeat or claim",
    multiprocess_mode="max",
)
QUEUE_DEPTH = Gauge(
    "dpp_queue_depth", "Messages waiting in the broker", ["queue"], multiprocess_mode="mostrecent"
)
RUNS_BY_STATE = Gauge(
    "dpp_runs_by_state",
    "Runs per status and money state",
    ["status", "money_state"],
    multiprocess_mode="mostrecent",
)
AUDIT_REQUIRED = Counter("dpp_audit_required", "Runs flagged AUDIT_REQUIRED")
LOG_ENTRIES = Counter("log_entries", "Log records by severity", ["severity", "reconcile_type"])
# The money-leak alert takes increase() of this series: it must exist before its first hit.
LOG_ENTRIES.labels(severity="CRITICAL", reconcile_type="no_receipt_audit")
REAPER_SCANS = Counter("dpp_reaper_scans", "Reaper scans run", ["scan"])
REAPER_ACTIONS = Counter("dpp_reaper_actions", "Reaper actions taken", ["scan", "action"])


# django-prometheus' request families, created by its middleware in the API only; declared
# everywhere so that every target lists every §5 name (the API fills them).
_DJANGO_FAMILIES = (
    Metric(
        "django_http_requests_latency_seconds_by_view_method",
        "Histogram of request processing time labelled by view.",
        "histogram",
    ),
    Metric(
        "django_http_requests_latency_including_middlewares_seconds",
        "Histogram of requests processing time (including middleware processing time).",
        "histogram",
    ),
    Metric(
        "django_http_responses_total_by_status_view_method",
        "Count of responses by status, view, method.",
        "counter",
    ),
)
_OWN = (
    HTTP_REQUESTS,
    RUNS,
    RUN_DURATION,
    MONEY,
    READYZ_DATABASE,
    WORKER_HEARTBEAT,
    QUEUE_DEPTH,
    RUNS_BY_STATE,
    AUDIT_REQUIRED,
    LOG_ENTRIES,
    REAPER_SCANS,
    REAPER_ACTIONS,
)


def initialize(pack_types: list[str] | tuple[str, ...] = ()) -> None:
    """At process start: count every run outcome of every pack from 0, like MONEY_KINDS."""
    for pack_type in pack_types:
        for status in ("COMPLETED", "FAILED", "CANCELED"):
            RUNS.labels(pack_type=pack_type, status=status)


class LogCounterHandler(logging.Handler):
    """Counts every log record; the money-leak alert watches the CRITICAL audit lines."""

    def emit(self, record: logging.LogRecord) -> None:
        LOG_ENTRIES.labels(
            severity=record.levelname, reconcile_type=getattr(record, "reconcile_type", "")
        ).inc()


def declared_families() -> list[Metric]:
    """The families every process lists (empty): DPP's own and django-prometheus'."""
    return [*(family for metric in _OWN for family in metric.describe()), *_DJANGO_FAMILIES]


class _EveryFamily(Collector):
    """What ``source`` collects, plus an empty family for each declared metric it lacks.

    In multiprocess mode prometheus_client lists only metrics some process has written a
    sample for; this keeps the exposition the same as a single process's, where every
    defined family is listed whether or not it has samples.
    """

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self):
        seen = set()
        for family in self._source.collect():
            seen.add(family.name)
            yield family
        for family in declared_families():
            if family.name not in seen:
                seen.add(family.name)
                yield Metric(family.name, family.documentation, family.type)


def registry() -> CollectorRegistry:
    """The registry to expose: every process of the group in multiprocess mode, and every
    declared family in either mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        source: Collector = multiprocess.MultiProcessCollector(None)
    else:
        source = REGISTRY
    collected = CollectorRegistry(auto_describe=False)
    collected.register(_EveryFamily(source))
    return collected


def export(request):
    """The API's ``/metrics`` view (config/urls.py)."""
    from django.http import HttpResponse

    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def reset_multiprocess_dir() -> None:
    """Called once by a process group's parent before it forks: stale files would count.

    The caller's own files stay: it has already imported this module (its metrics are
    open in them), and deleting them would lose what it counts from now on.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    path = Path(folder)
    if path.is_dir():
        own = f"_{os.getpid()}.db"
        for stale in path.iterdir():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            elif not stale.name.endswith(own):
                stale.unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)


def serve(port: int) -> None:
    """The worker's and beat's own /metrics port (``DPP_METRICS_PORT``)."""
    start_http_server(port, registry=registry())
    logger.info("metrics served", extra={"port": port})
