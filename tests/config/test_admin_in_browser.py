"""The admin as an operator uses it: a real browser (headless Chromium, tests/browser.py)
against the test server, clicking through top-ups, the overflow refusal, audit
resolutions, API keys and the kill switch, and checking that the lists fit the screen."""

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from selenium.webdriver.support.ui import Select

from billing import services as billing
from billing.models import Account, Transfer
from dpp import kill_switch
from dpp.models import ApiKey, PlatformSwitchChange
from reaper import services as reaper
from reaper import tasks
from runs import execution, lifecycle
from runs.models import Run
from tests.billing.helpers import fill_to_the_maximum_balance
from tests.browser import Page
from tests.factories import USD, AccountFactory, issue_token
from tests.payloads import run_body
from tests.reaper.helpers import lease, receipt_for, rewrite_metadata

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # pragma: allowlist secret


def api(base_url: str, method: str, path: str, token: str, body: dict | None = None):
    """(status, JSON body) of one API request to the test server."""
    request = urllib.request.Request(
        base_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def operator_page(page: Page, settings) -> Page:
    """The browser, logged into the admin through its login form as "oncall"."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed
    get_user_model().objects.create_superuser("oncall", "oncall@example.com", PASSWORD)
    page.log_in("oncall", PASSWORD)
    assert page.path == "/admin/"
    return page


@pytest.fixture
def flag(make_run, local_results: Path, settings):
    """``flag(valid=False)``: an AUDIT_REQUIRED run whose receipt names another tenant,
    or (valid=True) whose valid receipt was stored before the ledger audit flagged it."""

    def make(*, valid: bool = False) -> Run:
        run = make_run()
        if valid:
            receipt_for(lease(run), charge_micros=9_000)
            assert lifecycle.flag_for_audit(run_id=run.id, detail="invariant 3: test")
        else:
            settings.DPP_LEASE_TTL_SEC = 0
            receipt_for(lease(run), charge_micros=9_000)
            rewrite_metadata(local_results, run, tenant_id=str(uuid.uuid4()))
            assert tasks.expire_leases() == {"audit_required": 1}
            settings.DPP_LEASE_TTL_SEC = 120
        run.refresh_from_db()
        return run

    return make


def test_a_top_up_from_the_account_page(operator_page: Page, funded_account: Account):
    page = operator_page
    change = reverse("admin:billing_account_change", args=[funded_account.pk])
    page.open(change).follow(page.find("#top-up-link"))

    assert page.text("#topup-tenant") == funded_account.tenant.name
    assert "available (USD) 10.000000" in page.text("#topup-balance")

    page.fill(amount_usd="2.50", reason="wire 2026-12-01").submit("#form-submit")

    assert page.path == change
    assert page.messages("success") == [
        f"Topped up {funded_account.tenant.name} by $2.500000 "
        f"(transfer {Transfer.objects.get(reason='wire 2026-12-01').pk}); "
        "available now $12.500000."
    ]
    assert Transfer.objects.get(reason="wire 2026-12-01").actor == "oncall"

    page.follow(page.find("#top-up-link"))
    page.fill(amount_usd="25000", reason="annual prepayment").submit("#form-submit")

    assert "$25000.000000 is a large top-up: check this box to confirm it." in page.text(
        "#top-up-form"
    )
    assert not Transfer.objects.filter(reason="annual prepayment").exists()

    page.tick("#id_confirm_large").submit("#form-submit")

    assert page.path == change
    assert Transfer.objects.get(reason="annual prepayment").amount_micros == 25_000 * USD


def test_the_overflow_and_a_balance_above_the_maximum_are_refused(
    operator_page: Page, funded_account: Account
):
    page = operator_page
    top_up = reverse("admin:billing_account_top_up", args=[funded_account.pk])
    page.open(top_up).fill(amount_usd="9000000000000", reason="typo").tick("#id_confirm_large")
    page.submit("#form-submit")

    assert "top-up may move at most $1000000.000000" in page.text("#top-up-form")
    funded_account.refresh_from_db()
    assert funded_account.credits_posted == 10 * USD

    full = AccountFactory()
    fill_to_the_maximum_balance(full)
    page.open(reverse("admin:billing_account_top_up", args=[full.pk]))
    page.fill(amount_usd="1.00", reason="one dollar more").submit("#form-submit")

    (error,) = page.messages("error")
    assert "above the maximum of $1000000000.000000; nothing was credited." in error
    assert page.find('[name="amount_usd"]').get_attribute("value") == "1.00"
    assert page.find('[name="reason"]').get_attribute("value") == "one dollar more"
    full.refresh_from_db()
    assert full.credits_posted == 1_000_000_000 * USD


def test_resolving_audits_with_each_outcome(operator_page: Page, flag):
    page = operator_page
    failing, completing, refunding = flag(), flag(valid=True), flag()
    page.open("/admin/")
    page.follow(page.find("#audit-required-count a"))
    assert page.path == f"{reverse('admin:runs_run_changelist')}?audit=required"

    page.open(reverse("admin:runs_run_change", args=[failing.id]))
    assert "is not the run's tenant" in page.text()
    page.follow(page.find("#resolve-link"))
    page.find('input[name="outcome"][value="fail"]').click()
    page.fill(fee_usd="0.009", note="no valid result: the minimum fee").submit("#form-submit")

    (error,) = page.messages("error")
    assert "A failed run is charged between $0.000000 and its minimum fee of $0.005000" in error
    assert page.find('[name="note"]').get_attribute("value") == "no valid result: the minimum fee"
    assert page.find('input[name="outcome"][value="fail"]').is_selected()

    page.fill(fee_usd="0.005").submit("#form-submit")

    assert page.path == reverse("admin:runs_run_change", args=[failing.id])
    assert (
        "fail, charging at most the minimum fee, SETTLED, charged $0.005000"
        in (page.messages("success")[0])
    )

    page.open(reverse("admin:runs_run_resolve", args=[completing.id]))
    assert page.text("#verified-charge") == "0.009000"
    page.find('input[name="outcome"][value="complete"]').click()
    page.fill(note="the receipt verifies").submit("#form-submit")
    assert "charged $0.009000" in page.messages("success")[0]

    page.open(reverse("admin:runs_run_resolve", args=[refunding.id]))
    page.find('input[name="outcome"][value="refund"]').click()
    page.fill(note="cannot tell: refunding").submit("#form-submit")
    assert "REFUNDED, charged $0.000000" in page.messages("success")[0]

    runs = {run.id: run for run in Run.objects.all()}
    assert (runs[failing.id].status, runs[failing.id].actual_cost_micros) == ("FAILED", 5_000)
    assert (runs[completing.id].status, runs[completing.id].actual_cost_micros) == (
        "COMPLETED",
        9_000,
    )
    assert runs[refunding.id].money_state == "REFUNDED"
    page.open("/admin/")
    assert "No run is waiting for an audit resolution." in page.text("#audit-required-count")


def test_an_api_key_is_shown_once_and_revoked(
    operator_page: Page, funded_account: Account, live_server
):
    page = operator_page
    page.open(reverse("admin:dpp_apikey_add"))
    Select(page.find('select[name="tenant"]')).select_by_value(str(funded_account.tenant_id))
    page.fill(label="ci pipeline").submit('input[name="_save"]')

    token = page.text("#dpp-api-key")
    assert token.startswith("dpp_")
    assert api(live_server.url, "GET", "/v1/budget", token)[0] == 200
    key = ApiKey.objects.get(label="ci pipeline")
    page.open(reverse("admin:dpp_apikey_change", args=[key.pk]))
    assert token not in page.driver.page_source  # shown once, never again

    page.open(reverse("admin:dpp_apikey_changelist"))
    page.tick(f'input[name="_selected_action"][value="{key.pk}"]')
    Select(page.find('select[name="action"]')).select_by_value("revoke")
    page.submit('button[name="index"]')

    assert page.messages("success") == ["Revoked 1 API key(s)."]
    status, problem = api(live_server.url, "GET", "/v1/budget", token)
    assert (status, problem["type"]) == (401, "/problems/unauthenticated")


def test_the_kill_switch_pauses_with_a_banner_and_a_single_history_entry(
    operator_page: Page, funded_account: Account, live_server
):
    page = operator_page
    token = issue_token(funded_account.tenant)
    page.open(reverse("admin:dpp_platformswitch_changelist"))
    assert page.find_all("#paused-banner") == []

    page.tick("#id_submissions_paused").fill(change_reason="incident 7: bad deploy")
    page.submit('input[name="_save"]')

    assert "incident 7: bad deploy" in page.text("#paused-banner")
    status, problem = api(live_server.url, "POST", "/v1/runs", token, run_body())
    assert (status, problem["type"]) == (503, "/problems/submissions-paused")

    page.open(reverse("admin:dpp_platformswitch_changelist"))
    page.fill(change_reason="saved again").submit('input[name="_save"]')

    assert page.messages("warning") == [
        "Submissions were already paused: nothing changed, and no history entry was written."
    ]
    assert PlatformSwitchChange.objects.count() == 1

    page.find("#id_submissions_paused").click()
    page.fill(change_reason="incident 7 closed").submit('input[name="_save"]')

    assert page.find_all("#paused-banner") == []
    assert api(live_server.url, "POST", "/v1/runs", token, run_body())[0] == 202
    assert PlatformSwitchChange.objects.count() == 2


def test_every_list_fits_a_1400_pixel_screen(
    operator_page: Page, flag, make_run, funded_account: Account
):
    flagged = flag()
    execution.execute_run(run_id=make_run().id)
    reaper.resolve_audit(run=flagged, actor="oncall", note="refunded", outcome="refund")
    billing.adjust(account=funded_account, amount_micros=-USD, reason="correction", actor="oncall")
    flag()
    issue_token(funded_account.tenant, label="a rather long label for a key")
    kill_switch.submissions_pause(actor="oncall", reason="a reason as long as operators write them")
    kill_switch.submissions_resume(actor="oncall", reason="resumed")

    for model in (
        "runs_run",
        "billing_account",
        "billing_transfer",
        "billing_plan",
        "dpp_tenant",
        "dpp_apikey",
        "reaper_auditresolution",
        "dpp_platformswitchchange",
    ):
        operator_page.open(reverse(f"admin:{model}_changelist"))
        assert operator_page.find_all("#result_list tbody tr"), model
        assert operator_page.horizontal_overflow() <= 0, model
        assert operator_page.horizontal_overflow("#changelist .results") <= 0, model
