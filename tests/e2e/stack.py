"""DPP's own processes against the emulators of tests/external.py, shared by the end-to-end
tests and the benchmark: the API (gunicorn) and Celery workers as subprocesses configured
only by environment variables, an HTTP client for the API, and polling helpers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

from celery import Celery
from celery._state import get_current_app

from runs.models import Run
from tests.execution.packs import TEST_PACKS
from tests.external import HOST, ManagedProcess, free_port, venv_binary
from tests.payloads import decision_inputs

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SEC = 60.0
WORKER_PROCESSES = 4  # of the SQS + S3 stack's worker: the 200-run proof runs on these
# Backends a process of the embedded default must not inherit from the caller's environment.
NON_EMBEDDED_VARIABLES = (
    "CELERY_BROKER_URL",
    "DPP_SQS_RUNS_QUEUE_URL",
    "DPP_SQS_REAPER_QUEUE_URL",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
)


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A DATABASE_URL for the PostgreSQL database ``settings_dict`` points at (e.g. the
    test database, so a subprocess sees the rows a transactional test commits)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or HOST
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def dpp_env(*, database: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """What a DPP subprocess needs besides the backends: its database, a private var/
    and the test packs (importable from the repository root)."""
    return {
        "DATABASE_URL": database,
        "DPP_VAR_DIR": str(var_dir),
        "PYTHONPATH": str(REPO_ROOT),
        "DPP_EXTRA_PACKS": json.dumps(TEST_PACKS),
        **extra,
    }


def _process(
    name: str, argv: list[str], *, env: Mapping[str, str], log_dir: Path, embedded: bool
) -> ManagedProcess:
    process = ManagedProcess(name, argv, log_dir=log_dir, env=env, cwd=REPO_ROOT)
    if embedded:
        for variable in NON_EMBEDDED_VARIABLES:
            process.env.pop(variable, None)
    return process


def start_worker(
    name: str,
    *,
    env: Mapping[str, str],
    log_dir: Path,
    concurrency: int,
    embedded: bool = False,
) -> ManagedProcess:
    """The operator's ``celery -A config worker -Q runs --concurrency N`` (prefork, the
    pool that runs tasks in the main thread, where the timebox alarm works), once it is
    consuming."""
    process = _process(
        name,
        [
            venv_binary("celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            "runs",
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{name}-{uuid.uuid4().hex[:8]}@%h",
        ],
        env=env,
        log_dir=log_dir,
        embedded=embedded,
    )
    return process.start(
        ready=lambda: process.log_path.exists() and " ready." in process.log_path.read_text(),
        timeout=START_TIMEOUT_SEC,
    )


def start_api(
    name: str, *, env: Mapping[str, str], log_dir: Path, embedded: bool = False
) -> tuple[ManagedProcess, str]:
    """The API as the Procfile runs it (gunicorn, gthread), once /health answers; returns
    the process and its base URL."""
    base_url = f"http://{HOST}:{free_port()}"
    process = _process(
        name,
        [
            venv_binary("gunicorn"),
            "config.wsgi",
            "--bind",
            base_url.removeprefix("http://"),
            "--worker-class",
            "gthread",
            "--workers",
            "2",
            "--threads",
            "8",
            "--log-level",
            "warning",
        ],
        env=env,
        log_dir=log_dir,
        embedded=embedded,
    )
    process.start(ready=lambda: _answers(f"{base_url}/health"), timeout=START_TIMEOUT_SEC)
    return process, base_url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class Stack:
    """Running DPP processes: the API's base URL, the worker, and the file the counting
    pack appends every execution to."""

    api_url: str
    worker: ManagedProcess
    pack_log: Path


@dataclass(frozen=True)
class HttpApi:
    """A tenant's view of the API over real HTTP."""

    base_url: str
    token: str

    def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            urljoin(self.base_url, path),
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def submit(
        self,
        *,
        pack_type: str = "decision",
        inputs: dict[str, Any] | None = None,
        max_cost_usd: str = "0.050000",
        timebox_sec: int = 30,
    ) -> str:
        """POST /v1/runs as a client would; returns the run id of the 202."""
        status, body = self.request(
            "POST",
            "/v1/runs",
            {
                "pack_type": pack_type,
                "inputs": decision_inputs() if inputs is None else inputs,
                "reservation": {"max_cost_usd": max_cost_usd, "timebox_sec": timebox_sec},
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        if status != 202:
            raise AssertionError(f"submit answered {status}: {body}")
        return body["run_id"]

    def run(self, run_id: str) -> dict[str, Any]:
        status, body = self.request("GET", f"/v1/runs/{run_id}")
        if status != 200:
            raise AssertionError(f"GET run answered {status}: {body}")
        return body

    def cancel(self, run_id: str) -> tuple[int, dict[str, Any]]:
        """POST /v1/runs/{id}/cancel: the status (200, 202 or a 409 problem) and body."""
        return self.request("POST", f"/v1/runs/{run_id}/cancel")

    def download(self, url: str) -> bytes:
        """The bytes behind a result link (an absolute URL, presigned or signed)."""
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()


@contextmanager
def publishing_to(*, broker_url: str, transport_options: dict[str, Any]) -> Iterator[Celery]:
    """Make this thread's current Celery app publish to the given broker with DPP's other
    Celery settings, so ``publish_run`` in this process reaches the workers."""
    app = Celery("dpp-tests", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=broker_url, broker_transport_options=transport_options)
    previous = get_current_app()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()
        app.close()


def wait_until_terminal(run_ids: Iterable[object], timeout: float) -> list[Run]:
    """Poll the database until every run is COMPLETED or FAILED; fail after ``timeout``."""
    ids = list(run_ids)
    deadline = time.monotonic() + timeout
    while True:
        runs = list(Run.objects.filter(id__in=ids))
        if len(runs) == len(ids) and all(run.is_terminal for run in runs):
            return runs
        if time.monotonic() > deadline:
            pending = [str(run.id) for run in runs if not run.is_terminal]
            raise TimeoutError(f"{len(pending)} of {len(ids)} runs not terminal: {pending[:5]}")
        time.sleep(0.1)
