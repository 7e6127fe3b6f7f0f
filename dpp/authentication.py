"""Bearer API-key authentication for DRF; the tenant becomes ``request.auth``."""

from django.http import HttpRequest
from rest_framework import authentication, permissions
from rest_framework.request import Request

from dpp import api_keys, context
from dpp.models import ApiKey, Tenant
from dpp.problems import ProblemError
from dpp.services import api_key_touch


def key_from_request(request: HttpRequest) -> ApiKey | None:
    """The active API key the request authenticates with, or None when it sends none.

    Raises the 401 problem for a malformed, unknown or revoked key. Resolved once per
    request: the rate limiter (middleware) and DRF's authentication both ask.
    """
    if hasattr(request, "api_key"):
        return request.api_key
    header = request.META.get("HTTP_AUTHORIZATION", "")
    key = _resolve(header) if header else None
    request.api_key = key
    return key


def _resolve(header: str) -> ApiKey:
    scheme, _, token = header.partition(" ")
    parsed = api_keys.parse_token(token.strip()) if scheme.lower() == "bearer" else None
    if parsed is None:
        raise _unauthenticated("The Authorization header is not a DPP Bearer key.")
    key = (
        ApiKey.objects.select_related("tenant")
        .filter(prefix=parsed.prefix, status=ApiKey.Status.ACTIVE)
        .first()
    )
    # Hash even when the prefix is unknown, so timing does not reveal which prefixes exist.
    matches = api_keys.secret_matches(parsed.secret, key.secret_hash if key else "0" * 64)
    if key is None or not matches:
        raise _unauthenticated("The API key is unknown or revoked.")
    api_key_touch(key=key)
    context.update(tenant_id=str(key.tenant_id))
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, Tenant] | None:
        key = key_from_request(request._request)
        return None if key is None else (None, key.tenant)

    def authenticate_header(self, request: HttpRequest) -> str:
        return 'Bearer realm="dpp"'


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(
        "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="dpp"'}
    )


class IsActiveTenant(permissions.BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        tenant = request.auth
        if not isinstance(tenant, Tenant):
            raise _unauthenticated("Send Authorization: Bearer dpp_<prefix>_<secret>.")
        if not tenant.is_active:
            raise ProblemError("tenant-suspended", "This tenant is suspended.")
        return True
