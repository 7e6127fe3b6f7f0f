"""The operators' admin for runs: AUDIT_REQUIRED first, the run's money, lease history and
receipt on its page, and "Resolve audit…" that records who decided what and moves money
only through billing.services."""

import re
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.models import Account, Transfer
from reaper import services, tasks
from reaper.audit import audit
from reaper.models import AuditResolution
from runs import execution
from runs.models import Run
from tests.reaper.helpers import (
    finalizations,
    lease,
    money,
    receipt_for,
    rewrite_metadata,
)

USD = 1_000_000
RESERVED = 50_000
CHANGELIST = reverse("admin:runs_run_changelist")
RUN_LINK = re.compile(r'href="/admin/runs/run/([0-9a-f-]{36})/change/')


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(f"{CHANGELIST}{query}")
    assert response.status_code == 200
    return list(dict.fromkeys(RUN_LINK.findall(response.content.decode())))


@pytest.fixture
def flagged(make_run, local_results: Path, settings, django_capture_on_commit_callbacks):
    """A run whose receipt names another tenant: AUDIT_REQUIRED with its money reserved."""

    def make() -> Run:
        settings.DPP_LEASE_TTL_SEC = 0
        run = make_run()
        current = lease(run)
        receipt_for(current, charge_micros=9_000)
        rewrite_metadata(local_results, run, tenant_id=str(uuid.uuid4()))
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.expire_leases() == {"audit_required": 1}
        settings.DPP_LEASE_TTL_SEC = 120
        run.refresh_from_db()
        return run

    return make


@pytest.fixture
def finished(make_run):
    def make(pack_type: str = "decision") -> Run:
        run = make_run(pack_type=pack_type)
        execution.execute_run(run_id=run.id)
        run.refresh_from_db()
        return run

    return make


def resolve(client: Client, run: Run, follow: bool = False, **form: str):
    return client.post(
        CHANGELIST,
        {
            "action": "resolve_audit",
            "_selected_action": [str(run.id)],
            "apply": "1",
            "resolution": "REFUNDED",
            "charge_usd": "0",
            "adjust_usd": "0",
            "note": "",
            **form,
        },
        follow=follow,
    )


def test_changelist_lists_audit_required_runs_first_and_filters(
    admin_client: Client, flagged, finished
):
    needs_audit = flagged()  # the oldest run
    completed = finished()
    failed = finished("crashing")

    assert listed(admin_client) == [str(needs_audit.id), str(failed.id), str(completed.id)]
    assert listed(admin_client, "?audit=required") == [str(needs_audit.id)]
    assert listed(admin_client, "?money_state__exact=AUDIT_REQUIRED") == [str(needs_audit.id)]
    assert listed(admin_client, "?status__exact=FAILED") == [str(failed.id)]
    assert listed(admin_client, "?status__exact=COMPLETED") == [str(completed.id)]


def test_run_page_shows_transfers_lease_history_and_the_receipts_verdict(
    admin_client: Client, flagged
):
    run = flagged()

    response = admin_client.get(reverse("admin:runs_run_change", args=[run.id]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Lease history" in page
    for kind in ("CLAIMED", "AUDIT_FLAGGED", "RESERVE"):
        assert kind in page
    assert str(run.lease_token) in page
    assert "Receipt in object storage" in page
    assert "<b>charge-usd-micros</b>: 9000" in page
    assert "<b>verdict</b>: tenant-id" in page
    assert "is not the run&#x27;s tenant" in page
    assert "Audit resolutions" in page


def test_run_page_opens_when_object_storage_is_down(admin_client: Client, flagged, monkeypatch):
    run = flagged()

    def storage_down(seen: Run):
        raise ConnectionError("no route to the bucket")

    monkeypatch.setattr("reaper.admin.read_receipt", storage_down)
    response = admin_client.get(reverse("admin:runs_run_change", args=[run.id]))

    assert response.status_code == 200
    assert "unavailable: object storage did not answer (ConnectionError)" in (
        response.content.decode()
    )


def test_runs_cannot_be_added_edited_or_deleted_in_the_admin(admin_client: Client, finished):
    run = finished()

    assert admin_client.get(reverse("admin:runs_run_add")).status_code == 403
    assert admin_client.post(reverse("admin:runs_run_delete", args=[run.id])).status_code == 403
    admin_client.post(reverse("admin:runs_run_change", args=[run.id]), {"money_state": "REFUNDED"})
    run.refresh_from_db()
    assert run.money_state == Run.MoneyState.SETTLED


def test_resolve_audit_asks_for_a_form_first(admin_client: Client, flagged):
    run = flagged()

    response = admin_client.post(
        CHANGELIST, {"action": "resolve_audit", "_selected_action": [str(run.id)]}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="note"' in page
    assert 'name="resolution"' in page
    assert not AuditResolution.objects.exists()


def test_resolve_audit_requires_a_note(admin_client: Client, flagged, funded_account: Account):
    run = flagged()

    response = resolve(admin_client, run, note="   ")

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not AuditResolution.objects.exists()
    run.refresh_from_db()
    assert run.money_state == Run.MoneyState.AUDIT_REQUIRED
    assert money(funded_account) == (10 * USD, 0, RESERVED)


def test_refund_resolution_voids_the_reservation_and_records_who_when_and_why(
    admin_client: Client, operator, flagged, funded_account: Account
):
    run = flagged()

    response = resolve(admin_client, run, note="receipt names another tenant; refunding")

    assert response.status_code == 302
    resolution = AuditResolution.objects.get()
    assert (resolution.run_id, resolution.actor, resolution.resulting_money_state) == (
        run.id,
        operator.username,
        Run.MoneyState.REFUNDED,
    )
    assert resolution.note == "receipt names another tenant; refunding"
    assert resolution.created_at is not None
    run.refresh_from_db()
    assert (run.status, run.money_state, run.actual_cost_micros) == ("FAILED", "REFUNDED", 0)
    assert finalizations(run) == [("VOID", RESERVED)]
    assert money(funded_account) == (10 * USD, 0, 0)
    assert audit() == []
    call_command("dpp_audit")  # exits 0: no SystemExit


def test_settle_resolution_charges_through_the_ledger_with_an_optional_adjustment(
    admin_client: Client, operator, flagged, funded_account: Account
):
    run = flagged()

    response = resolve(
        admin_client,
        run,
        resolution="SETTLED",
        charge_usd="0.009000",
        adjust_usd="0.001000",
        note="the result is valid; goodwill credit for the delay",
    )

    assert response.status_code == 302
    resolution = AuditResolution.objects.get()
    assert (resolution.resulting_money_state, resolution.charge_micros) == ("SETTLED", 9_000)
    assert resolution.adjust_micros == 1_000
    assert finalizations(run) == [("SETTLE", 9_000)]
    adjust = Transfer.objects.get(kind="ADJUST")
    assert (adjust.amount_micros, adjust.actor) == (1_000, operator.username)
    assert str(run.id) in adjust.reason
    assert money(funded_account) == (10 * USD + 1_000, 9_000, 0)
    run.refresh_from_db()
    assert (run.money_state, run.actual_cost_micros) == ("SETTLED", 9_000)
    assert audit() == []


def test_resolving_a_run_the_audit_flagged_repairs_it_from_the_ledger(
    admin_client: Client, finished
):
    run = finished()
    price = run.actual_cost_micros
    Run.objects.filter(id=run.id).update(actual_cost_micros=1)  # a hand edit
    tasks.audit_ledger()
    run.refresh_from_db()
    assert run.money_state == Run.MoneyState.AUDIT_REQUIRED
    assert audit() != []

    resolve(admin_client, run, note="actual_cost edited by hand; the SETTLE is right")

    run.refresh_from_db()
    assert (run.status, run.money_state, run.actual_cost_micros) == ("COMPLETED", "SETTLED", price)
    assert finalizations(run) == [("SETTLE", price)]  # no second finalization
    assert audit() == []


def test_charge_above_the_reservation_resolves_nothing(admin_client: Client, flagged):
    run = flagged()

    response = resolve(admin_client, run, resolution="SETTLED", charge_usd="1.000000", note="x")

    assert response.status_code == 302
    assert not AuditResolution.objects.exists()
    run.refresh_from_db()
    assert run.money_state == Run.MoneyState.AUDIT_REQUIRED
    assert finalizations(run) == []


def test_only_audit_required_runs_are_resolved(admin_client: Client, flagged, finished):
    run, done = flagged(), finished()

    admin_client.post(
        CHANGELIST,
        {
            "action": "resolve_audit",
            "_selected_action": [str(run.id), str(done.id)],
            "apply": "1",
            "resolution": "REFUNDED",
            "charge_usd": "0",
            "adjust_usd": "0",
            "note": "refund",
        },
    )

    assert list(AuditResolution.objects.values_list("run_id", flat=True)) == [run.id]
    done.refresh_from_db()
    assert done.money_state == Run.MoneyState.SETTLED


def test_a_run_resolved_by_someone_else_meanwhile_keeps_their_resolution(
    admin_client: Client, flagged, funded_account: Account
):
    run = flagged()
    form = admin_client.post(
        CHANGELIST, {"action": "resolve_audit", "_selected_action": [str(run.id)]}
    )
    assert form.status_code == 200
    # A colleague refunds it while this operator's form is open...
    services.resolve_audit(run=run, actor="colleague", note="refunded", resolution="REFUNDED")

    response = resolve(
        admin_client, run, resolution="SETTLED", charge_usd="0.009000", note="settling", follow=True
    )

    assert response.status_code == 200
    assert "Resolved 0 run(s)." in response.content.decode()
    assert list(AuditResolution.objects.values_list("actor", flat=True)) == ["colleague"]
    assert finalizations(run) == [("VOID", RESERVED)]
    with pytest.raises(services.AlreadyResolved):
        services.resolve_audit(run=run, actor="late", note="again", resolution="REFUNDED")
