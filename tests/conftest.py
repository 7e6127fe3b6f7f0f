from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.test import Client
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rest_framework.test import APIClient
from selenium.webdriver.remote.webdriver import WebDriver

from billing import services as billing
from billing.fees import minimum_fee
from billing.models import Account
from dpp import tracing
from runs.models import Run
from tests.browser import Page, start_chromium
from tests.execution.packs import PACK_LOG_ENV, TEST_PACKS
from tests.factories import USD, AccountFactory, RunFactory, issue_token
from tests.payloads import decision_inputs

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


@pytest.fixture
def operator(db) -> AbstractUser:
    """The on-call operator: a superuser, signed in with ``force_login`` (no password)."""
    return get_user_model().objects.create_superuser("oncall", "oncall@example.com", None)


@pytest.fixture
def admin_client(operator: AbstractUser) -> Client:
    """The operator's browser session in the admin."""
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless Chromium for the session (tests/browser.py)."""
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(chromium: WebDriver, live_server, settings, monkeypatch: pytest.MonkeyPatch) -> Page:
    """The browser on the test server (``live_server``, which commits what it writes),
    without the cookies an earlier test left."""
    # The browser keeps its connections to the server alive, and with them the request
    # threads: each must close its database connection after every request, or the test
    # database could not be dropped at the end of the session.
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)
    chromium.delete_all_cookies()
    return Page(chromium, live_server.url)


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
