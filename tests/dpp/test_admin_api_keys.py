"""Admin: a new key's secret is shown once, never again; revoking goes through the service."""

import re

import pytest
from django.contrib.auth import get_user_model

from dpp import api_keys
from dpp.models import ApiKey, Tenant
from dpp.services import api_key_issue
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

_TOKEN = re.compile(r"dpp_[a-z0-9]{12}_[A-Za-z0-9]{43}")


@pytest.fixture
def admin_client(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests")
    client.force_login(user)
    return client


@pytest.fixture
def tenant() -> Tenant:
    return TenantFactory(name="acme")


def _create_key(admin_client, tenant) -> tuple[str, str]:
    response = admin_client.post(
        "/admin/dpp/apikey/add/", {"tenant": str(tenant.pk), "label": "ci"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    (token,) = set(_TOKEN.findall(html))
    assert "shown once" in html
    return token, response["Cache-Control"]


def test_the_add_form_asks_only_for_tenant_and_label(admin_client, tenant):
    html = admin_client.get("/admin/dpp/apikey/add/").content.decode()
    assert 'name="tenant"' in html
    assert 'name="label"' in html
    for hidden in ("prefix", "secret_hash", "status", "revoked_at"):
        assert f'name="{hidden}"' not in html


def test_creating_a_key_in_the_admin_shows_a_working_secret_once(admin_client, tenant):
    token, cache_control = _create_key(admin_client, tenant)
    assert "no-store" in cache_control
    key = ApiKey.objects.get()
    assert key.tenant == tenant
    assert key.label == "ci"
    assert token.startswith(f"dpp_{key.prefix}_")
    assert api_keys.secret_matches(api_keys.parse_token(token).secret, key.secret_hash)


def test_the_secret_is_never_shown_again(admin_client, tenant):
    token, _ = _create_key(admin_client, tenant)
    key = ApiKey.objects.get()
    secret = api_keys.parse_token(token).secret
    for url in (
        f"/admin/dpp/apikey/{key.pk}/change/",
        "/admin/dpp/apikey/",
        f"/admin/dpp/tenant/{tenant.pk}/change/",
        "/admin/",
    ):
        html = admin_client.get(url).content.decode()
        assert secret not in html, url
        assert key.secret_hash not in html, url
    # Nothing kept it for a later page either: no session entry, no message cookie.
    assert secret not in str(dict(admin_client.session))
    assert all(secret not in morsel.value for morsel in admin_client.cookies.values())


def test_the_change_page_shows_prefix_status_and_timestamps(admin_client, tenant):
    key = api_key_issue(tenant=tenant, label="ops").api_key
    html = admin_client.get(f"/admin/dpp/apikey/{key.pk}/change/").content.decode()
    assert key.prefix in html
    assert "ACTIVE" in html or "Active" in html
    assert "Last used at" in html
    assert "Revoked at" in html
    assert "secret_hash" not in html


def test_the_revoke_action_revokes_through_the_service(admin_client, tenant):
    issued = api_key_issue(tenant=tenant, label="to revoke")
    kept = api_key_issue(tenant=tenant, label="kept")
    response = admin_client.post(
        "/admin/dpp/apikey/",
        {"action": "revoke", "_selected_action": [str(issued.api_key.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Revoked 1 API key(s)." in response.content.decode()
    issued.api_key.refresh_from_db()
    kept.api_key.refresh_from_db()
    assert issued.api_key.status == ApiKey.Status.REVOKED
    assert issued.api_key.revoked_at is not None
    assert kept.api_key.status == ApiKey.Status.ACTIVE


@pytest.mark.urls("tests.dpp.urls")
def test_a_key_revoked_in_the_admin_stops_authenticating(admin_client, client, tenant):
    issued = api_key_issue(tenant=tenant)
    bearer = {"Authorization": f"Bearer {issued.token}"}
    assert client.get("/t/private", headers=bearer).status_code == 200
    admin_client.post(
        "/admin/dpp/apikey/", {"action": "revoke", "_selected_action": [str(issued.api_key.pk)]}
    )
    admin_client.logout()
    assert client.get("/t/private", headers=bearer).status_code == 401


def test_keys_cannot_be_deleted_only_revoked(admin_client, tenant):
    key = api_key_issue(tenant=tenant).api_key
    assert admin_client.get(f"/admin/dpp/apikey/{key.pk}/delete/").status_code == 403


def test_the_suspend_action_suspends_the_tenant(admin_client, tenant):
    admin_client.post(
        "/admin/dpp/tenant/", {"action": "suspend", "_selected_action": [str(tenant.pk)]}
    )
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED
