"""Alert rules and dashboard (issue 8, item 4): docker/prometheus and docker/grafana.

``promtool`` (Debian package ``prometheus``: `apt-get install prometheus`) checks the rules
and runs their unit tests (docker/prometheus/alerts.test.yml); a missing promtool fails.
Rules and panels may only query metric names the app exports (``EXPORTED_METRICS``), and
every dashboard query must parse as PromQL (promtool checks them as recording rules, with
Grafana's $__rate_interval / $__range replaced by durations).
"""

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.deploy.deploy_tools import (
    EXPORTED_METRICS,
    GRAFANA,
    PROMETHEUS,
    REPO,
    metric_names,
    run,
    tool,
)

ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
DASHBOARD = GRAFANA / "dpp.json"
PILOT_ALERTS = {
    # the pilot document's "Monitoring & Alerts" (+ its p95 latency kill-switch trigger)
    "MoneyLeak": "critical",
    "ApiDown": "critical",
    "DatabaseNotReady": "critical",
    "HighQueueDepth": "warning",
    "ElevatedErrorRate": "warning",
    "WorkerHeartbeatMissing": "warning",
    "ApiLatencyP95": "warning",
}
ROWS = ("System health", "Money flow", "Worker", "Reaper")


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


# --- promtool -------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    result = run([tool("promtool"), "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = run([tool("promtool"), "test", "rules", str(ALERT_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The harness is live: a wrong expectation is reported as a failure."""
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "wrong.test.yml").write_text(
        "rule_files: [alerts.yml]\nevaluation_interval: 1m\ntests:\n"
        "  - interval: 1m\n    input_series:\n"
        "      - series: 'up{job=\"dpp-api\",instance=\"a\"}'\n        values: '1 1 1 1 1'\n"
        "    alert_rule_test:\n      - eval_time: 4m\n        alertname: ApiDown\n"
        "        exp_alerts: [{exp_labels: {severity: critical, instance: a, job: dpp-api}}]\n"
    )
    result = run([tool("promtool"), "test", "rules", "wrong.test.yml"], cwd=tmp_path)
    assert result.returncode != 0


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml")))
    result = run([tool("promtool"), "check", "config", str(local)])
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {c["job_name"] for c in yaml.safe_load(config)["scrape_configs"]}
    assert jobs == {"dpp-api", "dpp-worker", "dpp-reaper"}


# --- the rules' content -----------------------------------------------------------------------


def test_pilot_alerts_exist_with_severity() -> None:
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in rules()}
    for alert, severity in PILOT_ALERTS.items():
        assert severities.get(alert) == severity, alert
    assert set(severities.values()) <= {"critical", "warning"}


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower-case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_alert_is_documented_and_has_a_runbook() -> None:
    for rule in rules():
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert len(annotations["description"]) > 40, rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert re.fullmatch(r"docs/runbooks/[\w-]+\.md", path), rule["alert"]
        runbook = REPO / path
        assert runbook.exists(), f"{rule['alert']}: {path} missing"
        if anchor:
            assert anchor in _anchors(runbook.read_text()), f"{rule['alert']}: #{anchor}"


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    outcomes = defaultdict(set)
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            outcomes[check["alertname"]].add(bool(check.get("exp_alerts")))
    for rule in rules():
        assert outcomes[rule["alert"]] == {True, False}, rule["alert"]


def test_rules_query_only_exported_metrics() -> None:
    for rule in rules():
        assert metric_names(rule["expr"]) <= EXPORTED_METRICS, rule["alert"]
    queue = next(r for r in rules() if r["alert"] == "HighQueueDepth")["expr"]
    assert 'dpp_queue_depth{queue="runs"}' in queue, "docs/design.md's name, not sqs_queue_depth"


# --- the dashboard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _grouped(dashboard: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    current = None
    for panel in sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if panel["type"] == "row":
            current = panel["title"]
            groups[current] = list(panel.get("panels", []))
        else:
            assert current is not None, f"panel {panel['title']} above the first row"
            groups[current].append(panel)
    return groups


def _queries(dashboard: dict) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panels in _grouped(dashboard).values()
        for panel in panels
        for target in panel.get("targets", [])
    ]


def test_dashboard_structure(dashboard: dict) -> None:
    assert dashboard["uid"]
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    groups = _grouped(dashboard)
    assert tuple(groups) == ROWS
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for title, panels in groups.items():
        assert panels, f"row {title} is empty"
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] >= 0, panel["title"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_dashboard_panels_do_not_overlap(dashboard: dict) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for y in range(grid["y"], grid["y"] + grid["h"]):
            for x in range(grid["x"], grid["x"] + grid["w"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_covers_the_pilot_requirements(dashboard: dict) -> None:
    groups = _grouped(dashboard)
    used = {
        row: set().union(*(metric_names(t["expr"]) for p in panels for t in p["targets"]))
        for row, panels in groups.items()
    }
    assert {
        "up",
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "django_http_responses_total_by_status_view_method_total",
    } <= used["System health"]
    assert {"dpp_money_usd_micros_total", "dpp_audit_required_total"} <= used["Money flow"]
    assert {
        "dpp_queue_depth",
        "dpp_runs_total",
        "dpp_run_duration_seconds_bucket",
        "dpp_worker_last_heartbeat_timestamp",
    } <= used["Worker"]
    assert {"dpp_reaper_scans_total", "dpp_reaper_actions_total"} <= used["Reaper"]
    latency = " ".join(
        t["expr"] for p in groups["System health"] for t in p["targets"] if "latency" in t["expr"]
    )
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in latency


def test_dashboard_queries_only_exported_metrics(dashboard: dict) -> None:
    for title, expr in _queries(dashboard):
        assert metric_names(expr) <= EXPORTED_METRICS, (title, metric_names(expr))


def test_dashboard_queries_are_valid_promql(dashboard: dict, tmp_path: Path) -> None:
    rules_file = tmp_path / "dashboard-queries.yml"
    recording = [
        {
            "record": f"dashboard:query_{i}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$__range", "6h"),
        }
        for i, (_, expr) in enumerate(_queries(dashboard))
    ]
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dpp", "rules": recording}]}))
    result = run([tool("promtool"), "check", "rules", str(rules_file)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_scanner() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{view!~"x|y"}[$__rate_interval])))'
        ' / 1e6 or on () absent(b{job="c"}) and time() - c offset 5m'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}
