"""The platform's Prometheus metrics (DESIGN.md §5), defined once for every process.

Under gunicorn or Celery's prefork pool several processes share one set of metrics:
``PROMETHEUS_MULTIPROC_DIR`` (one directory per process group, emptied at start) makes
prometheus_client aggregate them, and every gauge below says how to combine processes.
"""

import logging
import os
import shutil
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

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


class LogCounterHandler(logging.Handler):
    """Counts every log record; the money-leak alert watches the CRITICAL audit lines."""

    def emit(self, record: logging.LogRecord) -> None:
        LOG_ENTRIES.labels(
            severity=record.levelname, reconcile_type=getattr(record, "reconcile_type", "")
        ).inc()


def registry() -> CollectorRegistry:
    """The registry to expose: every process of the group in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY


def reset_multiprocess_dir() -> None:
    """Called once by a process group's parent before it forks: stale files would count."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)


def serve(port: int) -> None:
    """The worker's and beat's own /metrics port (``DPP_METRICS_PORT``)."""
    start_http_server(port, registry=registry())
    logger.info("metrics served", extra={"port": port})
