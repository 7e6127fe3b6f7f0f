"""The `decision` pack: multi-criteria decision analysis (docs/design.md §7).

Options are scored against weighted criteria with one of two methods, ranked, and the
winner is explained (per-criterion contributions against the runner-up) and stress-tested
(how often it stays first when the weights are perturbed).

Ranking rule, shared by the published ranking and the reliability samples: options are
ordered by score, highest first, where scores are compared at the published resolution
(rounded to 6 decimals; both methods score in [0, 1]). Options whose published scores are
equal keep their input order, so the caller decides ties and a reader never sees two equal
scores ranked against their listed order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpp.errors import json_pointer
from runs.packs.base import ExecutionContext, Pack
from runs.packs.errors import FieldError, PackExecutionError, PackValidationError

METHODS = ("weighted_sum", "topsis")
DIRECTIONS = ("max", "min")
MIN_OPTIONS, MAX_OPTIONS = 2, 500
MIN_CRITERIA, MAX_CRITERIA = 1, 50
MAX_QUESTION_CHARS = 2_000

RELIABILITY_SAMPLES = 1_000
WEIGHT_JITTER = 0.2
"""Each sample multiplies every weight by its own factor drawn uniformly from
[1 - WEIGHT_JITTER, 1 + WEIGHT_JITTER], then renormalises: a +/-20% disagreement about
each weight, independently, is what "the weights are roughly right" should survive."""

SCORE_DECIMALS = 6

_INPUT_KEYS = frozenset({"question", "options", "criteria", "method"})
_OPTION_KEYS = frozenset({"id", "name", "scores"})
_CRITERION_KEYS = frozenset({"id", "weight", "direction"})


def price_micros(*, n_options: int, n_criteria: int) -> int:
    """The published price formula; it depends on the problem's size only."""
    return 10_000 + 5 * n_options * n_criteria + n_options * 1_000 // 100


def reliability_seed(run_id: str) -> int:
    """The first 8 bytes of sha256(run_id): the same run always draws the same samples."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")


class DecisionPack(Pack):
    """Multi-criteria decision analysis with `weighted_sum` or `topsis`."""

    def validate(self, inputs: dict[str, Any]) -> None:
        _parse(inputs)

    def estimate_cost(self, inputs: dict[str, Any]) -> int:
        decision = _parse(inputs)
        return price_micros(n_options=decision.n_options, n_criteria=decision.n_criteria)

    def execute(self, inputs: dict[str, Any], ctx: ExecutionContext) -> tuple[dict[str, Any], int]:
        """Rank, explain and stress-test the decision; inputs are re-validated because they
        were stored at submission and a worker must not trust them blindly."""
        decision = _parse(inputs)
        cost = min(
            price_micros(n_options=decision.n_options, n_criteria=decision.n_criteria),
            ctx.reserved_micros,
        )
        values = _criterion_values(decision)
        weights = _normalise_weights(decision.weights)
        scores = _published(_score(decision, values, weights))
        order = np.argsort(-scores, kind="stable")
        winner, runner_up = int(order[0]), int(order[1])

        seed = reliability_seed(ctx.run_id)
        reliability = _reliability(decision, values, weights, winner=winner, seed=seed)
        if reliability < ctx.min_reliability_score:
            raise PackExecutionError(
                "RELIABILITY_BELOW_MINIMUM",
                f"the winner stays first in {reliability:.1%} of weight perturbations; "
                f"the reservation requires at least {ctx.min_reliability_score:.1%}",
            )

        ranking = [
            {
                "rank": rank,
                "option_id": decision.option_ids[index],
                "name": decision.option_names[index],
                "score": float(scores[index]),
            }
            for rank, index in enumerate(order.tolist(), start=1)
        ]
        document = {
            "pack_type": "decision",
            "method": decision.method,
            "question": decision.question,
            "ranking": ranking,
            "winner": dict(ranking[0]),
            "explanation": _explain(decision, values * weights, winner, runner_up),
            "reliability": {
                "score": reliability,
                "samples": RELIABILITY_SAMPLES,
                # A string: a 64-bit integer would lose precision in JavaScript clients.
                "seed": str(seed),
            },
            "cost_usd_micros": cost,
        }
        return document, cost


# --- Scoring ------------------------------------------------------------------------------


def _published(values: np.ndarray) -> np.ndarray:
    """Round to the published resolution; `+ 0.0` turns -0.0 into 0.0 for the JSON."""
    return np.round(values, SCORE_DECIMALS) + 0.0


def _normalise_weights(weights: np.ndarray) -> np.ndarray:
    """Scale weights (last axis) to sum to 1, dividing by the largest first so that weights
    near the float maximum cannot overflow the sum."""
    weights = weights / weights.max(axis=-1, keepdims=True)
    return weights / weights.sum(axis=-1, keepdims=True)


def _criterion_values(decision: _Decision) -> np.ndarray:
    """The per-criterion values in [0, 1] (before weighting) that each method scores.

    weighted_sum: min-max normalisation, inverted for `min` criteria; a criterion with the
    same score everywhere is 0 for everyone, so it cannot favour anyone.
    topsis: vector normalisation x / sqrt(sum x^2); an all-zero column stays zero.

    Each column is first divided by its largest magnitude: both normalisations are
    invariant to that, and it keeps ranges and sums of squares finite for huge scores.
    """
    peak = np.abs(decision.scores).max(axis=0)
    x = decision.scores / np.where(peak > 0, peak, 1.0)
    zeros = np.zeros_like(x)
    if decision.method == "weighted_sum":
        low, high = x.min(axis=0), x.max(axis=0)
        span = high - low
        distance = np.where(decision.maximise, x - low, high - x)
        return np.divide(distance, span, out=zeros, where=span > 0)
    norm = np.sqrt((x**2).sum(axis=0))
    return np.divide(x, norm, out=zeros, where=norm > 0)


def _score(decision: _Decision, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Score every option: `weights` of shape (m,) gives (n,), a batch (S, m) gives (n, S).

    TOPSIS: weights are positive, so the ideal (anti-ideal) of the weighted matrix is the
    weighted ideal (anti-ideal) of the unweighted one, and each squared distance is a
    matrix product with the squared weights. That lets 1,000 weight samples of a 500 x 50
    problem run as two matrix products.
    """
    if decision.method == "weighted_sum":
        return values @ weights.T
    best = np.where(decision.maximise, values.max(axis=0), values.min(axis=0))
    worst = np.where(decision.maximise, values.min(axis=0), values.max(axis=0))
    squared_weights = (weights**2).T
    to_ideal = np.sqrt(((values - best) ** 2) @ squared_weights)
    to_anti_ideal = np.sqrt(((values - worst) ** 2) @ squared_weights)
    total = to_ideal + to_anti_ideal
    return np.divide(to_anti_ideal, total, out=np.zeros_like(total), where=total > 0)


def _reliability(
    decision: _Decision, values: np.ndarray, weights: np.ndarray, *, winner: int, seed: int
) -> float:
    """The share of perturbed weightings (see `WEIGHT_JITTER`) under which `winner` is still
    ranked first by the module's ranking rule (argmax takes the first of equal maxima, which
    is the input-order tie-break)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    factors = rng.uniform(
        1 - WEIGHT_JITTER, 1 + WEIGHT_JITTER, size=(RELIABILITY_SAMPLES, decision.n_criteria)
    )
    samples = _normalise_weights(weights * factors)
    firsts = _published(_score(decision, values, samples)).argmax(axis=0)
    return int(np.count_nonzero(firsts == winner)) / RELIABILITY_SAMPLES


def _explain(
    decision: _Decision, contributions: np.ndarray, winner: int, runner_up: int
) -> list[dict[str, Any]]:
    """Per-criterion weighted values of the winner and the runner-up.

    For weighted_sum they add up to the scores. For topsis they are the weighted normalised
    values, so on a `min` criterion the lower value is the better one. `difference` is
    taken from the published (rounded) values so the document is consistent with itself.
    """
    winner_values = _published(contributions[winner]).tolist()
    runner_up_values = _published(contributions[runner_up]).tolist()
    return [
        {
            "criterion_id": criterion_id,
            "winner_contribution": ours,
            "runner_up_contribution": theirs,
            "difference": round(ours - theirs, SCORE_DECIMALS) + 0.0,
        }
        for criterion_id, ours, theirs in zip(
            decision.criterion_ids, winner_values, runner_up_values, strict=True
        )
    ]


# --- Validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decision:
    """Validated inputs, as arrays in the input's option and criterion order."""

    question: str
    method: str
    option_ids: list[str]
    option_names: list[str]
    criterion_ids: list[str]
    weights: np.ndarray
    maximise: np.ndarray
    scores: np.ndarray

    @property
    def n_options(self) -> int:
        return len(self.option_ids)

    @property
    def n_criteria(self) -> int:
        return len(self.criterion_ids)


@dataclass
class _Criteria:
    ids: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    maximise: list[bool] = field(default_factory=list)
    complete: bool = False
    """True when every criterion has a valid, unique id: only then is a score keyed by some
    other id reported as unknown (otherwise the real mistake is the criterion's id)."""


@dataclass
class _Options:
    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)


def _parse(inputs: object) -> _Decision:
    """Validate `inputs` and return them as a `_Decision`.

    Every error is collected before raising, so a caller can fix all of them in one round.
    """
    if not isinstance(inputs, dict):
        raise PackValidationError([("", "must be an object")])
    errors: list[FieldError] = []
    _reject_unknown_keys(inputs, _INPUT_KEYS, (), errors)
    question = _parse_question(inputs, errors)
    criteria = _parse_criteria(inputs, errors)
    options = _parse_options(inputs, criteria, errors)
    method = inputs.get("method")
    if "method" not in inputs:
        errors.append(("/method", "is required"))
    elif method not in METHODS:
        errors.append(("/method", f"must be one of: {', '.join(METHODS)}"))
    if errors:
        raise PackValidationError(errors)
    return _Decision(
        question=question,
        method=method,
        option_ids=options.ids,
        option_names=options.names,
        criterion_ids=criteria.ids,
        weights=np.array(criteria.weights, dtype=float),
        maximise=np.array(criteria.maximise, dtype=bool),
        scores=np.array(options.rows, dtype=float),
    )


def _is_finite_number(value: object) -> bool:
    """JSON numbers only: bool is an int subclass in Python but not a number in JSON."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _reject_unknown_keys(
    item: dict[str, Any],
    allowed: frozenset[str],
    at: tuple[str | int, ...],
    errors: list[FieldError],
) -> None:
    errors.extend(
        (json_pointer(*at, key), "is not a recognised field") for key in item if key not in allowed
    )


def _list_field(
    inputs: dict[str, Any], key: str, *, minimum: int, maximum: int, errors: list[FieldError]
) -> list[Any] | None:
    """Return the list to inspect item by item, or None when there is nothing to inspect.

    An over-long list is not inspected: its items' errors are noise next to its size, and
    bounding the work keeps a hostile request cheap to reject.
    """
    if key not in inputs:
        errors.append((json_pointer(key), "is required"))
        return None
    items = inputs[key]
    if not isinstance(items, list):
        errors.append((json_pointer(key), "must be an array"))
        return None
    if not minimum <= len(items) <= maximum:
        errors.append(
            (json_pointer(key), f"must contain {minimum} to {maximum} items, got {len(items)}")
        )
        if len(items) > maximum:
            return None
    return items


def _parse_question(inputs: dict[str, Any], errors: list[FieldError]) -> str:
    question = inputs.get("question")
    if "question" not in inputs:
        errors.append(("/question", "is required"))
    elif not isinstance(question, str) or not question.strip():
        errors.append(("/question", "must be a non-empty string"))
    elif len(question) > MAX_QUESTION_CHARS:
        errors.append(("/question", f"must be at most {MAX_QUESTION_CHARS} characters"))
    return question


def _parse_id(
    item: dict[str, Any], at: tuple[str, int], seen: dict[str, str], errors: list[FieldError]
) -> str | None:
    pointer = json_pointer(*at, "id")
    if "id" not in item:
        errors.append((pointer, "is required"))
        return None
    value = item["id"]
    if not isinstance(value, str) or not value:
        errors.append((pointer, "must be a non-empty string"))
        return None
    if value in seen:
        errors.append((pointer, f"duplicates the id at {seen[value]}"))
        return None
    seen[value] = json_pointer(*at)
    return value


def _parse_criteria(inputs: dict[str, Any], errors: list[FieldError]) -> _Criteria:
    criteria = _Criteria()
    errors_before = len(errors)
    items = _list_field(
        inputs, "criteria", minimum=MIN_CRITERIA, maximum=MAX_CRITERIA, errors=errors
    )
    if items is None:
        return criteria
    complete = len(errors) == errors_before
    seen: dict[str, str] = {}
    for index, item in enumerate(items):
        at = ("criteria", index)
        if not isinstance(item, dict):
            errors.append((json_pointer(*at), "must be an object"))
            complete = False
            continue
        _reject_unknown_keys(item, _CRITERION_KEYS, at, errors)
        criterion_id = _parse_id(item, at, seen, errors)
        if criterion_id is None:
            complete = False
        else:
            criteria.ids.append(criterion_id)
        weight = item.get("weight")
        if "weight" not in item:
            errors.append((json_pointer(*at, "weight"), "is required"))
        elif not _is_finite_number(weight) or weight <= 0:
            errors.append((json_pointer(*at, "weight"), "must be a finite number above 0"))
        else:
            criteria.weights.append(float(weight))
        direction = item.get("direction")
        if "direction" not in item:
            errors.append((json_pointer(*at, "direction"), "is required"))
        elif direction not in DIRECTIONS:
            errors.append((json_pointer(*at, "direction"), 'must be "max" or "min"'))
        else:
            criteria.maximise.append(direction == "max")
    criteria.complete = complete
    return criteria


def _parse_options(
    inputs: dict[str, Any], criteria: _Criteria, errors: list[FieldError]
) -> _Options:
    options = _Options()
    items = _list_field(inputs, "options", minimum=MIN_OPTIONS, maximum=MAX_OPTIONS, errors=errors)
    if items is None:
        return options
    seen: dict[str, str] = {}
    for index, item in enumerate(items):
        at = ("options", index)
        if not isinstance(item, dict):
            errors.append((json_pointer(*at), "must be an object"))
            continue
        _reject_unknown_keys(item, _OPTION_KEYS, at, errors)
        option_id = _parse_id(item, at, seen, errors)
        name = item.get("name")
        if "name" not in item:
            errors.append((json_pointer(*at, "name"), "is required"))
        elif not isinstance(name, str) or not name:
            errors.append((json_pointer(*at, "name"), "must be a non-empty string"))
        scores = item.get("scores")
        if "scores" not in item:
            errors.append((json_pointer(*at, "scores"), "is required"))
        elif not isinstance(scores, dict):
            errors.append((json_pointer(*at, "scores"), "must be an object"))
        elif _scores_are_valid(scores, at, criteria, errors):
            options.rows.append([float(scores[criterion_id]) for criterion_id in criteria.ids])
        options.ids.append(option_id)
        options.names.append(name)
    return options


def _scores_are_valid(
    scores: dict[str, Any], at: tuple[str, int], criteria: _Criteria, errors: list[FieldError]
) -> bool:
    errors_before = len(errors)
    known = set(criteria.ids)
    for key, value in scores.items():
        pointer = json_pointer(*at, "scores", key)
        if criteria.complete and key not in known:
            errors.append((pointer, "is not the id of a criterion"))
        elif not _is_finite_number(value):
            errors.append((pointer, "must be a finite number"))
    errors.extend(
        (json_pointer(*at, "scores", criterion_id), "is required: score every criterion")
        for criterion_id in criteria.ids
        if criterion_id not in scores
    )
    return len(errors) == errors_before
