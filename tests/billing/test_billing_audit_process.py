"""``manage.py dpp_audit`` as a real process: the exit code is the contract for cron and CI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from billing import services
from billing.models import Account
from tests.billing.helpers import USD, record_outcome, reserved_run

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def dpp_audit(*args: str) -> subprocess.CompletedProcess:
    db = connection.settings_dict
    user = f"{db['USER']}:{db['PASSWORD']}" if db["PASSWORD"] else db["USER"]
    url = f"postgres://{user}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return subprocess.run(
        [sys.executable, "manage.py", "dpp_audit", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a shared database")
def test_dpp_audit_process_exit_codes(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    record_outcome(run, services.settle(run=run, charge_micros=10_000, outcome="FAILED").transfer)

    clean = dpp_audit()
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.strip() == "ledger audit clean: 1 accounts, 3 transfers, 1 runs"

    Account.objects.filter(pk=account.pk).update(credits_posted=11 * USD)
    broken = dpp_audit()
    assert broken.returncode == 1
    assert len(broken.stdout.splitlines()) == 1
    assert broken.stdout.startswith("invariant 1 violated:")

    as_json = dpp_audit("--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["violations"][0]["invariant"] == 1
