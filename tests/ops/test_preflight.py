"""``manage.py dpp_preflight`` (issue 9, item 6): the machine-checkable pilot entry
criteria. It fails, readably, on the embedded default and passes on a production-shaped
configuration: DJANGO_ENV=production, strong secrets, the migrated PostgreSQL test
database, Redis, SQS (moto) and S3 (SeaweedFS), in a fresh process as a deployment is."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from dpp import health
from dpp.kill_switch import submissions_pause
from reaper import preflight
from reaper.preflight import FAIL, PASS, Options, run_preflight
from tests.e2e.stack import database_url
from tests.external import S3Server, SqsServer

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "docker" / "prometheus" / "alerts.yml"
DEVELOPMENT_VALUE = "the development value (not set)"
STRONG = "Zr8w2-k3y-x7Qp9-" * 3  # a throwaway value of production length # pragma: allowlist secret


def preflight_process(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """``manage.py dpp_preflight`` in a clean environment: only what is passed is set."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DPP_VAR_DIR": str(tmp_path / "var"),
        **variables,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "dpp_preflight", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(table: str) -> dict[str, tuple[str, str]]:
    """{check: (status, detail)} from the printed table."""
    lines = table.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"]
    status_at = lines[0].index("STATUS")
    found = {}
    for line in lines[2:]:
        if not line.strip():
            break
        status, _, detail = line[status_at:].partition("  ")
        found[line[:status_at].strip()] = (status.strip(), detail.strip())
    return found


def outcomes(**options) -> dict[str, tuple[str, str]]:
    return {
        o.check: (o.status, o.detail)
        for o in run_preflight(Options(alert_rules=options.get("alert_rules", ALERTS)))
    }


def test_the_embedded_default_fails_with_a_readable_table(tmp_path):
    result = preflight_process(tmp_path)

    assert result.returncode == 1, result.stderr
    table = rows(result.stdout)
    for check, detail in {
        "DJANGO_ENV=production": "DJANGO_ENV=development",
        "DEBUG off": "DEBUG=True",
        "secret DJANGO_SECRET_KEY": DEVELOPMENT_VALUE,
        "secret DPP_API_KEY_PEPPER": DEVELOPMENT_VALUE,
        "DJANGO_ALLOWED_HOSTS": "*",
        "backend database is PostgreSQL": "sqlite",
        "backend cache is Redis": "LocMemCache",
        "backend broker is SQS": "filesystem://",
        "backend storage is S3": "FileSystemStorage",
        "migrations applied": "unapplied (manage.py migrate)",
    }.items():
        status, shown = table[check]
        assert status == FAIL, check
        assert detail in shown, (check, shown)
    # The embedded backends themselves answer: they are just not the pilot's.
    for check in ("reachable database", "reachable cache", "reachable broker", "alert rules"):
        assert table[check][0] == PASS, (check, table[check])
    assert result.stdout.rstrip().endswith("checks failed")
    assert settings.DEV_SECRET_KEY not in result.stdout
    assert settings.DEV_API_KEY_PEPPER not in result.stdout


def test_json_output_is_one_document_with_every_check(tmp_path):
    result = preflight_process(tmp_path, "--json")

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert {c["status"] for c in document["checks"]} == {PASS, FAIL}
    assert all(set(c) == {"check", "status", "detail"} for c in document["checks"])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_production_shaped_configuration_passes(
    tmp_path, s3_server: S3Server, sqs_server: SqsServer
):
    get_user_model().objects.create_superuser("oncall", "oncall@example.com", STRONG)
    production = {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "s3cret-" + STRONG,  # pragma: allowlist secret
        "DPP_API_KEY_PEPPER": "pepper-" + STRONG,  # pragma: allowlist secret
        "DJANGO_ALLOWED_HOSTS": "api.dpp.example.com",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL or "redis://127.0.0.1:6379/0",
        **s3_server.env(),
        **sqs_server.env(),
    }

    result = preflight_process(tmp_path, **production)

    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert {status for status, _ in table.values()} == {PASS}, table
    assert table["backend broker is SQS"][1] == "sqs://; queue URLs set"
    assert table["backend storage is S3"][1] == f"bucket {s3_server.bucket}"
    assert table["superuser passwords"][1] == "1 superuser(s), none with a default"
    assert table["kill switch"][1] == "submissions open"
    for check in ("database", "cache", "broker", "storage"):
        assert table[f"reachable {check}"][0] == PASS
    assert result.stdout.rstrip().endswith(f"preflight passed: all {len(table)} checks")
    assert STRONG not in result.stdout


@pytest.mark.django_db
def test_a_superuser_with_a_default_password_fails(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed
    users = get_user_model().objects
    users.create_superuser("admin", "admin@example.com", "admin")  # pragma: allowlist secret
    users.create_superuser("ops", "ops@example.com", "changeme")  # pragma: allowlist secret
    users.create_superuser("kim", "kim@example.com", "kim")  # its own username
    users.create_superuser("sso", "sso@example.com", None)  # unusable: fine
    users.create_superuser("lee", "lee@example.com", STRONG)
    users.create_user("guest", "guest@example.com", "password")  # pragma: allowlist secret

    status, detail = outcomes()["superuser passwords"]

    assert status == FAIL
    assert "admin, kim, ops" in detail
    assert "guest" not in detail
    assert "changeme" not in detail


@pytest.mark.django_db
def test_superusers_with_strong_or_unusable_passwords_pass(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_user_model().objects.create_superuser("sso", "sso@example.com", None)
    get_user_model().objects.create_superuser("lee", "lee@example.com", STRONG)

    assert outcomes()["superuser passwords"] == (PASS, "2 superuser(s), none with a default")


@pytest.mark.django_db
def test_the_kill_switch_state_is_reported(settings):
    submissions_pause(actor="oncall", reason="db maintenance")
    settings.DPP_SUBMISSIONS_PAUSED = True

    status, detail = outcomes()["kill switch"]

    assert status == PASS
    assert detail.startswith("PAUSED by DPP_SUBMISSIONS_PAUSED; PAUSED by oncall at ")
    assert detail.endswith(": db maintenance")


@pytest.mark.django_db
def test_alert_rules_must_exist_and_hold_the_pilot_alerts(tmp_path):
    partial = tmp_path / "alerts.yml"
    partial.write_text("groups:\n- name: x\n  rules:\n  - alert: MoneyLeak\n    expr: vector(1)\n")

    assert outcomes()["alert rules"][0] == PASS
    assert outcomes(alert_rules=tmp_path / "missing.yml")["alert rules"][0] == FAIL
    status, detail = outcomes(alert_rules=partial)["alert rules"]
    assert status == FAIL
    assert "missing ApiDown, DatabaseNotReady" in detail


@pytest.mark.django_db
def test_alert_rules_can_come_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(ALERTS.read_text()))

    status, detail = outcomes(alert_rules=None)["alert rules"]
    assert (status, detail.split(":")[0]) == (PASS, "stdin")


@pytest.mark.django_db
def test_a_dependency_that_fails_is_a_fail_row_with_its_error(monkeypatch):
    def broken() -> None:
        raise ConnectionRefusedError("broker at 10.0.0.9:443 refused")

    monkeypatch.setitem(health.CHECKS, "broker", broken)

    status, detail = outcomes()["reachable broker"]

    assert status == FAIL
    assert detail == "ConnectionRefusedError: broker at 10.0.0.9:443 refused"


@pytest.mark.django_db
def test_a_check_that_raises_is_a_fail_row_not_a_crash(monkeypatch):
    def explode(options):
        raise RuntimeError("audit query timed out")

    monkeypatch.setattr(
        preflight,
        "CHECKS",
        tuple(
            (name, explode if name == "ledger audit" else check) for name, check in preflight.CHECKS
        ),
    )

    assert outcomes()["ledger audit"] == (FAIL, "RuntimeError: audit query timed out")


@pytest.mark.django_db
def test_the_command_exits_non_zero_when_a_check_fails(capsys):
    with pytest.raises(SystemExit) as exit_:
        call_command("dpp_preflight", "--json")

    assert exit_.value.code == 1
    document = json.loads(capsys.readouterr().out)
    checks = {c["check"]: c["status"] for c in document["checks"]}
    assert checks["migrations applied"] == PASS  # the test database is migrated
    assert checks["DJANGO_ENV=production"] == FAIL
