"""The ledger's bounds on the embedded default's SQLite, where the finding broke the most:
an overflowing sum became a float, and the budget, the accounts list and the audit failed.

``tests/billing/embedded_bounds.py`` runs in a process configured like ``make run`` (no
DATABASE_URL, REDIS_URL or broker: SQLite in a fresh DPP_VAR_DIR) and reports what the
service, the CLI and the admin answered.
"""

import json
import os
import subprocess
import sys

import pytest

from billing.limits import MAX_BALANCE_MICROS
from tests.e2e.stack import NON_EMBEDDED_VARIABLES, REPO_ROOT
from tests.factories import USD

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

TEN_USD_LEDGER = [10 * USD, 0, 0, 1]  # credited, spent, reserved, transfers


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("embedded-bounds")
    var_dir, report_file = base / "var", base / "report.json"
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in (*NON_EMBEDDED_VARIABLES, "DATABASE_URL", "REDIS_URL")
    }
    env |= {"DPP_VAR_DIR": str(var_dir), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.billing.embedded_bounds", str(report_file)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (var_dir / "db.sqlite3").exists()
    return json.loads(report_file.read_text())


def test_the_probe_ran_on_sqlite(report):
    assert report["vendor"] == "sqlite"


def test_the_overflow_is_refused_by_the_service_the_cli_and_the_admin(report):
    overflow = report["overflow"]

    assert overflow["service"] == ["TransferTooLarge", "TransferTooLarge"]
    assert overflow["cli"]["code"] != 0
    assert "top-up may move at most $1000000.000000" in overflow["cli"]["stderr"]
    assert "Traceback" not in overflow["cli"]["stderr"]
    for attempt in overflow["admin"]:
        assert attempt["status"] == 200
        assert "top-up may move at most $1000000.000000" in attempt["page"]


def test_after_the_overflow_the_ledger_budget_and_accounts_list_are_intact(report):
    after = report["overflow"]["after"]

    assert after["ledger"] == TEN_USD_LEDGER
    assert (after["budget_status"], after["available_usd"]) == (200, "10.000000")
    assert after["accounts_list"] == 200


def test_a_credit_above_the_maximum_balance_is_refused_everywhere(report):
    full = report["maximum_balance"]

    assert full["before"]["ledger"][0] == MAX_BALANCE_MICROS
    assert full["service"] == "BalanceLimitExceeded"
    assert full["cli"]["code"] != 0
    assert "nothing was credited" in full["cli"]["stderr"]
    assert full["admin"]["status"] == 200
    assert "nothing was credited" in full["admin"]["page"]
    assert full["after"] == full["before"]
    assert full["after"]["available_usd"] == "1000000000.000000"


def test_the_check_constraint_catches_a_float_overflow_behind_the_services(report):
    assert report["backstop"] == "IntegrityError"


def test_the_audit_stays_clean(report):
    assert report["audit"]["code"] == 0, report["audit"]["stderr"]
    assert "ledger audit clean" in report["audit"]["stdout"]
