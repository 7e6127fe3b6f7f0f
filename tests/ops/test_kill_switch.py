"""The kill switch (issue 9, item 5): operators pause new runs from the admin, the
command line or the environment; a paused submit reserves nothing and leaves its
idempotency key unused; everything already accepted carries on."""

import logging
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client, TestCase
from django.utils import timezone

from billing.models import Account, Transfer
from dpp import kill_switch
from dpp.errors import SwitchChangeRejected
from dpp.models import PlatformSwitch, PlatformSwitchChange
from reaper.services import expire_leases
from runs import execution, lifecycle
from runs.models import Run
from runs.receipts import write_receipt
from tests.factories import issue_token
from tests.payloads import run_body

PROBLEM = "application/problem+json"
KEY = "kill-switch-key-0001"


def submit(client, body=None, key=KEY):
    return client.post("/v1/runs", body or run_body(), format="json", HTTP_IDEMPOTENCY_KEY=key)


def ledger(account: Account) -> tuple:
    account.refresh_from_db()
    return (
        account.credits_posted,
        account.debits_posted,
        account.debits_pending,
        Run.objects.filter(tenant=account.tenant).count(),
        Transfer.objects.filter(account=account).count(),
    )


def assert_paused_problem(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/submissions-paused"
    assert problem["status"] == 503
    assert problem["instance"] == f"urn:dpp:request:{response['X-Request-ID']}"
    assert int(response["Retry-After"]) > 0


def committed():
    """Runs the on-commit work of a change (cache invalidation, the log line), which the
    test's own transaction would otherwise hold back."""
    return TestCase.captureOnCommitCallbacks(execute=True)


@pytest.fixture
def client(api_client, funded_account):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(funded_account.tenant)}")
    return api_client


@pytest.fixture
def browser(db, settings) -> Client:
    """An operator (superuser "oncall") logged into the admin."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed
    user = get_user_model().objects.create_superuser(
        "oncall",
        "oncall@example.com",
        "pw-for-tests",  # pragma: allowlist secret
    )
    browser = Client()
    browser.force_login(user)
    return browser


def pause(reason: str = "incident 42: settlements look wrong") -> PlatformSwitchChange:
    with committed():
        return kill_switch.submissions_pause(actor="oncall", reason=reason)


def resume(reason: str = "incident 42 closed", actor: str = "oncall") -> PlatformSwitchChange:
    with committed():
        return kill_switch.submissions_resume(actor=actor, reason=reason)


def test_a_paused_submit_answers_503_and_reserves_nothing(client, funded_account):
    pause()
    before = ledger(funded_account)

    response = submit(client)

    assert_paused_problem(response)
    assert response["Retry-After"] == "60"
    assert ledger(funded_account) == before


def test_the_idempotency_key_of_a_paused_submit_is_not_consumed(client, funded_account):
    pause()
    assert submit(client).status_code == 503
    resume()

    response = submit(client)

    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response
    assert Run.objects.get().idempotency_key == KEY


def test_a_replay_while_paused_is_also_refused_and_answers_again_after_resume(
    client, funded_account
):
    first = submit(client)
    pause()
    before = ledger(funded_account)

    assert_paused_problem(submit(client))
    assert ledger(funded_account) == before

    resume("all clear")
    replay = submit(client)
    assert replay.status_code == 202
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["run_id"] == first.json()["run_id"]


def test_the_environment_switch_pauses_whatever_the_admin_switch_says(
    client, funded_account, settings
):
    settings.DPP_SUBMISSIONS_PAUSED = True
    settings.DPP_SUBMISSIONS_PAUSED_RETRY_AFTER_SEC = 300
    before = ledger(funded_account)

    response = submit(client)

    assert_paused_problem(response)
    assert response["Retry-After"] == "300"
    assert ledger(funded_account) == before
    assert not PlatformSwitch.objects.filter(submissions_paused=True).exists()
    assert kill_switch.switch_state().describe() == "PAUSED by DPP_SUBMISSIONS_PAUSED"

    settings.DPP_SUBMISSIONS_PAUSED = False
    assert submit(client).status_code == 202


def test_polls_listings_budget_and_result_downloads_keep_working_while_paused(
    client, make_run, local_results
):
    run = make_run()
    execution.execute_run(run_id=run.id)
    pause()

    detail = client.get(f"/v1/runs/{run.id}")
    listing = client.get("/v1/runs")
    budget = client.get("/v1/budget")
    download = client.get(detail.json()["result"]["download_url"])

    assert detail.status_code == 200
    assert detail.json()["status"] == "COMPLETED"
    assert listing.status_code == 200
    assert [r["run_id"] for r in listing.json()["results"]] == [str(run.id)]
    assert budget.status_code == 200
    assert download.status_code == 200
    assert b"".join(download.streaming_content)


def test_workers_finish_queued_runs_while_paused(make_run):
    run = make_run()
    pause()

    execution.execute_run(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.money_state) == (Run.Status.COMPLETED, Run.MoneyState.SETTLED)


def test_the_reaper_rolls_forward_an_expired_lease_while_paused(make_run):
    run = make_run()
    lease = lifecycle.claim(run_id=run.id)
    write_receipt(run=lease.run, lease_token=lease.token, body=b"{}", charge_micros=7_000)
    pause()

    scan = expire_leases(now=timezone.now() + timedelta(hours=1))

    run.refresh_from_db()
    assert scan.actions["rolled_forward"] == 1
    assert (run.status, run.actual_cost_micros) == (Run.Status.COMPLETED, 7_000)


def test_flipping_in_the_admin_records_who_and_why(browser, client, caplog):
    assert browser.get("/admin/dpp/platformswitch/").status_code == 302
    page = browser.get("/admin/dpp/platformswitch/1/change/")
    assert page.status_code == 200
    assert 'name="change_reason"' in page.content.decode()

    with caplog.at_level(logging.WARNING, logger="dpp.kill_switch"), committed():
        response = browser.post(
            "/admin/dpp/platformswitch/1/change/",
            {"submissions_paused": "on", "change_reason": "bad deploy, rolling back"},
        )

    assert response.status_code == 302
    switch = PlatformSwitch.objects.get()
    assert switch.submissions_paused
    assert (switch.changed_by, switch.reason) == ("oncall", "bad deploy, rolling back")
    change = PlatformSwitchChange.objects.get()
    assert (change.changed_by, change.source, change.was_paused) == ("oncall", "admin", False)
    assert change.reason == "bad deploy, rolling back"
    (record,) = [r for r in caplog.records if r.getMessage() == "submissions paused"]
    assert (record.actor, record.reason, record.source) == (
        "oncall",
        "bad deploy, rolling back",
        "admin",
    )
    assert LogEntry.objects.filter(user__username="oncall").exists()
    assert_paused_problem(submit(client))


def test_the_admin_refuses_a_change_without_a_reason(browser):
    browser.get("/admin/dpp/platformswitch/")

    response = browser.post(
        "/admin/dpp/platformswitch/1/change/", {"submissions_paused": "on", "change_reason": ""}
    )

    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not PlatformSwitch.objects.get().submissions_paused
    assert not PlatformSwitchChange.objects.exists()


def test_saving_the_switch_unchanged_writes_no_second_history_entry(browser, caplog):
    browser.get("/admin/dpp/platformswitch/")
    form = {"submissions_paused": "on", "change_reason": "bad deploy, rolling back"}
    with committed():
        first = browser.post("/admin/dpp/platformswitch/1/change/", form, follow=True)
    assert "changed successfully" in first.content.decode()
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="dpp.kill_switch"), committed():
        again = browser.post(
            "/admin/dpp/platformswitch/1/change/",
            {**form, "change_reason": "saved again"},
            follow=True,
        )

    page = again.content.decode()
    assert "Submissions were already paused: nothing changed" in page
    assert "changed successfully" not in page
    assert list(PlatformSwitchChange.objects.values_list("reason", flat=True)) == [
        "bad deploy, rolling back"
    ]
    assert PlatformSwitch.objects.get().reason == "bad deploy, rolling back"
    assert not [r for r in caplog.records if r.getMessage() == "submissions paused"]
    assert LogEntry.objects.filter(user__username="oncall").count() == 1


def test_every_admin_page_carries_a_banner_while_submissions_are_paused(browser):
    pages = ("/admin/", "/admin/runs/run/", "/admin/billing/account/")
    for url in pages:
        assert "paused-banner" not in browser.get(url).content.decode()

    pause("incident 42: settlements look wrong")

    for url in pages:
        page = browser.get(url).content.decode()
        assert 'id="paused-banner"' in page
        assert "PAUSED by oncall at " in page
        assert "incident 42: settlements look wrong" in page
    resume()
    assert "paused-banner" not in browser.get("/admin/").content.decode()


def test_every_flip_is_a_history_row_shown_in_the_admin(browser):
    pause("first")
    resume("second", actor="lead")
    pause("third")

    history = list(PlatformSwitchChange.objects.values_list("reason", "was_paused"))
    page = browser.get("/admin/dpp/platformswitch/1/change/").content.decode()

    assert history == [("third", False), ("second", True), ("first", False)]
    for reason in ("first", "second", "third"):
        assert reason in page


def test_the_switch_is_one_row_and_a_change_needs_an_actor_and_a_reason(db):
    with pytest.raises(SwitchChangeRejected):
        kill_switch.submissions_pause(actor="oncall", reason="  ")
    with pytest.raises(SwitchChangeRejected):
        kill_switch.submissions_pause(actor="", reason="why")
    kill_switch.platform_switch()
    with pytest.raises(IntegrityError), transaction.atomic():
        PlatformSwitch.objects.create(id=2)


def test_the_cached_flag_follows_a_flip_in_this_process_at_once(db):
    assert kill_switch.submissions_paused() is False
    assert cache.get(kill_switch.CACHE_KEY) == 0

    pause()
    assert kill_switch.submissions_paused() is True

    resume("ok")
    assert kill_switch.submissions_paused() is False


def test_a_flip_in_another_process_is_seen_once_the_cache_entry_expires(db):
    assert kill_switch.submissions_paused() is False
    # Another API process flips the row; this one still has "open" cached.
    PlatformSwitch.objects.create(submissions_paused=True, reason="elsewhere", changed_by="x")
    assert kill_switch.submissions_paused() is False
    assert 0 < kill_switch.CACHE_SECONDS <= 5
    if hasattr(cache, "ttl"):  # django-redis (make test): the entry really expires
        assert 0 < cache.ttl(kill_switch.CACHE_KEY) <= kill_switch.CACHE_SECONDS

    cache.delete(kill_switch.CACHE_KEY)  # what expiry does after CACHE_SECONDS
    assert kill_switch.submissions_paused() is True


def test_with_the_cache_down_the_switch_reads_the_database(client, funded_account, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    pause()
    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)
    monkeypatch.setattr(cache, "delete", down)

    assert kill_switch.submissions_paused() is True
    resume("ok")
    assert kill_switch.submissions_paused() is False


def test_the_command_line_records_nothing_when_the_switch_already_says_so(db, capsys):
    with committed():
        call_command("dpp_submissions", "pause", "--reason", "first", "--actor", "ops:kim")
        call_command("dpp_submissions", "pause", "--reason", "second", "--actor", "ops:lee")

    output = capsys.readouterr()
    assert "Submissions were already paused: nothing recorded." in output.err
    assert output.out.splitlines()[-1].startswith("PAUSED by ops:kim at ")
    assert list(PlatformSwitchChange.objects.values_list("reason", flat=True)) == ["first"]


def test_the_command_line_pauses_resumes_and_records_the_actor(db, capsys):
    with committed():
        call_command("dpp_submissions", "pause", "--reason", "db maintenance", "--actor", "ops:kim")
    assert capsys.readouterr().out.startswith("PAUSED by ops:kim at ")
    with committed():
        call_command("dpp_submissions", "resume", "--reason", "done", "--actor", "ops:kim")
    call_command("dpp_submissions", "status")

    assert capsys.readouterr().out.splitlines() == ["submissions open"] * 2
    assert list(PlatformSwitchChange.objects.values_list("source", "changed_by", "reason")) == [
        ("cli", "ops:kim", "done"),
        ("cli", "ops:kim", "db maintenance"),
    ]
