"""Behaviour of the `decision` pack (docs/design.md §7) and the pack registry.

The pack tests need neither the database nor Django settings; only the registry tests do,
and they import the registry lazily so the rest runs without Django.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from runs.packs.base import ExecutionContext, Pack
from runs.packs.decision import DecisionPack
from runs.packs.errors import PackExecutionError, PackValidationError, UnknownPackType

pack = DecisionPack()


def ctx(run_id: str = "run-1", *, reserved_micros: int = 10_000_000, minimum: float = 0.0):
    return ExecutionContext(
        run_id=run_id, reserved_micros=reserved_micros, min_reliability_score=minimum
    )


def decision(
    options: list[tuple[str, dict[str, float]]],
    criteria: list[tuple[str, float, str]],
    *,
    method: str = "weighted_sum",
) -> dict[str, Any]:
    """Inputs from compact tuples: options (id, scores), criteria (id, weight, direction)."""
    return {
        "question": "Which one?",
        "options": [
            {"id": option_id, "name": option_id.upper(), "scores": scores}
            for option_id, scores in options
        ],
        "criteria": [
            {"id": criterion_id, "weight": weight, "direction": direction}
            for criterion_id, weight, direction in criteria
        ],
        "method": method,
    }


def run(inputs: dict[str, Any], run_id: str = "run-1") -> dict[str, Any]:
    document, _ = pack.execute(inputs, ctx(run_id))
    return document


def ranked_ids(document: dict[str, Any]) -> list[str]:
    return [entry["option_id"] for entry in document["ranking"]]


def ranked_scores(document: dict[str, Any]) -> list[float]:
    return [entry["score"] for entry in document["ranking"]]


def random_decision(n_options: int, n_criteria: int, *, method: str, seed: int = 7):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 100, size=(n_options, n_criteria)).round(3)
    return decision(
        [
            (f"o{i}", {f"c{j}": float(scores[i, j]) for j in range(n_criteria)})
            for i in range(n_options)
        ],
        [(f"c{j}", float(rng.uniform(0.5, 2)), ("max", "min")[j % 2]) for j in range(n_criteria)],
        method=method,
    )


# A hand-computed weighted sum, used by several tests.
#   cost (min, weight 1 -> 0.25): 100, 200, 300 -> (300 - x) / 200 = 1, 0.5, 0
#   quality (max, weight 3 -> 0.75): 6, 9, 3   -> (x - 3) / 6     = 0.5, 1, 0
#   a = 0.25 * 1   + 0.75 * 0.5 = 0.625
#   b = 0.25 * 0.5 + 0.75 * 1   = 0.875
#   c = 0                        = 0
THREE_OPTIONS = decision(
    [
        ("a", {"cost": 100, "quality": 6}),
        ("b", {"cost": 200, "quality": 9}),
        ("c", {"cost": 300, "quality": 3}),
    ],
    [("cost", 1, "min"), ("quality", 3, "max")],
)

# A hand-computed TOPSIS. Columns are chosen so the vector norms are whole numbers.
#   benefit (max, weight 1 -> 0.5): 2, 3, 6 -> norm 7 -> v = 1/7, 3/14, 3/7
#   cost    (min, weight 1 -> 0.5): 1, 4, 8 -> norm 9 -> v = 1/18, 2/9, 4/9
#   ideal = (3/7, 1/18), anti-ideal = (1/7, 4/9)
#   a: d+ = 2/7, d- = 7/18                          -> closeness 49/85
#   b: d+ = sqrt((3/14)^2 + (1/6)^2), d- = sqrt((1/14)^2 + (2/9)^2)
#   c: d+ = 7/18, d- = 2/7                          -> closeness 36/85
TOPSIS_THREE = decision(
    [
        ("a", {"benefit": 2, "cost": 1}),
        ("b", {"benefit": 3, "cost": 4}),
        ("c", {"benefit": 6, "cost": 8}),
    ],
    [("benefit", 1, "max"), ("cost", 1, "min")],
    method="topsis",
)


def _closeness(to_ideal: float, to_anti_ideal: float) -> float:
    return to_anti_ideal / (to_ideal + to_anti_ideal)


# --- Weighted sum -------------------------------------------------------------------------


def test_weighted_sum_ranks_the_hand_computed_example():
    document = run(THREE_OPTIONS)

    assert document["ranking"] == [
        {"rank": 1, "option_id": "b", "name": "B", "score": 0.875},
        {"rank": 2, "option_id": "a", "name": "A", "score": 0.625},
        {"rank": 3, "option_id": "c", "name": "C", "score": 0.0},
    ]
    assert document["winner"] == document["ranking"][0]


def test_weighted_sum_explains_winner_against_runner_up():
    document = run(THREE_OPTIONS)

    assert document["explanation"] == [
        {
            "criterion_id": "cost",
            "winner_contribution": 0.125,
            "runner_up_contribution": 0.25,
            "difference": -0.125,
        },
        {
            "criterion_id": "quality",
            "winner_contribution": 0.75,
            "runner_up_contribution": 0.375,
            "difference": 0.375,
        },
    ]


def test_min_direction_prefers_the_lowest_value():
    # price 10, 30, 20 -> (30 - x) / 20 = 1, 0, 0.5
    document = run(
        decision([("x", {"p": 10}), ("y", {"p": 30}), ("z", {"p": 20})], [("p", 1, "min")])
    )

    assert ranked_ids(document) == ["x", "z", "y"]
    assert ranked_scores(document) == [1.0, 0.5, 0.0]


def test_single_criterion_scores_are_its_min_max_normalisation():
    # 10, 20, 30, 25 -> (x - 10) / 20 = 0, 0.5, 1, 0.75
    document = run(
        decision(
            [("p", {"k": 10}), ("q", {"k": 20}), ("r", {"k": 30}), ("s", {"k": 25})],
            [("k", 7, "max")],
        )
    )

    assert ranked_ids(document) == ["r", "s", "q", "p"]
    assert ranked_scores(document) == [1.0, 0.75, 0.5, 0.0]


def test_constant_criterion_contributes_nothing_but_keeps_its_weight():
    # "flat" is 5 everywhere: 0 for all. Weights 1 and 1 -> 0.5 each, so the best is 0.5.
    document = run(
        decision(
            [("a", {"q": 1, "flat": 5}), ("b", {"q": 3, "flat": 5}), ("c", {"q": 2, "flat": 5})],
            [("q", 1, "max"), ("flat", 1, "max")],
        )
    )

    assert ranked_ids(document) == ["b", "c", "a"]
    assert ranked_scores(document) == [0.5, 0.25, 0.0]
    flat = next(row for row in document["explanation"] if row["criterion_id"] == "flat")
    assert flat == {
        "criterion_id": "flat",
        "winner_contribution": 0.0,
        "runner_up_contribution": 0.0,
        "difference": 0.0,
    }


def test_ties_keep_input_order():
    # y and w are identical and best; x and z are identical and worst.
    document = run(
        decision(
            [
                ("x", {"k": 1, "m": 1}),
                ("y", {"k": 2, "m": 3}),
                ("z", {"k": 1, "m": 1}),
                ("w", {"k": 2, "m": 3}),
            ],
            [("k", 1, "max"), ("m", 1, "max")],
        )
    )

    assert ranked_ids(document) == ["y", "w", "x", "z"]
    assert [entry["rank"] for entry in document["ranking"]] == [1, 2, 3, 4]


def test_all_options_equal_ties_everything_in_input_order():
    document = run(decision([("b", {"k": 4}), ("a", {"k": 4}), ("c", {"k": 4})], [("k", 1, "max")]))

    assert ranked_ids(document) == ["b", "a", "c"]
    assert ranked_scores(document) == [0.0, 0.0, 0.0]


def test_weights_only_matter_relative_to_each_other():
    scaled = copy.deepcopy(THREE_OPTIONS)
    for criterion in scaled["criteria"]:
        criterion["weight"] *= 1e300

    assert run(scaled)["ranking"] == run(THREE_OPTIONS)["ranking"]


def test_huge_scores_do_not_overflow():
    document = run(
        decision(
            [("a", {"k": -1.5e308}), ("b", {"k": 1.7e308}), ("c", {"k": 0})], [("k", 1, "max")]
        )
    )

    assert ranked_ids(document) == ["b", "c", "a"]
    assert all(math.isfinite(score) for score in ranked_scores(document))


# --- TOPSIS -------------------------------------------------------------------------------


def test_topsis_matches_hand_computed_closeness():
    document = run(TOPSIS_THREE)

    b = _closeness(math.hypot(3 / 14, 1 / 6), math.hypot(1 / 14, 2 / 9))
    assert ranked_ids(document) == ["a", "b", "c"]
    assert ranked_scores(document) == [round(49 / 85, 6), round(b, 6), round(36 / 85, 6)]
    assert ranked_scores(document) == [0.576471, 0.462318, 0.423529]


def test_topsis_explains_with_weighted_normalised_values():
    document = run(TOPSIS_THREE)

    assert document["explanation"] == [
        {
            "criterion_id": "benefit",
            "winner_contribution": round(1 / 7, 6),
            "runner_up_contribution": round(3 / 14, 6),
            "difference": round(round(1 / 7, 6) - round(3 / 14, 6), 6),
        },
        {
            "criterion_id": "cost",
            "winner_contribution": round(1 / 18, 6),
            "runner_up_contribution": round(2 / 9, 6),
            "difference": round(round(1 / 18, 6) - round(2 / 9, 6), 6),
        },
    ]


def test_topsis_symmetric_options_tie_and_keep_input_order():
    # v = (0.3, 0.4), (0.4, 0.3), (0, 0); ideal (0.4, 0.4), anti-ideal (0, 0)
    #   p, q: d+ = 0.1, d- = 0.5 -> 5/6;  r: d+ = sqrt(0.32), d- = 0 -> 0
    document = run(
        decision(
            [("p", {"x": 3, "y": 4}), ("q", {"x": 4, "y": 3}), ("r", {"x": 0, "y": 0})],
            [("x", 1, "max"), ("y", 1, "max")],
            method="topsis",
        )
    )

    assert ranked_ids(document) == ["p", "q", "r"]
    assert ranked_scores(document) == [round(5 / 6, 6), round(5 / 6, 6), 0.0]


def test_topsis_zero_column_and_identical_options_score_zero():
    document = run(decision([("a", {"k": 0}), ("b", {"k": 0})], [("k", 1, "max")], method="topsis"))

    assert ranked_ids(document) == ["a", "b"]
    assert ranked_scores(document) == [0.0, 0.0]


def test_topsis_min_direction_prefers_the_lowest_value():
    # one criterion: the lowest value is the ideal (closeness 1), the highest the anti-ideal
    document = run(
        decision(
            [("x", {"p": 10}), ("y", {"p": 30}), ("z", {"p": 20})],
            [("p", 1, "min")],
            method="topsis",
        )
    )

    assert ranked_ids(document) == ["x", "z", "y"]
    assert ranked_scores(document) == [1.0, 0.5, 0.0]


# --- Size, document shape, price ----------------------------------------------------------


@pytest.mark.parametrize("method", ["weighted_sum", "topsis"])
def test_largest_decision_returns_full_ranking_fast(method):
    inputs = random_decision(500, 50, method=method)

    started = time.perf_counter()
    document, cost = pack.execute(inputs, ctx())
    elapsed = time.perf_counter() - started

    assert [entry["rank"] for entry in document["ranking"]] == list(range(1, 501))
    assert sorted(ranked_ids(document)) == sorted(f"o{i}" for i in range(500))
    scores = ranked_scores(document)
    assert scores == sorted(scores, reverse=True)
    assert len(document["explanation"]) == 50
    assert cost == 140_000
    assert elapsed < 1.0


def _assert_plain_json(value: Any, path: str = "") -> None:
    # np.float64 subclasses float and would pass json.dumps, so check exact types.
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, path
            _assert_plain_json(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_plain_json(item, f"{path}/{index}")
    else:
        assert type(value) in (str, int, float, bool), (path, type(value))


@pytest.mark.parametrize("method", ["weighted_sum", "topsis"])
def test_document_has_the_published_shape_and_plain_types(method):
    inputs = random_decision(20, 4, method=method)

    document, cost = pack.execute(inputs, ctx("run-shape"))

    assert set(document) == {
        "pack_type",
        "method",
        "question",
        "ranking",
        "winner",
        "explanation",
        "reliability",
        "cost_usd_micros",
    }
    assert document["pack_type"] == "decision"
    assert document["method"] == method
    assert document["question"] == "Which one?"
    assert document["reliability"]["samples"] == 1000
    assert document["cost_usd_micros"] == cost
    _assert_plain_json(document)
    assert json.loads(json.dumps(document)) == document


def test_four_by_three_decision_costs_ten_thousand_one_hundred_micros():
    inputs = random_decision(4, 3, method="weighted_sum")

    assert pack.estimate_cost(inputs) == 10_100
    assert pack.execute(inputs, ctx())[1] == 10_100


def test_five_hundred_by_fifty_decision_costs_fourteen_cents():
    assert pack.estimate_cost(random_decision(500, 50, method="topsis")) == 140_000


def test_metered_cost_is_capped_at_the_reservation():
    document, cost = pack.execute(THREE_OPTIONS, ctx(reserved_micros=9_000))

    assert cost == 9_000
    assert document["cost_usd_micros"] == 9_000


def test_estimate_cost_refuses_invalid_inputs():
    with pytest.raises(PackValidationError):
        pack.estimate_cost({"question": "?"})


# --- Reliability --------------------------------------------------------------------------

# c wins narrowly: swapping a little weight between the criteria makes a or b win instead.
CONTESTED = decision(
    [("a", {"x": 10, "y": 0}), ("b", {"x": 0, "y": 10}), ("c", {"x": 5.2, "y": 5.2})],
    [("x", 1, "max"), ("y", 1, "max")],
)


def test_reliability_is_deterministic_per_run_id():
    first = run(CONTESTED, "run-42")["reliability"]
    again = run(CONTESTED, "run-42")["reliability"]

    assert first == again
    assert first["seed"] == str(int.from_bytes(hashlib.sha256(b"run-42").digest()[:8], "big"))
    assert 0 < first["score"] < 1


def test_reliability_depends_on_the_run_id():
    scores = {run(CONTESTED, f"run-{n}")["reliability"]["score"] for n in range(10)}

    assert len(scores) > 1


@pytest.mark.parametrize("method", ["weighted_sum", "topsis"])
def test_dominant_option_is_fully_reliable(method):
    inputs = decision(
        [("best", {"x": 9, "y": 1}), ("mid", {"x": 5, "y": 5}), ("worst", {"x": 1, "y": 9})],
        [("x", 1, "max"), ("y", 2, "min")],
        method=method,
    )

    document = run(inputs)

    assert document["winner"]["option_id"] == "best"
    assert document["reliability"]["score"] == 1.0


def test_reliability_below_minimum_fails_the_run():
    reliability = run(CONTESTED, "run-7")["reliability"]["score"]

    with pytest.raises(PackExecutionError) as failure:
        pack.execute(CONTESTED, ctx("run-7", minimum=reliability + 0.001))

    assert failure.value.reason_code == "RELIABILITY_BELOW_MINIMUM"


def test_reliability_equal_to_minimum_passes():
    reliability = run(CONTESTED, "run-7")["reliability"]["score"]

    document, _ = pack.execute(CONTESTED, ctx("run-7", minimum=reliability))

    assert document["reliability"]["score"] == reliability


# --- Validation ---------------------------------------------------------------------------


def valid_inputs() -> dict[str, Any]:
    return decision(
        [
            ("a", {"cost": 1, "speed": 2}),
            ("b", {"cost": 2, "speed": 1}),
            ("c", {"cost": 3, "speed": 3}),
            ("d", {"cost": 4, "speed": 4}),
        ],
        [("cost", 1, "min"), ("speed", 2, "max")],
    )


def _set(pointer: str, value: Any) -> Callable[[dict], None]:
    def mutate(inputs: dict) -> None:
        *parents, last = pointer.strip("/").split("/")
        target: Any = inputs
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _delete(pointer: str) -> Callable[[dict], None]:
    def mutate(inputs: dict) -> None:
        *parents, last = pointer.strip("/").split("/")
        target: Any = inputs
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        del target[last]

    return mutate


def _rename_criterion(new_id: str) -> Callable[[dict], None]:
    def mutate(inputs: dict) -> None:
        inputs["criteria"][0]["id"] = new_id
        for option in inputs["options"]:
            option["scores"][new_id] = option["scores"].pop("cost")
        del inputs["options"][3]["scores"][new_id]

    return mutate


NOT_FINITE = [True, "1", None, math.nan, math.inf, -math.inf, 10**400, [1]]


@pytest.mark.parametrize(
    ("mutate", "pointers"),
    [
        pytest.param(_delete("/question"), ["/question"], id="question-missing"),
        pytest.param(_set("/question", ""), ["/question"], id="question-empty"),
        pytest.param(_set("/question", "   "), ["/question"], id="question-blank"),
        pytest.param(_set("/question", 42), ["/question"], id="question-not-string"),
        pytest.param(_set("/question", "?" * 2001), ["/question"], id="question-too-long"),
        pytest.param(_set("/colour", "red"), ["/colour"], id="unknown-top-level-key"),
        pytest.param(_delete("/method"), ["/method"], id="method-missing"),
        pytest.param(_set("/method", "ahp"), ["/method"], id="method-unknown"),
        pytest.param(_delete("/options"), ["/options"], id="options-missing"),
        pytest.param(_set("/options", {"a": 1}), ["/options"], id="options-not-array"),
        pytest.param(
            lambda inputs: inputs["options"].__delitem__(slice(1, None)),
            ["/options"],
            id="options-too-few",
        ),
        pytest.param(
            lambda inputs: inputs["options"].extend(copy.deepcopy(inputs["options"]) * 125),
            ["/options"],
            id="options-too-many-not-inspected",
        ),
        pytest.param(_set("/options/1", "b"), ["/options/1"], id="option-not-object"),
        pytest.param(_delete("/options/0/id"), ["/options/0/id"], id="option-id-missing"),
        pytest.param(_set("/options/0/id", ""), ["/options/0/id"], id="option-id-empty"),
        pytest.param(_set("/options/0/id", 7), ["/options/0/id"], id="option-id-not-string"),
        pytest.param(_set("/options/2/id", "a"), ["/options/2/id"], id="option-id-duplicate"),
        pytest.param(_delete("/options/1/name"), ["/options/1/name"], id="option-name-missing"),
        pytest.param(_set("/options/1/name", ""), ["/options/1/name"], id="option-name-empty"),
        pytest.param(_set("/options/0/rank", 1), ["/options/0/rank"], id="option-unknown-key"),
        pytest.param(_delete("/options/0/scores"), ["/options/0/scores"], id="scores-missing"),
        pytest.param(_set("/options/0/scores", [1, 2]), ["/options/0/scores"], id="scores-array"),
        pytest.param(
            _delete("/options/3/scores/cost"), ["/options/3/scores/cost"], id="score-missing"
        ),
        *[
            pytest.param(
                _set("/options/2/scores/speed", value),
                ["/options/2/scores/speed"],
                id=f"score-{value!r}"[:30],
            )
            for value in NOT_FINITE
        ],
        pytest.param(
            _set("/options/1/scores/colour", 3),
            ["/options/1/scores/colour"],
            id="score-for-unknown-criterion",
        ),
        pytest.param(_delete("/criteria"), ["/criteria"], id="criteria-missing"),
        pytest.param(_set("/criteria", []), ["/criteria"], id="criteria-empty"),
        pytest.param(
            _set(
                "/criteria", [{"id": f"k{i}", "weight": 1, "direction": "max"} for i in range(51)]
            ),
            ["/criteria"],
            id="criteria-too-many-not-inspected",
        ),
        pytest.param(_set("/criteria/1", "speed"), ["/criteria/1"], id="criterion-not-object"),
        pytest.param(_delete("/criteria/0/id"), ["/criteria/0/id"], id="criterion-id-missing"),
        pytest.param(
            _set("/criteria/1/id", "cost"), ["/criteria/1/id"], id="criterion-id-duplicate"
        ),
        pytest.param(_delete("/criteria/0/weight"), ["/criteria/0/weight"], id="weight-missing"),
        *[
            pytest.param(
                _set("/criteria/0/weight", value), ["/criteria/0/weight"], id=f"weight-{value!r}"
            )
            for value in [0, -1, 0.0, True, "2", math.nan, math.inf, 10**400]
        ],
        pytest.param(_delete("/criteria/1/direction"), ["/criteria/1/direction"], id="dir-missing"),
        pytest.param(_set("/criteria/1/direction", "up"), ["/criteria/1/direction"], id="dir-up"),
        pytest.param(_set("/criteria/1/unit", "s"), ["/criteria/1/unit"], id="criterion-extra"),
        pytest.param(
            _rename_criterion("a/b"), ["/options/3/scores/a~1b"], id="pointer-escapes-slash"
        ),
        pytest.param(
            _rename_criterion("m~n"), ["/options/3/scores/m~0n"], id="pointer-escapes-tilde"
        ),
    ],
)
def test_invalid_inputs_are_reported_at_exact_pointers(mutate, pointers):
    inputs = valid_inputs()
    mutate(inputs)

    with pytest.raises(PackValidationError) as invalid:
        pack.validate(inputs)

    assert [pointer for pointer, _ in invalid.value.errors] == pointers
    assert all(detail for _, detail in invalid.value.errors)


def test_valid_inputs_pass_validation():
    assert pack.validate(valid_inputs()) is None


def test_inputs_that_are_not_an_object_are_reported_at_the_root():
    with pytest.raises(PackValidationError) as invalid:
        pack.validate(["not", "an", "object"])

    assert invalid.value.errors == [("", "must be an object")]


def test_all_errors_are_collected_at_once():
    inputs = valid_inputs()
    inputs["question"] = ""
    inputs["options"][0]["scores"]["cost"] = "cheap"
    inputs["options"][2]["id"] = "b"
    inputs["criteria"][1]["weight"] = -2
    inputs["criteria"][1]["direction"] = "sideways"
    inputs["method"] = "vote"

    with pytest.raises(PackValidationError) as invalid:
        pack.validate(inputs)

    assert sorted(pointer for pointer, _ in invalid.value.errors) == [
        "/criteria/1/direction",
        "/criteria/1/weight",
        "/method",
        "/options/0/scores/cost",
        "/options/2/id",
        "/question",
    ]


def test_execute_revalidates_stored_inputs():
    with pytest.raises(PackValidationError):
        pack.execute({**valid_inputs(), "method": "vote"}, ctx())


# --- Registry -----------------------------------------------------------------------------


def test_registry_returns_a_cached_decision_pack(settings):
    from runs.packs.registry import get_pack, pack_types

    settings.DPP_PACKS = {"decision": "runs.packs.decision.DecisionPack"}

    assert pack_types() == ["decision"]
    assert isinstance(get_pack("decision"), DecisionPack)
    assert get_pack("decision") is get_pack("decision")


def test_registry_picks_up_packs_registered_in_settings(settings):
    from runs.packs.registry import get_pack, pack_types

    settings.DPP_PACKS = {"decision": "runs.packs.decision.DecisionPack"}
    before = get_pack("decision")
    settings.DPP_PACKS = {
        "decision": "runs.packs.decision.DecisionPack",
        "second_opinion": "runs.packs.decision.DecisionPack",
    }

    assert pack_types() == ["decision", "second_opinion"]
    assert isinstance(get_pack("second_opinion"), Pack)
    assert get_pack("decision") is not before


def test_registry_rejects_unknown_pack_types(settings):
    from runs.packs.registry import get_pack

    settings.DPP_PACKS = {"decision": "runs.packs.decision.DecisionPack"}

    with pytest.raises(UnknownPackType) as unknown:
        get_pack("horoscope")

    assert unknown.value.pack_type == "horoscope"
    assert unknown.value.known == ["decision"]


def test_registry_rejects_a_path_that_is_not_a_pack(settings):
    from django.core.exceptions import ImproperlyConfigured

    from runs.packs.registry import get_pack

    settings.DPP_PACKS = {"broken": "runs.packs.errors.PackValidationError"}

    with pytest.raises(ImproperlyConfigured):
        get_pack("broken")
