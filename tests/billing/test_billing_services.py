import json

import pytest
from django.db import transaction
from opentelemetry import trace

from billing import services
from billing.errors import (
    AccountNotFound,
    ChargeExceedsReservation,
    InsufficientBudget,
    PlanNotFound,
    ReasonRequired,
    ReservationExists,
    ReservationNotFound,
)
from billing.models import Account, Transfer
from billing.money import InvalidAmount
from billing.selectors import balances_from_transfers
from billing.services import Finalization
from dpp.models import Tenant
from dpp.problems import to_response
from reaper.audit import audit
from tests.billing.helpers import USD, new_run, record_outcome, reserved_run
from tests.factories import RunFactory, TenantFactory, seeded_plan

pytestmark = pytest.mark.django_db


def columns(account: Account) -> tuple[int, int, int]:
    account.refresh_from_db()
    return account.credits_posted, account.debits_posted, account.debits_pending


def test_top_up_credits_the_account_and_records_the_transfer(funded_account):
    account = funded_account(usd=0)
    transfer = services.top_up(
        account=account, amount_micros=2_500_000, reason="invoice 7", actor="ops"
    )
    assert (transfer.kind, transfer.amount_micros) == (Transfer.Kind.TOPUP, 2_500_000)
    assert (transfer.reason, transfer.actor) == ("invoice 7", "ops")
    assert columns(account) == (2_500_000, 0, 0)


@pytest.mark.parametrize("amount", [0, -1, 1.0, True])
def test_top_up_refuses_non_positive_or_non_integer_amounts(funded_account, amount):
    account = funded_account(usd=0)
    with pytest.raises(InvalidAmount):
        services.top_up(account=account, amount_micros=amount)
    assert not Transfer.objects.filter(account=account).exists()


def test_reserve_moves_available_to_pending(funded_account):
    account = funded_account(usd=10)
    run = new_run(account, 3 * USD)
    transfer = services.reserve(run=run, amount_micros=3 * USD)
    assert (transfer.kind, transfer.run_id, transfer.amount_micros) == ("RESERVE", run.id, 3 * USD)
    assert columns(account) == (10 * USD, 0, 3 * USD)
    assert account.available_micros == 7 * USD


def test_reserve_of_exactly_the_available_budget_succeeds(funded_account):
    account = funded_account(usd=2)
    reserved_run(account, 2 * USD)
    assert account.__class__.objects.get(pk=account.pk).available_micros == 0


def test_insufficient_budget_writes_nothing_and_says_why(funded_account):
    account = funded_account(usd=0)
    services.top_up(account=account, amount_micros=400_000)
    run = new_run(account, USD)
    with pytest.raises(InsufficientBudget) as caught:
        services.reserve(run=run, amount_micros=USD)
    exc = caught.value
    assert str(exc) == "Available budget $0.400000 does not cover the reservation of $1.000000."
    assert exc.extensions == {"requested_usd": "1.000000", "available_usd": "0.400000"}
    assert exc.field_errors == [("/reservation/max_cost_usd", str(exc))]
    assert (exc.requested_micros, exc.available_micros) == (USD, 400_000)
    assert columns(account) == (400_000, 0, 0)
    assert not Transfer.objects.filter(run=run).exists()


def test_insufficient_budget_renders_as_a_402_problem(funded_account):
    account = funded_account(usd=0)
    with pytest.raises(InsufficientBudget) as caught:
        services.reserve(run=new_run(account, USD), amount_micros=USD)
    response = to_response(caught.value)
    body = json.loads(response.content)
    assert response.status_code == 402
    assert body["type"] == "/problems/insufficient-budget"
    assert body["detail"] == str(caught.value)
    assert body["available_usd"] == "0.000000"
    assert body["requested_usd"] == "1.000000"
    assert body["errors"] == [{"pointer": "/reservation/max_cost_usd", "detail": str(caught.value)}]


def test_reserve_amount_must_match_the_run(funded_account):
    account = funded_account(usd=10)
    run = new_run(account, USD)
    with pytest.raises(InvalidAmount):
        services.reserve(run=run, amount_micros=2 * USD)
    assert columns(account) == (10 * USD, 0, 0)


def test_reserve_without_an_account_is_account_not_found(db):
    run = RunFactory()
    with pytest.raises(AccountNotFound):
        services.reserve(run=run, amount_micros=run.reserved_micros)


def test_second_reserve_for_a_run_is_refused_and_rolled_back(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    with pytest.raises(ReservationExists):
        services.reserve(run=run, amount_micros=USD)
    assert columns(account) == (10 * USD, 0, USD)
    assert Transfer.objects.filter(run=run).count() == 1


def test_reserve_rolls_back_with_the_callers_transaction(funded_account):
    account = funded_account(usd=10)

    class Abort(Exception):
        pass

    @transaction.atomic
    def submit_then_fail() -> None:
        services.reserve(run=new_run(account, USD), amount_micros=USD)
        raise Abort

    with pytest.raises(Abort):
        submit_then_fail()
    assert columns(account) == (10 * USD, 0, 0)
    assert not Transfer.objects.filter(kind="RESERVE", account=account).exists()


def test_settle_posts_the_charge_and_releases_the_whole_reservation(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, 2 * USD)
    settled = services.settle(run=run, charge_micros=300_000, outcome="FAILED")
    assert settled.result == Finalization.POSTED
    transfer = settled.transfer
    assert (transfer.kind, transfer.amount_micros, transfer.run_id) == ("SETTLE", 300_000, run.id)
    assert columns(account) == (10 * USD, 300_000, 0)
    assert account.available_micros == 10 * USD - 300_000


@pytest.mark.parametrize("charge", [0, 2 * USD])
def test_settle_accepts_charges_at_both_ends(funded_account, charge):
    account = funded_account(usd=10)
    run = reserved_run(account, 2 * USD)
    services.settle(run=run, charge_micros=charge, outcome="FAILED")
    assert columns(account) == (10 * USD, charge, 0)


def test_settle_twice_returns_the_first_outcome_and_moves_nothing(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    first = services.settle(run=run, charge_micros=250_000, outcome="FAILED")
    again = services.settle(run=run, charge_micros=900_000, outcome="FAILED")
    assert (first.result, again.result) == (Finalization.POSTED, Finalization.ALREADY_POSTED)
    assert again.transfer.pk == first.transfer.pk
    assert again.charged_micros == 250_000
    assert columns(account) == (10 * USD, 250_000, 0)
    assert Transfer.objects.filter(run=run).count() == 2


def test_void_after_settle_returns_the_settle(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    settled = services.settle(run=run, charge_micros=100_000, outcome="FAILED")
    voided = services.void(run=run, outcome="FAILED")
    assert voided.result == Finalization.ALREADY_POSTED
    assert voided.transfer.pk == settled.transfer.pk
    assert columns(account) == (10 * USD, 100_000, 0)


def test_void_releases_everything_and_is_idempotent(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, 3 * USD)
    voided = services.void(run=run, outcome="FAILED")
    assert voided.result == Finalization.POSTED
    assert (voided.transfer.kind, voided.transfer.amount_micros) == ("VOID", 3 * USD)
    assert voided.charged_micros == 0
    for again in (
        services.void(run=run, outcome="FAILED"),
        services.settle(run=run, charge_micros=USD, outcome="FAILED"),
    ):
        assert again.result == Finalization.ALREADY_VOIDED
        assert again.transfer.pk == voided.transfer.pk
    assert columns(account) == (10 * USD, 0, 0)


def test_charge_above_the_reservation_is_refused(funded_account):
    account = funded_account(usd=10)
    run = reserved_run(account, USD)
    with pytest.raises(ChargeExceedsReservation):
        services.settle(run=run, charge_micros=USD + 1, outcome="FAILED")
    with pytest.raises(InvalidAmount):
        services.settle(run=run, charge_micros=-1, outcome="FAILED")
    assert columns(account) == (10 * USD, 0, USD)
    assert not Transfer.objects.filter(run=run, kind__in=["SETTLE", "VOID"]).exists()


def test_settle_or_void_without_a_reservation_is_an_error(funded_account):
    run = new_run(funded_account(usd=10), USD)
    with pytest.raises(ReservationNotFound):
        services.settle(run=run, charge_micros=0, outcome="FAILED")
    with pytest.raises(ReservationNotFound):
        services.void(run=run, outcome="FAILED")


def test_positive_adjustment_credits(funded_account):
    account = funded_account(usd=1)
    transfer = services.adjust(
        account=account, amount_micros=500_000, reason="goodwill", actor="alice"
    )
    assert (transfer.kind, transfer.amount_micros, transfer.actor) == ("ADJUST", 500_000, "alice")
    assert columns(account) == (1_500_000, 0, 0)


def test_negative_adjustment_posts_a_debit_but_never_overdraws(funded_account):
    account = funded_account(usd=2)
    reserved_run(account, USD)
    services.adjust(account=account, amount_micros=-600_000, reason="refund reversal", actor="a")
    assert columns(account) == (2 * USD, 600_000, USD)
    with pytest.raises(InsufficientBudget) as caught:
        services.adjust(account=account, amount_micros=-400_001, reason="too much", actor="a")
    assert caught.value.available_micros == 400_000
    assert caught.value.field_errors == []
    assert columns(account) == (2 * USD, 600_000, USD)
    services.adjust(account=account, amount_micros=-400_000, reason="exactly", actor="a")
    assert columns(account) == (2 * USD, USD, USD)


def test_adjustment_needs_an_amount_and_a_reason(funded_account):
    account = funded_account(usd=1)
    with pytest.raises(InvalidAmount):
        services.adjust(account=account, amount_micros=0, reason="x", actor="a")
    with pytest.raises(ReasonRequired):
        services.adjust(account=account, amount_micros=1, reason="  ", actor="a")


def test_transfers_carry_the_trace_id_of_the_active_span(funded_account):
    account = funded_account(usd=0)
    with trace.get_tracer("test").start_as_current_span("top-up") as span:
        transfer = services.top_up(account=account, amount_micros=1)
    assert transfer.trace_id == f"{span.get_span_context().trace_id:032x}"
    assert services.top_up(account=account, amount_micros=1).trace_id == ""


def test_account_open_uses_the_default_plan_and_is_idempotent(plans, settings):
    settings.DPP_DEFAULT_PLAN = "free"
    tenant = TenantFactory()
    account = services.account_open(tenant=tenant)
    assert account.plan.name == "free"
    again = services.account_open(tenant=tenant, plan=seeded_plan("pilot"))
    assert again.pk == account.pk
    assert again.plan.name == "free"


def test_account_open_with_an_unknown_default_plan_fails_clearly(db, settings):
    settings.DPP_DEFAULT_PLAN = "platinum"
    with pytest.raises(PlanNotFound):
        services.account_open(tenant=TenantFactory())


def test_tenant_open_creates_tenant_account_and_opening_top_up(plans):
    account = services.tenant_open(
        name="acme", plan_name="free", budget_micros=5 * USD, actor="ops"
    )
    assert account.tenant.name == "acme"
    assert account.plan.name == "free"
    assert account.credits_posted == 5 * USD
    topup = Transfer.objects.get(account=account)
    assert (topup.kind, topup.actor) == ("TOPUP", "ops")


def test_tenant_open_with_a_bad_plan_leaves_nothing_behind(db):
    with pytest.raises(PlanNotFound):
        services.tenant_open(name="ghost", plan_name="nope", budget_micros=USD)
    assert not Tenant.objects.filter(name="ghost").exists()


def test_balances_recomputed_from_transfers_match_the_columns(funded_account):
    account = funded_account(usd=10)
    settled = reserved_run(account, 2 * USD)
    record_outcome(
        settled, services.settle(run=settled, charge_micros=700_000, outcome="FAILED").transfer
    )
    voided = reserved_run(account, USD)
    record_outcome(voided, services.void(run=voided, outcome="FAILED").transfer)
    reserved_run(account, 3 * USD)
    services.adjust(account=account, amount_micros=-100_000, reason="fix", actor="a")
    services.adjust(account=account, amount_micros=50_000, reason="fix", actor="a")
    assert balances_from_transfers(account=account) == {
        "credits_posted": 10_050_000,
        "debits_posted": 800_000,
        "debits_pending": 3 * USD,
    }
    assert columns(account) == (10_050_000, 800_000, 3 * USD)
    assert audit() == []
