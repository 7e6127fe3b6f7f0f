"""docs/deploy.md and the runbooks (issue 9, item 7): the commands an operator copies are
the exact ones, and every link between the documents resolves."""

from tests.deploy.deploy_tools import REPO, RUNBOOKS

DOCS = (REPO / "docs" / "deploy.md", RUNBOOKS / "rollback.md", RUNBOOKS / "scaling-workers.md")
APPS = ("dpp", "billing", "runs", "reaper")


def test_rollback_runbook_has_the_exact_commands() -> None:
    text = (RUNBOOKS / "rollback.md").read_text()
    for deployment in ("dpp-api", "dpp-worker", "dpp-reaper"):
        assert f"kubectl -n dpp rollout undo deployment/{deployment}" in text
        assert f"kubectl -n dpp rollout status deployment/{deployment}" in text
    assert "python manage.py migrate <app> <previous>" in text
    for app in APPS:
        assert f"manage migrate {app} <previous>" in text, app
    for heading in ("Level 1: API only", "Level 2: API and workers", "Level 3: with a migration"):
        assert f"## {heading}" in text
    assert text.count("< 5 min") >= 2, "time target of levels 1 and 2"
    assert "Verification checklist" in text
    assert "Decision authority" in text
    assert "Who runs it" in text


def test_scaling_runbook_names_the_worker_command_and_the_budgets() -> None:
    text = (RUNBOOKS / "scaling-workers.md").read_text()
    assert "celery -A config worker -Q runs --concurrency N" in text
    assert "KEDA" in text
    assert "## SQS visibility timeout and the lease" in text
    assert "## Database connection budget" in text


def test_deploy_guide_covers_both_platforms_in_order() -> None:
    text = (REPO / "docs" / "deploy.md").read_text()
    steps = [
        "kubectl apply -f docker/k8s/namespace.yaml",
        "kubectl apply -k docker/k8s/migrate",
        "kubectl -n dpp wait --for=condition=complete job/dpp-migrate",
        "kubectl apply -k docker/k8s\n",
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions), "secrets, migrate, then the processes"
    assert "docker compose -p dpp -f docker/compose.yml up -d --build" in text
    assert "aws secretsmanager create-secret" in text
