"""docker/compose.yml (issue 9, item 2).

Validator: ``docker-compose config`` from Debian's ``docker-compose`` package (1.29.2, the
Docker project's Python implementation; `apt-get install docker-compose`). It validates the
file against the Compose Specification JSON schema it bundles
(``compose/config/compose_spec.json``), resolves ``${VAR:?}`` interpolation, extension
fields and merge keys, and checks references between services — all offline, no engine
needed. The resolved configuration it prints is then checked against docs/design.md §6 here.
The one-shot ``aws-init`` script runs for real against a local moto server.
"""

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
import yaml

from tests.deploy.deploy_tools import DOCKER, run, tool

COMPOSE = DOCKER / "compose.yml"
SECRETS = {
    "DJANGO_SECRET_KEY": (
        "compose-test-secret-key-0123456789abcdefghijklmnop"  # pragma: allowlist secret
    ),
    "DPP_API_KEY_PEPPER": (
        "compose-test-pepper-0123456789abcdefghijklmnopqrs"  # pragma: allowlist secret
    ),
    "POSTGRES_PASSWORD": "compose-test-db-password",  # pragma: allowlist secret
    "AWS_ACCESS_KEY_ID": "compose-test-access-key",
    "AWS_SECRET_ACCESS_KEY": "compose-test-secret-access-key",  # pragma: allowlist secret
}
# docs/design.md §6: the variables that choose each backend, plus production's secrets.
DESIGN_ENV = {
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DPP_SQS_RUNS_QUEUE_URL",
    "DPP_SQS_REAPER_QUEUE_URL",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "DJANGO_ENV",
    "DJANGO_SECRET_KEY",
    "DPP_API_KEY_PEPPER",
}
APP_SERVICES = ("api", "worker", "reaper")
ONE_SHOTS = ("migrate", "aws-init")


def compose(*args: str, env: dict[str, str] | None = None, file: Path = COMPOSE):
    # Only the variables given: no docker/.env or developer shell leaks into the check.
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return run(
        [tool("docker-compose"), "--project-directory", str(file.parent), "-f", str(file), *args],
        env=environ,
    )


@pytest.fixture(scope="module")
def resolved() -> dict:
    result = compose("config", env=SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid() -> None:
    result = compose("config", "--quiet", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_validator_rejects_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text(
        "services:\n  api:\n    image: dpp\n    healthcheck:\n      test: [CMD, true]\n"
        "      interval: soon\n    depends_on:\n      db:\n        condition: service_ready\n"
    )
    result = compose("config", "--quiet", file=bad)
    assert result.returncode != 0


def test_secrets_are_required_not_written() -> None:
    def without(name: str):
        return compose("config", "--quiet", env={k: v for k, v in SECRETS.items() if k != name})

    # Compose itself refuses to start without the two application secrets (the text
    # check below covers every secret's ${VAR:?} form).
    required = ("DJANGO_SECRET_KEY", "DPP_API_KEY_PEPPER")
    with ThreadPoolExecutor(max_workers=len(required)) as pool:
        results = dict(zip(required, pool.map(without, required), strict=True))
    for name, result in results.items():
        assert result.returncode != 0, name
        assert name in result.stderr, name
    text = COMPOSE.read_text()
    for name in SECRETS:
        for value in re.findall(rf"^\s*{name}:\s*(.+)$", text, flags=re.MULTILINE):
            assert value.startswith(f"${{{name}:?"), f"{name} must be ${{{name}:?…}}: {value}"
    example = (DOCKER / "env.example").read_text()
    for name in SECRETS:
        assert re.search(rf"^{name}=$", example, flags=re.MULTILINE), f"{name} is blank"


def test_services_health_checks_and_order(resolved: dict) -> None:
    services = resolved["services"]
    assert {"postgres", "redis", "sqs", "s3", *ONE_SHOTS, *APP_SERVICES} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    for name, service in services.items():
        if name in ONE_SHOTS:
            # docker-compose 1.x prints `disable: true` as its Docker form, test: [NONE].
            assert service["healthcheck"] in ({"disable": True}, {"test": ["NONE"]}), name
            assert service["restart"] == "no", name
        else:
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    migrate_deps = services["migrate"]["depends_on"]
    assert migrate_deps["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["migrate"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["command"] == [name]
        deps = service["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["aws-init"]["condition"] == "service_completed_successfully"
        for backend in ("postgres", "redis", "sqs", "s3"):
            assert deps[backend]["condition"] == "service_healthy"
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "/readyz" in api_check
    # The longest timebox is 90 s: a worker stopping must have time to finish its run.
    assert _seconds(services["worker"]["stop_grace_period"]) >= 120
    assert "deploy" not in services["reaper"]
    assert "scale" not in services["reaper"]


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match, duration
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_environment_is_design_section_6(resolved: dict) -> None:
    services = resolved["services"]
    for name in (*APP_SERVICES, "migrate"):
        env = services[name]["environment"]
        assert set(env) >= DESIGN_ENV, (name, DESIGN_ENV - set(env))
        assert env["DJANGO_ENV"] == "production"
        assert env["CELERY_BROKER_URL"].startswith("sqs://")
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")
        assert env["DJANGO_SECRET_KEY"] == SECRETS["DJANGO_SECRET_KEY"]
        assert env["DPP_VAR_DIR"].startswith("/tmp/")
    worker = services["worker"]["environment"]
    assert worker["DPP_SQS_RUNS_QUEUE_URL"].endswith("/dpp-runs")
    assert worker["DPP_SQS_REAPER_QUEUE_URL"].endswith("/dpp-reaper")


def test_production_settings_accept_the_compose_environment(resolved: dict, tmp_path) -> None:
    """The settings' production guard (DJANGO_ENV=production) starts with this env."""
    env = {k: str(v) for k, v in resolved["services"]["api"]["environment"].items()}
    env.update(
        PATH=os.environ["PATH"],
        DJANGO_SETTINGS_MODULE="config.settings",
        DPP_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),  # the entrypoint creates it
    )
    check = (
        "import django; from django.conf import settings; django.setup(); "
        "assert not settings.DEBUG; assert settings.PRODUCTION; "
        "print(settings.DATABASES['default']['ENGINE'])"
    )
    result = run([sys.executable, "-c", check], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.postgresql"


# --- aws-init against a real SQS/S3 API (moto) ---------------------------------------------


@pytest.fixture
def moto(tmp_path: Path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "moto.log").open("w")
    process = subprocess.Popen(
        [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()}")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_aws_init_creates_queues_and_bucket_idempotently(resolved: dict, moto: str) -> None:
    compose_env = resolved["services"]["aws-init"]["environment"]
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",  # pragma: allowlist secret
        "AWS_DEFAULT_REGION": "us-east-1",
        "DPP_LEASE_TTL_SEC": compose_env["DPP_LEASE_TTL_SEC"],
        "AWS_STORAGE_BUCKET_NAME": compose_env["AWS_STORAGE_BUCKET_NAME"],
        "AWS_S3_ENDPOINT_URL": moto,
        # The compose URLs, re-pointed at this moto.
        "DPP_SQS_RUNS_QUEUE_URL": re.sub(
            r"^http://[^/]+", moto, compose_env["DPP_SQS_RUNS_QUEUE_URL"]
        ),
        "DPP_SQS_REAPER_QUEUE_URL": re.sub(
            r"^http://[^/]+", moto, compose_env["DPP_SQS_REAPER_QUEUE_URL"]
        ),
    }
    for _ in range(2):
        result = run([sys.executable, str(DOCKER / "compose-init-aws.py")], env=env)
        assert result.returncode == 0, result.stdout + result.stderr
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    sqs = session.client("sqs", endpoint_url=moto)
    lease = int(compose_env["DPP_LEASE_TTL_SEC"])
    for name in ("DPP_SQS_RUNS_QUEUE_URL", "DPP_SQS_REAPER_QUEUE_URL"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=env[name], AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        assert int(attributes["VisibilityTimeout"]) == 3 * lease > lease
    s3 = session.client("s3", endpoint_url=moto)
    s3.head_bucket(Bucket=env["AWS_STORAGE_BUCKET_NAME"])
