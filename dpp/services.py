"""Writes of the platform core: tenants and their API keys."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from dpp import api_keys
from dpp.errors import ApiKeyNotFound
from dpp.models import ApiKey, Tenant


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    token: str  # shown once; only its hash is stored


@transaction.atomic
def tenant_create(*, name: str) -> Tenant:
    return Tenant.objects.create(name=name)


@transaction.atomic
def tenant_suspend(*, tenant: Tenant) -> Tenant:
    """Every key of the tenant answers 403 ``tenant-suspended`` from the next request on."""
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    tenant.refresh_from_db(fields=["status"])
    return tenant


@transaction.atomic
def tenant_reactivate(*, tenant: Tenant) -> Tenant:
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.ACTIVE)
    tenant.refresh_from_db(fields=["status"])
    return tenant


@transaction.atomic
def api_key_issue(*, tenant: Tenant, label: str = "") -> IssuedKey:
    prefix, secret = api_keys.new_prefix(), api_keys.new_secret()
    key = ApiKey.objects.create(
        tenant=tenant, prefix=prefix, secret_hash=api_keys.hash_secret(secret), label=label
    )
    return IssuedKey(api_key=key, token=api_keys.format_token(prefix, secret))


@transaction.atomic
def api_key_revoke(*, prefix: str) -> ApiKey:
    updated = ApiKey.objects.filter(prefix=prefix, status=ApiKey.Status.ACTIVE).update(
        status=ApiKey.Status.REVOKED, revoked_at=timezone.now()
    )
    try:
        key = ApiKey.objects.get(prefix=prefix)
    except ApiKey.DoesNotExist as exc:
        raise ApiKeyNotFound(prefix) from exc
    if not updated and key.status != ApiKey.Status.REVOKED:
        raise ApiKeyNotFound(prefix)
    return key


def api_key_touch(*, key: ApiKey) -> None:
    """Record use at most once a minute, so authentication is not a write per request."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
