"""DJANGO_ENV=production refuses to start without real backends and secrets (docs/design.md §6).

Each case starts Django in a fresh process with a clean environment, as a deployment would.
"""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.settings import DEV_API_KEY_PEPPER, DEV_SECRET_KEY

SETUP = [sys.executable, "-c", "import django; django.setup()"]

PRODUCTION = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": "k3y-" + "x7Qp9" * 10,  # pragma: allowlist secret
    "DPP_API_KEY_PEPPER": "p3pper-" + "Zr8w2" * 8,  # pragma: allowlist secret
    "DATABASE_URL": "postgres://dpp:secret@db.internal:5432/dpp",  # pragma: allowlist secret
    "REDIS_URL": "redis://cache.internal:6379/0",
    "CELERY_BROKER_URL": "sqs://",
    "DPP_SQS_RUNS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dpp-runs",
    "DPP_SQS_REAPER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dpp-reaper",
    "AWS_STORAGE_BUCKET_NAME": "dpp-results",
    "DJANGO_ALLOWED_HOSTS": "api.example.com",
}


def _run(command: list[str], tmp_path, **variables: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DPP_VAR_DIR": str(tmp_path / "var"),
        **variables,
    }
    return subprocess.run(
        command,
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_with_nothing_set_refuses_to_start_and_names_what_is_missing(tmp_path):
    result = _run(SETUP, tmp_path, DJANGO_ENV="production")
    assert result.returncode != 0
    for name in ("DJANGO_SECRET_KEY", "DPP_API_KEY_PEPPER", "DATABASE_URL", "REDIS_URL"):
        assert name in result.stderr


def test_production_refuses_the_development_secrets(tmp_path):
    dev_secrets = {"DJANGO_SECRET_KEY": DEV_SECRET_KEY, "DPP_API_KEY_PEPPER": DEV_API_KEY_PEPPER}
    result = _run(SETUP, tmp_path, **{**PRODUCTION, **dev_secrets})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "DPP_API_KEY_PEPPER" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "sqlite:////tmp/dpp.sqlite3"),
        ("CELERY_BROKER_URL", "filesystem://"),
        ("DJANGO_SECRET_KEY", "short"),
    ],
)
def test_production_refuses_an_embedded_default_or_weak_value(tmp_path, name, value):
    result = _run(SETUP, tmp_path, **{**PRODUCTION, name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_production_refuses_debug(tmp_path):
    result = _run(SETUP, tmp_path, **PRODUCTION, DJANGO_DEBUG="true")
    assert result.returncode != 0
    assert "DJANGO_DEBUG" in result.stderr


def test_production_with_everything_set_passes_the_deploy_check_cleanly(tmp_path):
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = _run(command, tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
