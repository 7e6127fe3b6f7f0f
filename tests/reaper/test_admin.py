"""The operators' admin for runs: AUDIT_REQUIRED first, the run's money, lease history and
receipt on its read-only page, and the resolve page whose outcomes are the promises made
to tenants — complete with the receipt's verified charge, fail with at most the minimum
fee, or refund in full — recorded with who decided and why, money moved only through
billing.services."""

import re
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from billing.models import Account, Transfer
from reaper import services, tasks
from reaper.audit import audit
from reaper.models import AuditResolution
from runs import execution, lifecycle
from runs.models import Run
from tests.factories import issue_token
from tests.reaper.helpers import (
    RESULT_BODY,
    finalizations,
    history,
    lease,
    money,
    receipt_for,
    rewrite_metadata,
)

USD = 1_000_000
RESERVED = 50_000  # make_run's default reservation
MINIMUM_FEE = 5_000  # its minimum fee
CHANGELIST = reverse("admin:runs_run_changelist")
RUN_LINK = re.compile(r'href="/admin/runs/run/([0-9a-f-]{36})/change/')
OTHER_TENANT = str(uuid.uuid4())


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(f"{CHANGELIST}{query}")
    assert response.status_code == 200
    return list(dict.fromkeys(RUN_LINK.findall(response.content.decode())))


def resolve_page(run: Run) -> str:
    return reverse("admin:runs_run_resolve", args=[run.id])


def resolve(client: Client, run: Run, **form: str):
    return client.post(resolve_page(run), form)


def unchanged(run: Run) -> tuple:
    """What a refused resolution must leave exactly as it was."""
    run.refresh_from_db()
    return (
        run.status,
        run.money_state,
        run.version,
        run.events.count(),
        finalizations(run),
        AuditResolution.objects.count(),
    )


def public_view(run: Run) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(run.tenant)}")
    response = client.get(f"/v1/runs/{run.id}")
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def flagged(make_run, local_results: Path, settings, django_capture_on_commit_callbacks):
    """A run whose receipt names another tenant: AUDIT_REQUIRED with its money reserved."""

    def make() -> Run:
        settings.DPP_LEASE_TTL_SEC = 0
        run = make_run()
        current = lease(run)
        receipt_for(current, charge_micros=9_000)
        rewrite_metadata(local_results, run, tenant_id=OTHER_TENANT)
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.expire_leases() == {"audit_required": 1}
        settings.DPP_LEASE_TTL_SEC = 120
        run.refresh_from_db()
        return run

    return make


@pytest.fixture
def flagged_with_a_valid_receipt(make_run):
    """A PROCESSING run whose valid receipt is stored, flagged before it was finalized."""

    def make() -> Run:
        run = make_run()
        receipt_for(lease(run), charge_micros=9_000)
        assert lifecycle.flag_for_audit(run_id=run.id, detail="invariant 3: test")
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


# --- Reading ----------------------------------------------------------------------------


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
    assert resolve_page(needs_audit) in admin_client.get(CHANGELIST).content.decode()


def test_run_page_shows_transfers_lease_history_and_the_receipts_verdict(
    admin_client: Client, flagged
):
    run = flagged()

    response = admin_client.get(reverse("admin:runs_run_change", args=[run.id]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Lease history" in page
    for kind in ("CLAIMED", "AUDIT_FLAGGED", "RESERVE", "-0.050000 hold"):
        assert kind in page
    assert str(run.lease_token) in page
    assert "Receipt in object storage" in page
    assert "<b>charge (USD)</b>: 0.009000" in page
    assert f"<b>verdict</b>: tenant-id &#x27;{OTHER_TENANT}&#x27; is not the run&#x27;s tenant" in (
        page
    )
    assert "Audit resolutions" in page
    assert resolve_page(run) in page  # the "Resolve audit…" button
    assert reverse("admin:billing_account_change", args=[run.tenant.account.pk]) in page


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


def test_runs_are_read_only_in_the_admin(admin_client: Client, finished):
    run = finished()
    before = (run.money_state, run.version, run.updated_at)
    change_url = reverse("admin:runs_run_change", args=[run.id])

    page = admin_client.get(change_url).content.decode()
    refused = admin_client.post(change_url, {"money_state": "REFUNDED", "_save": "Save"})

    assert 'name="_save"' not in page
    assert resolve_page(run) not in page  # nothing to resolve
    assert refused.status_code == 403
    assert refused["Content-Type"].startswith("text/html")
    assert admin_client.get(reverse("admin:runs_run_add")).status_code == 403
    assert admin_client.post(reverse("admin:runs_run_delete", args=[run.id])).status_code == 403
    run.refresh_from_db()
    assert (run.money_state, run.version, run.updated_at) == before


def test_the_admin_index_counts_the_runs_waiting_for_a_resolution(admin_client: Client, flagged):
    index = reverse("admin:index")
    assert "No run is waiting for an audit resolution." in admin_client.get(index).content.decode()

    flagged(), flagged()

    page = admin_client.get(index).content.decode()
    assert "2 runs waiting for an audit resolution" in page
    assert f'href="{CHANGELIST}?audit=required"' in page


# --- The resolve page -------------------------------------------------------------------


def test_the_resolve_page_offers_the_three_outcomes_with_none_chosen(admin_client: Client, flagged):
    run = flagged()

    page = admin_client.get(resolve_page(run)).content.decode()

    for outcome in ("complete", "fail", "refund"):
        assert f'name="outcome" value="{outcome}"' in page
    assert "checked" not in page
    assert "<strong>Complete</strong>: not possible, the receipt does not verify" in page
    assert "at most its minimum fee of 0.005000 USD" in page
    assert 'name="charge_usd"' not in page


def test_a_resolution_needs_an_outcome_and_a_note(admin_client: Client, flagged, funded_account):
    run = flagged()
    before = unchanged(run)

    response = resolve(admin_client, run, note="   ")

    assert response.status_code == 200
    assert response.content.decode().count("This field is required.") == 2
    assert unchanged(run) == before
    assert money(funded_account) == (10 * USD, 0, RESERVED)


def test_refund_voids_the_reservation_and_records_who_when_and_why(
    admin_client: Client, operator, flagged, funded_account: Account
):
    run = flagged()

    response = resolve(
        admin_client, run, outcome="refund", note="receipt names another tenant; refunding"
    )

    assert response.status_code == 302
    resolution = AuditResolution.objects.get()
    assert (resolution.run_id, resolution.actor, resolution.outcome) == (
        run.id,
        operator.username,
        "refund",
    )
    assert resolution.resulting_money_state == Run.MoneyState.REFUNDED
    assert resolution.note == "receipt names another tenant; refunding"
    assert resolution.created_at is not None
    run.refresh_from_db()
    assert (run.status, run.money_state, run.actual_cost_micros) == ("FAILED", "REFUNDED", 0)
    assert finalizations(run) == [("VOID", RESERVED)]
    assert money(funded_account) == (10 * USD, 0, 0)
    assert history(run)[-1] == ("RESOLVED", 1)
    assert audit() == []
    call_command("dpp_audit")  # exits 0: no SystemExit


def test_fail_charges_at_most_the_minimum_fee_and_keeps_the_public_reason(
    admin_client: Client, flagged, funded_account: Account
):
    run = flagged()

    response = resolve(
        admin_client, run, outcome="fail", fee_usd="0.005", note="no valid result; minimum fee"
    )

    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.money_state, run.actual_cost_micros) == (
        "FAILED",
        "SETTLED",
        MINIMUM_FEE,
    )
    assert finalizations(run) == [("SETTLE", MINIMUM_FEE)]
    assert money(funded_account) == (10 * USD, MINIMUM_FEE, 0)
    assert AuditResolution.objects.get().charge_micros == MINIMUM_FEE
    error = public_view(run)["error"]
    assert error == {"reason_code": "RECEIPT_INVALID", "detail": lifecycle.RECEIPT_INVALID_DETAIL}
    assert audit() == []


def test_a_fee_above_the_minimum_is_an_error_and_the_typed_form_is_kept(
    admin_client: Client, flagged
):
    run = flagged()
    before = unchanged(run)

    response = resolve(admin_client, run, outcome="fail", fee_usd="0.009", note="my typed note")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<li class="error">A failed run is charged between $0.000000 and its minimum fee' in page
    assert "my typed note</textarea>" in page
    assert 'value="0.009"' in page
    assert unchanged(run) == before


def test_complete_charges_the_receipts_verified_charge_and_delivers_the_result(
    admin_client: Client, flagged_with_a_valid_receipt, funded_account: Account
):
    run = flagged_with_a_valid_receipt()
    page = admin_client.get(resolve_page(run)).content.decode()
    assert '<strong id="verified-charge">0.009000</strong> USD' in page

    response = resolve(admin_client, run, outcome="complete", note="the receipt is valid")

    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.money_state, run.actual_cost_micros) == (
        "COMPLETED",
        "SETTLED",
        9_000,
    )
    assert (run.result_size, run.error_reason_code) == (len(RESULT_BODY), "")
    assert finalizations(run) == [("SETTLE", 9_000)]
    assert money(funded_account) == (10 * USD, 9_000, 0)
    body = public_view(run)
    assert body["status"] == "COMPLETED"
    assert body["result"]["sha256"] == run.result_sha256
    assert body["error"] is None
    assert audit() == []


def test_complete_is_refused_when_the_receipt_does_not_verify(admin_client: Client, flagged):
    run = flagged()
    before = unchanged(run)

    response = resolve(admin_client, run, outcome="complete", note="looks fine to me")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<li class="error">The receipt of run' in page
    assert "cannot complete the run: tenant-id" in page
    assert unchanged(run) == before


def test_a_fail_resolution_may_carry_a_credit_adjustment_in_usd(
    admin_client: Client, operator, flagged, funded_account: Account
):
    run = flagged()

    resolve(
        admin_client,
        run,
        outcome="fail",
        fee_usd="0",
        adjust_usd="0.001",
        note="goodwill credit for the delay",
    )

    resolution = AuditResolution.objects.get()
    assert (resolution.charge_micros, resolution.adjust_micros) == (0, 1_000)
    adjust = Transfer.objects.get(kind="ADJUST")
    assert (adjust.amount_micros, adjust.actor) == (1_000, operator.username)
    assert str(run.id) in adjust.reason
    assert money(funded_account) == (10 * USD + 1_000, 0, 0)
    page = admin_client.get(reverse("admin:reaper_auditresolution_changelist")).content.decode()
    assert "0.001000" in page
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

    resolve(admin_client, run, outcome="complete", note="actual_cost edited by hand")

    run.refresh_from_db()
    assert (run.status, run.money_state, run.actual_cost_micros) == ("COMPLETED", "SETTLED", price)
    assert finalizations(run) == [("SETTLE", price)]  # no second finalization
    assert audit() == []


def test_an_outcome_that_contradicts_the_ledger_is_refused(admin_client: Client, finished):
    run = finished()
    Run.objects.filter(id=run.id).update(actual_cost_micros=1)
    tasks.audit_ledger()
    before = unchanged(run)

    response = resolve(admin_client, run, outcome="refund", note="refund it")

    page = response.content.decode()
    assert '<li class="error">The ledger already charged $' in page
    assert "a transfer is never undone" in page
    assert unchanged(run) == before


def test_a_run_resolved_by_someone_else_meanwhile_says_who_and_when(
    admin_client: Client, flagged, funded_account: Account
):
    run = flagged()
    assert admin_client.get(resolve_page(run)).status_code == 200
    # A colleague refunds it while this operator's form is open...
    services.resolve_audit(run=run, actor="colleague", note="refunded", outcome="refund")
    resolved_at = AuditResolution.objects.get().created_at

    response = resolve(admin_client, run, outcome="fail", fee_usd="0.005", note="settling")

    assert response.status_code == 200
    page = response.content.decode()
    assert f"already resolved by colleague at {resolved_at:%Y-%m-%d %H:%M:%S} UTC" in page
    assert '<li class="error">' in page
    assert "settling</textarea>" in page
    assert list(AuditResolution.objects.values_list("actor", flat=True)) == ["colleague"]
    assert finalizations(run) == [("VOID", RESERVED)]
    with pytest.raises(services.AlreadyResolved, match="already resolved by colleague"):
        services.resolve_audit(run=run, actor="late", note="again", outcome="refund")


def test_a_run_that_needs_no_audit_cannot_be_resolved(admin_client: Client, finished):
    run = finished()
    before = unchanged(run)

    opened = admin_client.get(resolve_page(run)).content.decode()
    response = resolve(admin_client, run, outcome="refund", note="refund")

    assert "is not AUDIT_REQUIRED (its money is SETTLED)" in opened
    assert '<li class="error">Run' in response.content.decode()
    assert unchanged(run) == before


def test_audit_resolutions_are_read_only(admin_client: Client, flagged):
    run = flagged()
    services.resolve_audit(run=run, actor="colleague", note="refunded", outcome="refund")
    resolution = AuditResolution.objects.get()
    url = reverse("admin:reaper_auditresolution_change", args=[resolution.pk])

    assert 'name="_save"' not in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"note": "rewritten"}).status_code == 403
    resolution.refresh_from_db()
    assert resolution.note == "refunded"
