"""``dpp_audit`` finds each invariant of docs/design.md §3 when a test breaks it on purpose."""

import json
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.db import connection

from billing import services
from billing.models import Account, Transfer
from reaper.audit import audit, run_audit
from runs.models import Run
from tests.billing.helpers import USD, new_run, record_outcome, reserved_run

pytestmark = pytest.mark.django_db

ACCOUNT = Account._meta.db_table
TRANSFER = Transfer._meta.db_table
RUN = Run._meta.db_table


@dataclass
class Ledger:
    account: Account
    settled: Run
    voided: Run
    queued: Run


@pytest.fixture
def ledger(funded_account) -> Ledger:
    """A clean ledger: one settled, one voided and one in-flight run, and an adjustment."""
    account = funded_account(usd=10)
    settled = reserved_run(account, 2 * USD)
    record_outcome(
        settled, services.settle(run=settled, charge_micros=400_000, outcome="FAILED").transfer
    )
    voided = reserved_run(account, USD)
    record_outcome(voided, services.void(run=voided, outcome="FAILED").transfer)
    queued = reserved_run(account, 3 * USD)
    services.adjust(account=account, amount_micros=-250_000, reason="correction", actor="ops")
    assert audit() == []
    return Ledger(account, settled, voided, queued)


def corrupt(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def invariants() -> list[int]:
    return sorted(v.invariant for v in audit())


def run_command(capsys, *args: str) -> tuple[int, str]:
    try:
        call_command("dpp_audit", *args)
    except SystemExit as exc:
        return int(exc.code), capsys.readouterr().out
    return 0, capsys.readouterr().out


def test_clean_ledger_exits_zero_with_one_summary_line(ledger, capsys):
    code, out = run_command(capsys)
    assert code == 0
    assert out.splitlines() == ["ledger audit clean: 1 accounts, 7 transfers, 3 runs"]


def test_clean_ledger_json(ledger, capsys):
    code, out = run_command(capsys, "--json")
    document = json.loads(out)
    assert code == 0
    assert document["clean"] is True
    assert document["violations"] == []
    assert document["counts"] == {
        "accounts": 1,
        "transfers": 7,
        "runs": 3,
        "audit_required_runs": 0,
    }


def test_invariant_1_account_columns_differ_from_transfers(ledger):
    corrupt(
        f"UPDATE {ACCOUNT} SET credits_posted = credits_posted + 1 WHERE id = %s",
        [ledger.account.pk],
    )
    [violation] = audit()
    assert violation.invariant == 1
    assert violation.account_id == ledger.account.pk
    assert violation.tenant_id == str(ledger.account.tenant_id)
    assert "credits_posted 10.000001 != transfers 10.000000" in violation.detail


def test_invariant_1_a_deleted_transfer(ledger):
    corrupt(f"DELETE FROM {TRANSFER} WHERE kind = 'ADJUST'")
    assert invariants() == [1]


def test_invariant_2_overdrawn_account_with_the_check_constraint_dropped(ledger):
    # The CHECK makes this impossible; drop it (inside the test transaction) to prove the
    # audit would still see it, e.g. on a restored backup without constraints.
    # (Deferred foreign-key checks must fire first: PostgreSQL will not ALTER a table
    # with pending trigger events.)
    corrupt("SET CONSTRAINTS ALL IMMEDIATE")
    corrupt(f"ALTER TABLE {ACCOUNT} DROP CONSTRAINT account_cannot_overdraw")
    corrupt(
        f"UPDATE {ACCOUNT} SET debits_pending = credits_posted + 1 WHERE id = %s",
        [ledger.account.pk],
    )
    found = invariants()
    assert 2 in found
    assert 1 in found  # the columns no longer match the transfers either


def test_invariant_3_terminal_run_without_settle_or_void(ledger):
    corrupt(f"UPDATE {RUN} SET status = 'FAILED' WHERE id = %s", [ledger.queued.id])
    [violation] = audit()
    assert (violation.invariant, violation.run_id) == (3, str(ledger.queued.id))
    assert "0 SETTLE/VOID transfers for a FAILED run (expected 1)" in violation.detail


def test_invariant_3_non_terminal_run_with_a_settle(ledger):
    corrupt(
        f"UPDATE {RUN} SET status = 'PROCESSING', lease_token = %s, "
        "lease_expires_at = NOW() WHERE id = %s",
        ["5f0c1d2e-0000-4000-8000-000000000000", ledger.settled.id],
    )
    assert invariants() == [3]


def test_invariant_3_run_without_a_reserve(ledger):
    run = new_run(ledger.account, USD)
    found = {(v.invariant, v.run_id) for v in audit()}
    assert (3, str(run.id)) in found
    assert (5, str(run.id)) in found  # RESERVED, but no RESERVE transfer says so


def test_invariant_4_actual_cost_differs_from_the_settle(ledger):
    corrupt(f"UPDATE {RUN} SET actual_cost_micros = 400001 WHERE id = %s", [ledger.settled.id])
    [violation] = audit()
    assert (violation.invariant, violation.run_id) == (4, str(ledger.settled.id))
    assert "SETTLE 0.400000 != run.actual_cost 0.400001" in violation.detail


def test_invariant_4_settle_above_its_reservation(ledger):
    corrupt(
        f"UPDATE {TRANSFER} SET amount_micros = %s WHERE run_id = %s AND kind = 'SETTLE'",
        [2 * USD + 1, ledger.settled.id],
    )
    violations = [v for v in audit() if v.invariant == 4]
    assert any("exceeds RESERVE 2.000000" in v.detail for v in violations)


def test_invariant_4_reserve_differs_from_the_runs_reservation(ledger):
    corrupt(f"UPDATE {RUN} SET reserved_micros = %s WHERE id = %s", [3 * USD + 1, ledger.queued.id])
    assert invariants() == [4]


def test_invariant_4_void_that_released_less_than_was_reserved(ledger):
    corrupt(
        f"UPDATE {TRANSFER} SET amount_micros = 1 WHERE run_id = %s AND kind = 'VOID'",
        [ledger.voided.id],
    )
    assert 4 in invariants()


def test_invariant_5_money_state_disagrees_with_the_transfers(ledger):
    corrupt(f"UPDATE {RUN} SET money_state = 'REFUNDED' WHERE id = %s", [ledger.settled.id])
    [violation] = audit()
    assert (violation.invariant, violation.run_id) == (5, str(ledger.settled.id))
    assert "money_state REFUNDED but transfers say SETTLED" in violation.detail


def test_invariant_5_completed_run_without_a_result(ledger):
    corrupt(f"UPDATE {RUN} SET status = 'COMPLETED' WHERE id = %s", [ledger.settled.id])
    [violation] = audit()
    assert violation.invariant == 5
    assert "COMPLETED without a result key and sha256" in violation.detail
    corrupt(
        f"UPDATE {RUN} SET result_key = 'results/x.json', result_sha256 = %s WHERE id = %s",
        ["ab" * 32, ledger.settled.id],
    )
    assert [v.detail for v in audit()] == [
        "the ledger finalized it as FAILED but the run is COMPLETED"
    ]
    corrupt(
        f"UPDATE {TRANSFER} SET outcome = 'COMPLETED' WHERE run_id = %s AND kind = 'SETTLE'",
        [ledger.settled.id],
    )
    assert audit() == []


def test_audit_required_runs_are_not_rejudged_but_are_counted(ledger, capsys):
    corrupt(f"UPDATE {RUN} SET money_state = 'AUDIT_REQUIRED' WHERE id = %s", [ledger.settled.id])
    report = run_audit()
    assert report.clean
    assert report.counts["audit_required_runs"] == 1
    code, out = run_command(capsys)
    assert code == 0
    assert out.strip() == "ledger audit clean: 1 accounts, 7 transfers, 3 runs (1 AUDIT_REQUIRED)"


def test_violations_exit_non_zero_with_one_line_each(ledger, capsys):
    corrupt(f"UPDATE {ACCOUNT} SET credits_posted = credits_posted + 1")
    corrupt(f"UPDATE {RUN} SET status = 'FAILED' WHERE id = %s", [ledger.queued.id])
    corrupt(f"UPDATE {RUN} SET money_state = 'REFUNDED' WHERE id = %s", [ledger.settled.id])
    violations = audit()
    code, out = run_command(capsys)
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == len(violations) == 3
    assert [line.split(":")[0] for line in lines] == [
        "invariant 1 violated",
        "invariant 3 violated",
        "invariant 5 violated",
    ]
    assert f"run={ledger.queued.id}" in lines[1]


def test_violations_as_json(ledger, capsys):
    corrupt(f"UPDATE {RUN} SET actual_cost_micros = 1 WHERE id = %s", [ledger.settled.id])
    code, out = run_command(capsys, "--json")
    document = json.loads(out)
    assert code == 1
    assert document["clean"] is False
    assert document["counts"]["runs"] == 3
    [violation] = document["violations"]
    assert violation["invariant"] == 4
    assert violation["run_id"] == str(ledger.settled.id)
    assert violation["tenant_id"] == str(ledger.account.tenant_id)
    assert set(violation) == {"invariant", "account_id", "tenant_id", "run_id", "detail"}


def test_audit_moves_no_money(ledger):
    corrupt(f"UPDATE {ACCOUNT} SET credits_posted = credits_posted + 1")
    before = list(Account.objects.values_list("credits_posted", "debits_posted", "debits_pending"))
    transfers = Transfer.objects.count()
    audit()
    assert (
        list(Account.objects.values_list("credits_posted", "debits_posted", "debits_pending"))
        == before
    )
    assert Transfer.objects.count() == transfers


def test_invariant_4_a_canceled_run_charged_more_than_its_minimum_fee(ledger):
    corrupt(
        f"UPDATE {TRANSFER} SET outcome = 'CANCELED' WHERE run_id = %s AND kind = 'SETTLE'",
        [ledger.settled.id],
    )
    corrupt(
        f"UPDATE {RUN} SET status = 'CANCELED', cancel_requested_at = NOW() WHERE id = %s",
        [ledger.settled.id],
    )
    [violation] = audit()
    assert (violation.invariant, violation.run_id) == (4, str(ledger.settled.id))
    assert "CANCELED run charged 0.400000 > its minimum fee 0.040000" in violation.detail


def test_invariant_5_the_ledgers_outcome_disagrees_with_the_run(ledger):
    corrupt(
        f"UPDATE {TRANSFER} SET outcome = 'COMPLETED' WHERE run_id = %s AND kind = 'VOID'",
        [ledger.voided.id],
    )
    [violation] = audit()
    assert (violation.invariant, violation.run_id) == (5, str(ledger.voided.id))
    assert "the ledger finalized it as COMPLETED but the run is FAILED" in violation.detail


def test_invariant_6_a_statement_balance_that_does_not_follow(ledger):
    corrupt(
        f"UPDATE {TRANSFER} SET available_after_micros = available_after_micros + 1 "
        "WHERE run_id = %s AND kind = 'RESERVE'",
        [ledger.voided.id],
    )
    found = [v for v in audit() if v.invariant == 6]
    # The edited transfer, and the one after it, no longer follow from their predecessor.
    assert len(found) == 2
    assert all(v.account_id == ledger.account.pk for v in found)
    assert "!= 9.600000 before it + -1.000000" in found[0].detail


def test_invariant_7_a_rolled_up_day_that_differs_from_the_ledger(ledger, settings):
    from datetime import timedelta

    from billing import usage
    from billing.models import UsageDay

    settings.DPP_USAGE_SEAL_AFTER_SEC = 0
    day = usage.today()
    Transfer.objects.update(created_at=usage.midnight(day - timedelta(days=2)))
    assert usage.roll_up() == 2
    assert audit() == []

    UsageDay.objects.filter(account=ledger.account).update(runs_failed=3)
    [violation] = audit()
    assert (violation.invariant, violation.account_id) == (7, ledger.account.pk)
    assert violation.detail == f"{day - timedelta(days=2)}: runs_failed 3 != ledger 2"
    assert 7 not in [v.invariant for v in audit() if v.account_id != ledger.account.pk]

    UsageDay.objects.all().delete()
    [missing] = audit()
    assert "runs_submitted 0 != ledger 3" in missing.detail
