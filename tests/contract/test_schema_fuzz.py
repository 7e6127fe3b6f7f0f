"""Schemathesis drives every operation of the live OpenAPI schema with generated input.

Bounded: a fixed number of examples per operation. The contract: no 5xx, and every
response (problem documents included) conforms to the schema it claims. Schemathesis'
pytest plugin does not support this pytest release, so each operation's strategy is
driven with hypothesis directly.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from billing import services as billing
from tests.factories import AccountFactory, issue_token

EXAMPLES_PER_OPERATION = 40


@pytest.mark.django_db(transaction=True)
def test_api_never_errors_or_breaks_its_schema(live_server):
    account = AccountFactory()
    billing.top_up(account=account, amount_micros=5_000_000, reason="fuzz")
    headers = {"Authorization": f"Bearer {issue_token(account.tenant)}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/runs",
        "GET /v1/runs",
        "GET /v1/runs/{run_id}",
        "GET /v1/budget",
    }

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def exercise(case) -> None:
            case.call_and_validate(
                base_url=live_server.url,
                headers=headers,
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
            )

        exercise()


@pytest.mark.django_db(transaction=True)
def test_a_path_outside_latin_1_is_a_404_problem_not_a_500(live_server):
    """Found by the fuzzer: the tracing middleware could not re-quote such a path."""
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{live_server.url}/v1/runs/%15%F3%83%A5%8F", timeout=10)

    assert raised.value.code == 404
    assert raised.value.headers["Content-Type"] == "application/problem+json"
