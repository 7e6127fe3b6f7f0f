"""Fixtures for the billing tests."""

from collections.abc import Callable
from typing import Any

import pytest

from billing import services
from billing.models import Account
from tests.billing.helpers import USD
from tests.factories import AccountFactory, seeded_plan


@pytest.fixture
def funded_account(db) -> Callable[..., Account]:
    """``funded_account(usd=10)``: a fresh tenant's account with an opening top-up."""

    def make(usd: int = 10, **kwargs: Any) -> Account:
        account = AccountFactory(**kwargs)
        if usd:
            services.top_up(account=account, amount_micros=usd * USD, reason="test")
        account.refresh_from_db()
        return account

    return make


@pytest.fixture
def plans(db) -> None:
    """The seeded plans, restored if a transactional test flushed them."""
    seeded_plan("free")
    seeded_plan("pilot")
