import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import AccountFactory, issue_token

pytest_plugins = ["tests.external"]


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
