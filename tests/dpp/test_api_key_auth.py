"""Bearer API keys: format, storage, and every way authentication can fail (docs/design.md §4)."""

import hashlib
import hmac
import math
import re
from unittest import mock

import pytest
from django.conf import settings

from dpp import api_keys
from dpp.models import ApiKey, Tenant
from dpp.services import api_key_issue, api_key_revoke, tenant_suspend
from tests.dpp.problem_assertions import assert_problem
from tests.factories import TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.dpp.urls")]

PRIVATE = "/t/private"


@pytest.fixture
def tenant() -> Tenant:
    return TenantFactory()


@pytest.fixture
def token(tenant) -> str:
    return api_key_issue(tenant=tenant, label="test").token


def _get(client, authorization: str | None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.get(PRIVATE, headers=headers)


def _assert_unauthenticated(response) -> None:
    assert_problem(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_active_key_authenticates(client, token):
    response = _get(client, f"Bearer {token}")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_a_missing_key_is_401(client):
    _assert_unauthenticated(_get(client, None))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer not-a-dpp-key",
        "Basic dXNlcjpwYXNz",
        "Bearer dpp_SHORT_abc",
        "Bearer dpp_ABCDEFGHIJKL_" + "a" * 43,  # upper-case prefix
        "Bearer dpp_abcdefghijkl_" + "a" * 42,  # secret one character short
    ],
)
def test_a_malformed_key_is_401(client, authorization):
    _assert_unauthenticated(_get(client, authorization))


def test_an_unknown_well_formed_key_is_401(client, token):
    unknown = api_keys.format_token(api_keys.new_prefix(), api_keys.new_secret())
    _assert_unauthenticated(_get(client, f"Bearer {unknown}"))


def test_a_known_prefix_with_the_wrong_secret_is_401(client, token):
    prefix = api_keys.parse_token(token).prefix
    wrong = api_keys.format_token(prefix, api_keys.new_secret())
    _assert_unauthenticated(_get(client, f"Bearer {wrong}"))


def test_a_revoked_key_is_401(client, token):
    api_key_revoke(prefix=api_keys.parse_token(token).prefix)
    _assert_unauthenticated(_get(client, f"Bearer {token}"))


def test_a_suspended_tenant_is_403(client, tenant, token):
    tenant_suspend(tenant=tenant)
    assert_problem(_get(client, f"Bearer {token}"), 403, "tenant-suspended")


def test_the_key_format_is_prefix_and_256_bit_secret(token):
    assert re.fullmatch(r"dpp_[a-z0-9]{12}_[A-Za-z0-9]{43}", token)
    assert api_keys.SECRET_LENGTH * math.log2(62) >= 256


def test_issued_keys_are_distinct():
    tenant = TenantFactory()
    tokens = {api_key_issue(tenant=tenant).token for _ in range(20)}
    assert len(tokens) == 20


def test_only_a_peppered_hmac_of_the_secret_is_stored(token):
    secret = api_keys.parse_token(token).secret
    row = ApiKey.objects.filter(prefix=api_keys.parse_token(token).prefix).values().get()
    for value in row.values():
        assert secret not in str(value)
        assert token not in str(value)
    pepper = settings.DPP_API_KEY_PEPPER.encode()
    assert row["secret_hash"] == hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()
    assert row["secret_hash"] != hashlib.sha256(secret.encode()).hexdigest()


def test_the_secret_is_compared_in_constant_time(client, token):
    with mock.patch.object(api_keys.hmac, "compare_digest", wraps=hmac.compare_digest) as cmp:
        assert _get(client, f"Bearer {token}").status_code == 200
    cmp.assert_called_once()


def test_an_unknown_prefix_still_costs_a_comparison(client):
    # Timing must not tell an attacker which prefixes exist.
    unknown = api_keys.format_token(api_keys.new_prefix(), api_keys.new_secret())
    with mock.patch.object(api_keys.hmac, "compare_digest", wraps=hmac.compare_digest) as cmp:
        _assert_unauthenticated(_get(client, f"Bearer {unknown}"))
    cmp.assert_called_once()


def test_authentication_records_last_use(client, token):
    prefix = api_keys.parse_token(token).prefix
    assert ApiKey.objects.get(prefix=prefix).last_used_at is None
    _get(client, f"Bearer {token}")
    assert ApiKey.objects.get(prefix=prefix).last_used_at is not None
