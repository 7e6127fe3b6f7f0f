"""docs/api.md's quickstart is executed as written, against a live server."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from billing import services as billing
from runs.models import Run
from tests.factories import USD, AccountFactory, issue_token

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", API_MD.read_text(), flags=re.DOTALL)


@pytest.mark.django_db(transaction=True)
def test_quickstart_commands_run_as_written(live_server, tmp_path):
    account = AccountFactory()
    billing.top_up(account=account, amount_micros=10 * USD, reason="docs")
    script = "set -euo pipefail\n" + "\n".join(bash_blocks())
    env = {**os.environ, "DPP_URL": live_server.url, "DPP_API_KEY": issue_token(account.tenant)}

    result = subprocess.run(
        ["bash", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )

    assert result.returncode == 0, result.stderr + result.stdout
    assert len(bash_blocks()) >= 5
    assert '"available_usd":"10.000000"' in result.stdout.replace(" ", "")
    run = Run.objects.get(tenant=account.tenant)
    assert str(run.id) in result.stdout
    assert Run.objects.filter(tenant=account.tenant).count() == 1
