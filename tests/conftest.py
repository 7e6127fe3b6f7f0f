import pytest
from django.core.cache import cache
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rest_framework.test import APIClient

from dpp import tracing
from tests.factories import AccountFactory, issue_token

pytest_plugins = ["tests.external"]

SPANS = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def _tracing():
    """The test process traces like the API does; spans are kept in memory."""
    tracing.configure("dpp-api", processors=[SimpleSpanProcessor(SPANS)])


@pytest.fixture
def spans() -> InMemorySpanExporter:
    SPANS.clear()
    return SPANS


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters():
    """Rate-limit counters live in the test Redis database; each test starts from zero."""
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def account(db):
    return AccountFactory()


@pytest.fixture
def tenant(account):
    return account.tenant


@pytest.fixture
def auth_client(tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(tenant)}")
    return client
