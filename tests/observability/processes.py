"""DPP's processes as the Procfile runs them, each with its own stdout and stderr files,
so a test can tell what a process prints on stdout (JSON lines only) from the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from tests.external import _die_with_parent


class Service:
    def __init__(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log_dir: Path, cwd: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **env}
        self.cwd = cwd
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 60) -> Service:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not ready():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        return self

    def stop(self, grace: float = 15) -> None:
        """SIGTERM the main process, as a container runtime does (a warm shutdown: it
        stops its own children), then SIGKILL whatever of the group outlives ``grace``."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self._proc.wait(grace)
        with suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    def stdout_lines(self) -> list[str]:
        return self.stdout_path.read_text(errors="replace").splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout_lines() if line.startswith("{")]

    def other_stdout_lines(self) -> list[str]:
        """Lines on stdout that are not a JSON object."""
        others = []
        for line in self.stdout_lines():
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                others.append(line)
        return others

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""
