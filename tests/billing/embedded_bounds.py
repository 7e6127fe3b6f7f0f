"""Tries the ledger's bounds on the embedded default's SQLite and prints one JSON report.

Run by ``test_ledger_bounds_embedded`` as ``python -m tests.billing.embedded_bounds
REPORT`` in a process configured like ``make run`` (no DATABASE_URL: SQLite in
DPP_VAR_DIR); the report goes to the file REPORT (stdout carries the JSON logs). It
migrates a fresh database, then tries the finding's overflow and the maximum balance
through the service, the CLI (each command a process of its own on the same database
file) and the admin, and bypasses the services to reach the CHECK constraints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django

REPO = Path(__file__).resolve().parents[2]
ABSURD_USD = "9000000000000"
ABSURD_MICROS = 9 * 10**18


def refusal(attempt: Callable[[], object]) -> str:
    """The class name of what ``attempt`` raised, or ``"written"`` if it was not refused."""
    try:
        attempt()
    except Exception as exc:
        return type(exc).__name__
    return "written"


def command(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def main(report_path: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import F
    from django.test import Client
    from django.urls import reverse
    from rest_framework.test import APIClient

    from billing import services
    from billing.models import Account, Transfer
    from dpp.services import api_key_issue
    from tests.billing.helpers import USD, fill_to_the_maximum_balance

    call_command("migrate", verbosity=0)
    account = services.tenant_open(name="overflow", budget_micros=10 * USD, actor="probe")
    tenant_id = str(account.tenant_id)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_issue(tenant=account.tenant).token}")
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("oncall", "o@example.com", None))
    top_up_page = reverse("admin:billing_account_top_up", args=[account.pk])

    def ledger() -> list[int]:
        account.refresh_from_db()
        transfers = Transfer.objects.filter(account=account).count()
        return [account.credits_posted, account.debits_posted, account.debits_pending, transfers]

    def admin_top_up(amount_usd: str) -> dict[str, Any]:
        page = admin.post(
            top_up_page, {"amount_usd": amount_usd, "reason": "probe", "confirm_large": "on"}
        )
        return {"status": page.status_code, "page": page.content.decode()}

    def looks() -> dict[str, Any]:
        budget = api.get("/v1/budget")
        return {
            "ledger": ledger(),
            "budget_status": budget.status_code,
            "available_usd": budget.json().get("available_usd"),
            "accounts_list": admin.get(reverse("admin:billing_account_changelist")).status_code,
        }

    def top_up(micros: int) -> Callable[[], object]:
        return lambda: services.top_up(account=account, amount_micros=micros, reason="probe")

    report: dict[str, Any] = {"vendor": connection.vendor}
    report["overflow"] = {
        "service": [refusal(top_up(ABSURD_MICROS)) for _ in range(2)],
        # A command is a process of its own (seconds each): once is the proof.
        "cli": command("dpp_topup", tenant_id, ABSURD_USD),
        "admin": [admin_top_up(ABSURD_USD) for _ in range(2)],
        "after": looks(),
    }

    empty = services.tenant_open(name="full", actor="probe")
    fill_to_the_maximum_balance(empty)
    account = empty
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_issue(tenant=empty.tenant).token}")
    top_up_page = reverse("admin:billing_account_top_up", args=[empty.pk])
    report["maximum_balance"] = {
        "before": looks(),
        "service": refusal(top_up(1)),
        "cli": command("dpp_topup", str(empty.tenant_id), "0.000001"),
        "admin": admin_top_up("1.00"),
        "after": looks(),
    }

    def overflow_behind_the_services() -> None:
        # On SQLite the second addition leaves 64 bits and the result becomes a float.
        with transaction.atomic():
            Account.objects.filter(pk=empty.pk).update(
                credits_posted=F("credits_posted") + ABSURD_MICROS + ABSURD_MICROS
            )

    report["backstop"] = refusal(overflow_behind_the_services)
    report["audit"] = command("dpp_audit")
    report_path.write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
