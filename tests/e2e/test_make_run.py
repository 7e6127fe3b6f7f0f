"""`make run` from the tree, on the embedded default: the smoke test of docs/design.md §6.

A clean environment (no DATABASE_URL, REDIS_URL, broker or bucket) and a temporary
DPP_VAR_DIR: SQLite, the filesystem broker and local result files, all under that
directory. The test starts `make run` in its own process group, uses the API the way
the README says (including the printed curl example, so a run goes through the worker),
then presses Ctrl-C (SIGINT to the group) and checks that no process is left behind.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from openapi_spec_validator import validate

from tests.external import HOST, free_port

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

REPO = Path(settings.BASE_DIR)
# Installing is `make test`'s first step (and needs the network); this test is about what
# `make run` does after that, so it tells make the install stamp is current.
STAMP = ".venv/.installed"
START_TIMEOUT_SEC = 180
STOP_TIMEOUT_SEC = 30
_ASSET = re.compile(r"<(?:script|link)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)[\"']", re.I)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_for(probe: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; make run said:\n{_tail(log)}")


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _processes_of(var_dir: Path) -> dict[int, str]:
    """Every live process started for this test: they all carry its DPP_VAR_DIR."""
    marker = f"DPP_VAR_DIR={var_dir}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(
                (ln for ln in (proc / "status").read_text().splitlines() if ln.startswith("State")),
                "",
            )
        except OSError:
            continue
        if marker in environ and "zombie" not in state:
            found[int(proc.name)] = cmdline.strip()
    return found


def _up(base: str) -> bool:
    try:
        return _get(f"{base}/health")[0] == 200
    except OSError:
        return False


def _printed_curl(output: str, heading: str) -> str:
    """The shell command printed under ``heading`` (continuation lines joined)."""
    block = output.split(heading, 1)[1].split("\n\n", 1)[0]
    return " ".join(line.strip().rstrip("\\") for line in block.splitlines()[1:])


@pytest.fixture
def make_run(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    log = tmp_path / "make-run.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DPP_VAR_DIR": str(var_dir),
        "PORT": str(port),
    }
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "-o", STAMP, "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    try:
        yield make, f"http://{HOST}:{port}", var_dir, log
    finally:
        leftovers = _processes_of(var_dir)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()


def test_make_run_serves_the_api_and_ctrl_c_leaves_no_process(make_run):
    make, base, var_dir, log = make_run
    _wait_for(lambda: make.poll() is not None or _up(base), START_TIMEOUT_SEC, "/health", log)
    assert make.poll() is None, f"make run exited early:\n{_tail(log)}"

    # The embedded default: everything lives under DPP_VAR_DIR.
    assert (var_dir / "db.sqlite3").exists()
    assert (var_dir / "broker").is_dir()

    status, body = _get(f"{base}/readyz")
    assert status == 200, body
    assert {c["name"] for c in json.loads(body)["checks"]} >= {"database", "cache"}

    status, body = _get(f"{base}/openapi.json")
    assert status == 200
    validate(json.loads(body))

    for page in ("/docs", "/redoc"):
        status, body = _get(f"{base}{page}")
        assert status == 200, page
        assets = _ASSET.findall(body.decode())
        assert assets, page
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            assert _get(f"{base}{url}")[0] == 200, url

    # The demo tenant: a private key file, a $10 budget, and curl examples that work.
    key_file = var_dir / "demo_api_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = key_file.read_text().strip()
    output = log.read_text()
    assert f"Demo API key: {token}" in output
    status, body = _get(f"{base}/v1/budget", {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    assert json.loads(body)["available_usd"] == "10.000000"

    assert shutil.which("curl"), "curl is needed to run the printed examples"
    budget = subprocess.run(
        ["bash", "-c", _printed_curl(output, "Check the budget:")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(budget.stdout)["credited_usd"] == "10.000000"
    submit = subprocess.run(
        ["bash", "-c", _printed_curl(output, "Submit a run")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    receipt = json.loads(submit.stdout)
    assert receipt["status"] == "QUEUED", receipt
    poll = f"{base}{receipt['poll']['href']}"
    auth = {"Authorization": f"Bearer {token}"}

    def completed() -> bool:
        return json.loads(_get(poll, auth)[1])["status"] in ("COMPLETED", "FAILED")

    _wait_for(completed, 60, "the worker to finish the demo run", log)
    run = json.loads(_get(poll, auth)[1])
    assert run["status"] == "COMPLETED", run
    assert run["money_state"] == "SETTLED"

    # The processes of the Procfile are all up before Ctrl-C.
    running = " ".join(_processes_of(var_dir).values())
    assert "gunicorn" in running
    assert "worker" in running
    assert "beat" in running

    # Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
    os.killpg(make.pid, signal.SIGINT)
    make.wait(timeout=STOP_TIMEOUT_SEC)
    _wait_for(lambda: not _processes_of(var_dir), STOP_TIMEOUT_SEC, "every process to exit", log)
    assert not _up(base)
    assert token not in "\n".join(
        line for line in log.read_text().splitlines() if line.startswith("{")
    ), "the API key appeared in a JSON log line"
