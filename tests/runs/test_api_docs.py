"""docs/api.md's quickstart is executed as written, against a live server."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from billing import services as billing
from billing.models import Transfer
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
    assert len(bash_blocks()) >= 9
    output = result.stdout.replace(" ", "")
    assert '"available_usd":"10.000000"' in output
    first, second = Run.objects.filter(tenant=account.tenant).order_by("created_at")
    assert str(first.id) in result.stdout
    # The cancel example canceled the second run at once and returned its reservation.
    assert (second.status, second.money_state) == (Run.Status.CANCELED, Run.MoneyState.REFUNDED)
    assert '"status":"CANCELED","money_state":"REFUNDED"' in output
    void = Transfer.objects.get(run=second, kind=Transfer.Kind.VOID)
    assert f'"id":{void.id},"kind":"VOID"' in output
    # The statement as CSV, and the usage as JSON then CSV.
    assert re.search(
        r"id,kind,amount_usd,run_id,reason,created_at,available_usd_after\n"
        rf"{second.transfers.get(kind='RESERVE').id},RESERVE,0\.050000,{second.id},",
        result.stdout,
    )
    assert '"runs_submitted":2,"runs_completed":0,"runs_failed":0,"runs_canceled":1' in output
    assert "date,runs_submitted,runs_completed,runs_failed,runs_canceled,spent_usd," in output
