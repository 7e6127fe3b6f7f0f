import copy

import pytest

from billing import services as billing
from billing.models import Transfer
from runs.models import Run
from tests.factories import USD, AccountFactory
from tests.payloads import run_body
from tests.runs.conftest import ledger_snapshot

PROBLEM = "application/problem+json"


def submit(client, body, key="key-00000001", **headers):
    return client.post("/v1/runs", body, format="json", HTTP_IDEMPOTENCY_KEY=key, **headers)


def test_submit_reserves_max_cost_and_answers_a_receipt(funded_client, funded_account):
    response = submit(funded_client, run_body(max_cost_usd="0.050000"))

    assert response.status_code == 202
    receipt = response.json()
    run = Run.objects.get(id=receipt["run_id"])
    assert receipt["status"] == "QUEUED"
    assert receipt["poll"]["href"] == f"/v1/runs/{run.id}"
    assert receipt["poll"]["recommended_interval_ms"] > 0
    assert receipt["reservation"] == {"max_cost_usd": "0.050000", "minimum_fee_usd": "0.005000"}
    assert response["Location"] == f"/v1/runs/{run.id}"
    assert response["X-DPP-Cost-Reserved"] == "0.050000"
    assert response["X-DPP-Cost-Minimum-Fee"] == "0.005000"
    assert "Idempotent-Replayed" not in response
    assert run.money_state == Run.MoneyState.RESERVED
    reserve = Transfer.objects.get(run=run)
    assert (reserve.kind, reserve.amount_micros) == (Transfer.Kind.RESERVE, 50_000)
    funded_account.refresh_from_db()
    assert funded_account.debits_pending == 50_000
    assert funded_account.available_micros == 10 * USD - 50_000


def test_replay_with_same_key_and_body_returns_the_original_run(funded_client, funded_account):
    first = submit(funded_client, run_body())
    second = submit(funded_client, run_body())

    assert second.status_code == 202
    assert second.json()["run_id"] == first.json()["run_id"]
    assert second["Idempotent-Replayed"] == "true"
    assert Run.objects.count() == 1
    assert Transfer.objects.filter(kind=Transfer.Kind.RESERVE).count() == 1


def test_same_key_with_different_body_is_422_and_leaves_the_original_untouched(
    funded_client, funded_account
):
    first = submit(funded_client, run_body(max_cost_usd="0.050000"))
    before = ledger_snapshot(funded_account)

    second = submit(funded_client, run_body(max_cost_usd="0.060000"))

    assert second.status_code == 422
    assert second["Content-Type"] == PROBLEM
    assert second.json()["type"] == "/problems/idempotency-key-reused"
    assert ledger_snapshot(funded_account) == before
    run = Run.objects.get(id=first.json()["run_id"])
    assert run.reserved_micros == 50_000


def test_keys_are_scoped_per_tenant(funded_client, client_for, funded_account):
    other = AccountFactory()
    billing.top_up(account=other, amount_micros=USD, reason="test")
    mine = submit(funded_client, run_body()).json()["run_id"]
    theirs = submit(client_for(other), run_body()).json()["run_id"]
    assert mine != theirs


def _bad_requests():
    body = run_body()
    missing_reservation = {k: v for k, v in body.items() if k != "reservation"}
    wrong_types = copy.deepcopy(body)
    wrong_types["reservation"]["timebox_sec"] = "soon"
    wrong_types["inputs"] = ["not", "an", "object"]
    unknown_pack = run_body(pack_type="astrology")
    too_many_places = run_body(max_cost_usd="0.0500001")
    timebox_range = copy.deepcopy(body)
    timebox_range["reservation"]["timebox_sec"] = 91
    bad_inputs = copy.deepcopy(body)
    bad_inputs["inputs"]["criteria"][0]["weight"] = -1
    over_plan = run_body(max_cost_usd="5.000001")
    below_estimate = run_body(max_cost_usd="0.010099")
    unknown_member = run_body(colour="blue")
    return {
        "missing reservation": (missing_reservation, {}, 422, "validation-error", "/reservation"),
        "wrong types": (wrong_types, {}, 422, "validation-error", "/reservation/timebox_sec"),
        "unknown pack": (unknown_pack, {}, 422, "unknown-pack-type", None),
        "too many decimal places": (
            too_many_places,
            {},
            422,
            "validation-error",
            "/reservation/max_cost_usd",
        ),
        "timebox out of range": (
            timebox_range,
            {},
            422,
            "validation-error",
            "/reservation/timebox_sec",
        ),
        "invalid pack inputs": (
            bad_inputs,
            {},
            422,
            "validation-error",
            "/inputs/criteria/0/weight",
        ),
        "above plan limit": (
            over_plan,
            {},
            422,
            "cost-limit-exceeded",
            "/reservation/max_cost_usd",
        ),
        "below cost estimate": (
            below_estimate,
            {},
            422,
            "reservation-below-estimate",
            "/reservation/max_cost_usd",
        ),
        "unknown member": (unknown_member, {}, 422, "validation-error", "/colour"),
        "missing key": (body, {"key": None}, 400, "idempotency-key-missing", None),
        "short key": (body, {"key": "short"}, 400, "idempotency-key-invalid", None),
    }


@pytest.mark.parametrize(
    ("body", "opts", "status", "slug", "pointer"),
    _bad_requests().values(),
    ids=list(_bad_requests()),
)
def test_every_rejected_submit_is_a_problem_that_writes_nothing(
    funded_client, funded_account, body, opts, status, slug, pointer
):
    before = ledger_snapshot(funded_account)
    headers = (
        {}
        if opts.get("key", "k") is None
        else {"HTTP_IDEMPOTENCY_KEY": opts.get("key", "key-00000001")}
    )

    response = funded_client.post("/v1/runs", body, format="json", **headers)

    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["instance"] == f"urn:dpp:request:{response['X-Request-ID']}"
    if pointer is not None:
        assert pointer in [e["pointer"] for e in problem["errors"]]
    assert ledger_snapshot(funded_account) == before


def test_malformed_json_is_a_400_problem_that_writes_nothing(funded_client, funded_account):
    before = ledger_snapshot(funded_account)
    response = funded_client.post(
        "/v1/runs",
        data="{not json",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="key-00000001",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert ledger_snapshot(funded_account) == before


def test_insufficient_budget_is_402_and_writes_nothing(client_for, db):
    poor = AccountFactory()
    billing.top_up(account=poor, amount_micros=40_000, reason="test")
    before = ledger_snapshot(poor)

    response = submit(client_for(poor), run_body(max_cost_usd="0.050000"))

    assert response.status_code == 402
    assert response.json()["type"] == "/problems/insufficient-budget"
    assert ledger_snapshot(poor) == before


def test_pack_not_in_plan_is_403_pointing_at_pack_type(funded_client, funded_account):
    funded_account.plan.allowed_pack_types = []
    funded_account.plan.save()
    before = ledger_snapshot(funded_account)

    response = submit(funded_client, run_body())

    assert response.status_code == 403
    assert response.json()["type"] == "/problems/pack-not-allowed"
    assert response.json()["errors"][0]["pointer"] == "/pack_type"
    assert ledger_snapshot(funded_account) == before


def test_a_key_that_failed_for_budget_can_be_retried_after_a_top_up(client_for, db):
    account = AccountFactory()
    client = client_for(account)
    assert submit(client, run_body()).status_code == 402
    billing.top_up(account=account, amount_micros=USD, reason="test")
    assert submit(client, run_body()).status_code == 202


@pytest.mark.parametrize("amount", ["-1.000000", "0", "0.000000", -5, "abc", "1e3"])
def test_a_max_cost_that_is_not_a_positive_amount_is_a_422_at_its_pointer(
    funded_client, funded_account, amount
):
    before = ledger_snapshot(funded_account)
    response = submit(funded_client, run_body(max_cost_usd=amount))
    assert response.status_code == 422
    pointers = [e["pointer"] for e in response.json()["errors"]]
    assert pointers == ["/reservation/max_cost_usd"]
    assert ledger_snapshot(funded_account) == before
