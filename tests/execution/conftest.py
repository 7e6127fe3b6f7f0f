from collections.abc import Callable
from pathlib import Path

import pytest

from billing import services as billing
from billing.fees import minimum_fee
from billing.models import Account
from runs.models import Run
from tests.execution.packs import PACK_LOG_ENV, TEST_PACKS
from tests.factories import AccountFactory, RunFactory
from tests.payloads import decision_inputs

USD = 1_000_000


@pytest.fixture
def local_results(settings, tmp_path: Path) -> Path:
    """Result files in a throwaway directory instead of var/results."""
    location = tmp_path / "results"
    settings.STORAGES = {
        **settings.STORAGES,
        "results": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        },
    }
    return location


@pytest.fixture
def pack_log(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registers the test packs; the returned file lists every counting-pack execution."""
    settings.DPP_PACKS = {**settings.DPP_PACKS, **TEST_PACKS}
    log = tmp_path / "executions.log"
    log.touch()
    monkeypatch.setenv(PACK_LOG_ENV, str(log))
    return log


@pytest.fixture
def funded_account(db) -> Account:
    account = AccountFactory()
    billing.top_up(account=account, amount_micros=10 * USD, reason="test")
    return account


@pytest.fixture
def make_run(funded_account: Account, local_results: Path, pack_log: Path) -> Callable[..., Run]:
    """A QUEUED run with its RESERVE, as submit_run leaves it (without publishing)."""

    def make(
        *,
        pack_type: str = "decision",
        inputs: dict | None = None,
        reserved_micros: int = 50_000,
        timebox_sec: int = 30,
        min_reliability_score: float = 0.0,
    ) -> Run:
        run = RunFactory(
            tenant=funded_account.tenant,
            pack_type=pack_type,
            inputs=decision_inputs() if inputs is None else inputs,
            reserved_micros=reserved_micros,
            minimum_fee_micros=minimum_fee(reserved_micros),
            timebox_sec=timebox_sec,
            min_reliability_score=min_reliability_score,
        )
        billing.reserve(run=run, amount_micros=reserved_micros)
        return run

    return make
