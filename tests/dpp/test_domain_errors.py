"""Domain errors declare their problem type; the registry is the only mapping to HTTP."""

import importlib
import pkgutil

import pytest

from dpp.errors import DomainError
from dpp.problem_types import PROBLEM_TYPES, UnknownProblemType
from dpp.problems import ProblemError
from tests.dpp.problem_assertions import assert_problem

APPS = ("dpp", "billing", "runs", "reaper")

# What clients see for each domain error; a change here is a change of the API.
EXPECTED_SLUGS = {
    "billing.errors.InsufficientBudget": "insufficient-budget",
    "runs.packs.errors.UnknownPackType": "unknown-pack-type",
    "runs.errors.PackNotAllowed": "pack-not-allowed",
    "runs.errors.CostLimitExceeded": "cost-limit-exceeded",
    "runs.errors.ReservationBelowEstimate": "reservation-below-estimate",
    "runs.errors.IdempotencyKeyReused": "idempotency-key-reused",
    "runs.errors.InvalidInputs": "validation-error",
    "runs.errors.RunNotFound": "run-not-found",
    "dpp.ratelimit.errors.RateLimitExceeded": "rate-limited",
    "dpp.ratelimit.errors.WindowExceeded": "rate-limited",
    "dpp.ratelimit.errors.ConcurrencyExceeded": "rate-limited",
    "runs.errors.ResultExpired": "result-expired",
    "runs.errors.SubmissionsPaused": "submissions-paused",
    "runs.errors.RunNotCancelable": "run-not-cancelable",
    "billing.errors.InvalidQueryParameters": "invalid-query-parameter",
}


def _app_domain_errors() -> dict[str, type[DomainError]]:
    """Every DomainError subclass defined in the apps, after importing all their modules."""
    for app in APPS:
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, f"{app}."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    found: dict[str, type[DomainError]] = {}
    pending = [DomainError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__module__.split(".")[0] in APPS:
                found[f"{sub.__module__}.{sub.__qualname__}"] = sub
    return found


def test_every_domain_error_of_the_apps_declares_a_registered_problem_type():
    errors = _app_domain_errors()
    per_instance = {name for name, cls in errors.items() if cls.slug is None}
    assert per_instance == {"dpp.problems.ProblemError"}
    declared = {name: cls.slug for name, cls in errors.items() if cls.slug is not None}
    assert declared == EXPECTED_SLUGS
    assert set(declared.values()) <= set(PROBLEM_TYPES)


def test_a_class_with_an_unknown_slug_fails_where_it_is_defined():
    with pytest.raises(UnknownProblemType, match="insufficent-budget"):

        class Typo(DomainError):
            slug = "insufficent-budget"


def test_a_class_that_declares_no_slug_fails_where_it_is_defined():
    with pytest.raises(TypeError, match="must declare its problem type"):

        class Undeclared(DomainError):
            pass


def test_a_subclass_answers_with_its_parents_problem_type():
    class Parent(DomainError):
        slug = "run-not-found"

    class Child(Parent):
        pass

    assert Child().problem_type == PROBLEM_TYPES["run-not-found"]
    assert str(Child()) == PROBLEM_TYPES["run-not-found"].title


def test_a_problem_error_with_an_unknown_slug_fails_where_it_is_raised():
    with pytest.raises(UnknownProblemType, match="no-such-problem"):
        ProblemError("no-such-problem", "detail")


@pytest.mark.django_db
@pytest.mark.urls("tests.dpp.urls")
@pytest.mark.parametrize("path", ["/t/domain-error-drf", "/t/domain-error"])
def test_a_domain_error_renders_every_member_it_carries(client, path):
    response = client.get(path)
    body = assert_problem(response, 429, "rate-limited")
    assert body["detail"] == "Slow down."
    assert body["errors"] == [{"pointer": "/limits/a~1b", "detail": "too many"}]
    assert body["violated-policies"] == [{"policy": "test", "quota": 1}]
    assert response["Retry-After"] == "7"
