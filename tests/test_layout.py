"""The repository keeps the fixed layout of docs/design.md §1, and what a running process
writes lands under ``DPP_VAR_DIR``, never beside the code."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

REPO = Path(settings.BASE_DIR)

FIXED_TOP_LEVEL = {
    "manage.py",
    "dpp",
    "runs",
    "billing",
    "reaper",
    "config",
    "tests",
    "requirements",
    "docker",
    "docs",
    "Makefile",
    "README.md",
    "pyproject.toml",
    "Procfile",
}


def _allowed(name: str) -> bool:
    return name in FIXED_TOP_LEVEL or name.startswith((".", "RELEASE_NOTES"))


def test_every_committed_path_lies_in_the_fixed_top_level():
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    top_level = {path.split("/", 1)[0] for path in tracked.split("\0") if path}
    assert "manage.py" in top_level
    assert sorted(name for name in top_level if not _allowed(name)) == []


def test_publishing_on_the_embedded_broker_writes_only_under_the_var_dir(tmp_path):
    """kombu's filesystem transport keeps its exchange table in ``control_folder``, by
    default ``control/`` in the working directory: that is how ``control/runs.exchange``
    was once committed. The settings put every broker folder under ``DPP_VAR_DIR``."""
    workdir, var_dir = tmp_path / "cwd", tmp_path / "var"
    workdir.mkdir()
    publish = (
        "import django; django.setup()\n"
        "from runs.tasks import execute_run\n"
        "execute_run.apply_async(args=['00000000-0000-0000-0000-000000000000'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", publish],
        cwd=workdir,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DPP_VAR_DIR": str(var_dir),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(workdir)) == []
    assert (var_dir / "broker" / "control" / "runs.exchange").is_file()
    assert len(os.listdir(var_dir / "broker" / "queue")) == 1
