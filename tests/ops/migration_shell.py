"""A long-lived Django process that runs ``manage.py`` commands sent to it on stdin.

Used by test_migrations_reversible.py: one process (one Django start-up) runs the whole
sequence of ``migrate <app> <target>`` commands against the throwaway database named by
``DATABASE_URL``, while the test inspects that database between the steps.

Protocol: each stdin line is a JSON list, ``["migrate", "runs", "zero"]`` (the arguments
of ``call_command``) or ``["seed"]`` (create one row or more in the apps' tables through
their services). Each command is answered by one stdout line ``@@done {"ok": ..., ...}``;
anything else on stdout is the process's own log output.
"""

import json
import sys
import traceback

import django

MARKER = "@@done "


def seed() -> dict:
    """Rows in the apps' tables, written the way the platform writes them."""
    from billing.services import tenant_open
    from dpp.kill_switch import submissions_pause
    from dpp.services import api_key_issue
    from reaper.models import AuditResolution
    from runs.lifecycle import claim
    from runs.models import Run
    from runs.services import Submission, submit_run
    from tests.payloads import decision_inputs

    account = tenant_open(
        name="migration round trip", plan_name="pilot", budget_micros=5_000_000, actor="test"
    )
    api_key_issue(tenant=account.tenant, label="round trip")
    outcome = submit_run(
        tenant=account.tenant,
        idempotency_key="round-trip-0001",
        fingerprint="0" * 64,
        submission=Submission(
            pack_type="decision",
            inputs=decision_inputs(),
            max_cost_micros=50_000,
            timebox_sec=30,
            min_reliability_score=0.0,
        ),
    )
    claim(run_id=outcome.run.id)
    AuditResolution.objects.create(
        run=outcome.run,
        actor="test",
        note="round-trip data",
        outcome=AuditResolution.Outcome.FAIL,
        resulting_money_state=Run.MoneyState.SETTLED,
    )
    submissions_pause(actor="test", reason="round-trip data")
    return {"tenant_id": str(account.tenant_id), "run_id": str(outcome.run.id)}


def main() -> None:
    django.setup()
    from django.core.management import call_command

    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command == ["seed"]:
                reply = {"ok": True, **seed()}
            else:
                call_command(*command, verbosity=0, interactive=False)
                reply = {"ok": True}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.write(MARKER + json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
