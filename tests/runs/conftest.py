import pytest

from billing.models import Account, Transfer
from runs.models import Run
from tests.factories import issue_token


@pytest.fixture
def client_for(api_client):
    """An API client authenticated as the given account's tenant."""

    def make(account: Account):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(account.tenant)}")
        return api_client

    return make


@pytest.fixture
def funded_client(funded_account, client_for):
    return client_for(funded_account)


def ledger_snapshot(account: Account) -> tuple:
    account.refresh_from_db()
    return (
        account.credits_posted,
        account.debits_posted,
        account.debits_pending,
        Run.objects.filter(tenant=account.tenant).count(),
        Transfer.objects.filter(account=account).count(),
    )
