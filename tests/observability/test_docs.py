"""docs/observability.md keeps up with the code: every exported metric, every alert rule
and every log field is described, and its links lead somewhere."""

import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from dpp import metrics
from tests.observability.helpers import DESIGN_METRICS, families

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "observability.md"
ALERTS = REPO / "docker" / "prometheus" / "alerts.yml"
LOG_FIELDS = (
    # docs/design.md §5, every line and the access log
    *("timestamp", "level", "logger", "message", "request_id", "trace_id", "span_id"),
    *("tenant_id", "run_id", "method", "path", "status_code", "duration_ms", "plan"),
    *("budget_decision", "task_id", "exc_info", "reconcile_type"),
)


def test_every_exported_metric_is_described():
    text = DOC.read_text()
    exported = families(generate_latest(metrics.registry()).decode())
    own = set()
    for family in metrics.declared_families():
        assert family.name in exported
        own.add(family.name + ("_total" if family.type == "counter" else ""))
    assert set(DESIGN_METRICS) <= own
    undocumented = {name for name in own if f"`{name}`" not in text}
    assert not undocumented


def test_every_alert_is_described_with_its_runbook():
    text = DOC.read_text()
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        assert f"`{rule['alert']}`" in text, rule["alert"]
        runbook = rule["annotations"]["runbook_url"].removeprefix("docs/")
        assert runbook in text, rule["alert"]


def test_every_log_field_is_described():
    text = DOC.read_text()
    assert not [field for field in LOG_FIELDS if f"`{field}`" not in text]


def test_relative_links_resolve():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", DOC.read_text()):
        assert (DOC.parent / target).exists(), target
