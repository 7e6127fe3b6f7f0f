"""`manage.py dpp_demo`: the demo tenant and key of `make run`, created once, then reused."""

import io
import stat

import pytest
from django.core.management import call_command

from dpp import api_keys
from dpp.models import ApiKey, Tenant
from dpp.services import api_key_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def _demo(port: int = 8123) -> str:
    out = io.StringIO()
    call_command("dpp_demo", port=port, stdout=out)
    return out.getvalue()


def test_the_first_run_creates_a_tenant_with_a_10_dollar_budget_and_a_private_key(var_dir):
    output = _demo()
    key_file = var_dir / "demo_api_key"
    token = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert api_keys.parse_token(token)
    key = ApiKey.objects.select_related("tenant__account").get()
    assert key.tenant.account.available_micros == 10_000_000
    assert token in output
    assert "http://127.0.0.1:8123/v1/runs" in output
    assert "http://127.0.0.1:8123/v1/budget" in output
    assert "Idempotency-Key" in output


def test_later_runs_reuse_the_saved_key(var_dir):
    _demo()
    first = (var_dir / "demo_api_key").read_text()
    output = _demo()
    assert (var_dir / "demo_api_key").read_text() == first
    assert Tenant.objects.count() == 1
    assert "Reusing" in output


def test_a_saved_key_that_no_longer_works_is_replaced(var_dir):
    _demo()
    old = (var_dir / "demo_api_key").read_text().strip()
    api_key_revoke(prefix=api_keys.parse_token(old).prefix)
    _demo()
    new = (var_dir / "demo_api_key").read_text().strip()
    assert new != old
    assert ApiKey.objects.filter(status=ApiKey.Status.ACTIVE).count() == 1
