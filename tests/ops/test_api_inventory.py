"""API inventory (issue 9, item 8): every URL the project routes is described in the
OpenAPI schema (``/openapi.json``) or on the short allow-list below, with why it is not;
and the schema describes no path, nor method, that is not routed."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Routed on purpose outside the schema. Each entry says why; keep this list short.
NOT_IN_SCHEMA = {
    "/health": "liveness probe (docs/design.md §4), for orchestrators, not API clients",
    "/readyz": "readiness probe, answers 200 or a 503 problem listing the checks",
    "/metrics": "Prometheus exposition format, scraped by Prometheus",
    "/openapi.json": "the schema itself",
    "/docs": "Swagger UI rendering the schema",
    "/redoc": "ReDoc rendering the schema",
    "/problems/{slug}": "problem type pages, the `type` URIs (docs/problems.md)",
    "/v1/results/{token}": "signed result download of the embedded default, a stand-in for an "
    "S3 presigned URL; clients only follow the run's result.download_url",
}
NOT_IN_SCHEMA_PREFIXES = {
    "/admin/": "Django admin, for operators (session login, CSRF), not the API",
    "/static/": "static files (admin, Swagger UI and ReDoc assets)",
}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_CONVERTER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<([^>]+)>[^)]*\)")


def as_openapi_path(route: str) -> str:
    """``v1/runs/<str:run_id>`` → ``/v1/runs/{run_id}``; regex routes likewise."""
    path = _REGEX_GROUP.sub(r"{\1}", route).replace("^", "").replace("$", "").replace("\\", "")
    return "/" + _CONVERTER.sub(r"{\1}", path)


def routes(patterns=None, prefix: str = "") -> dict[str, object]:
    """Every routed path (OpenAPI style) → its view callback, through every include."""
    found: dict[str, object] = {}
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found |= routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found[as_openapi_path(route)] = pattern.callback
    return found


def view_methods(callback) -> set[str]:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return set()
    return {method for method in HTTP_METHODS if hasattr(view_class, method)}


@pytest.fixture(scope="module")
def schema_paths() -> dict[str, dict]:
    from django.test import Client

    response = Client().get("/openapi.json")
    assert response.status_code == 200
    return response.json()["paths"]


def test_route_conversion() -> None:
    assert as_openapi_path("v1/runs/<str:run_id>") == "/v1/runs/{run_id}"
    assert as_openapi_path("problems/<slug:slug>") == "/problems/{slug}"
    assert as_openapi_path("^(?P<app_label>auth|dpp)/$") == "/{app_label}/"


def test_every_route_is_in_the_schema_or_on_the_allow_list(schema_paths) -> None:
    undocumented = [
        path
        for path in routes()
        if path not in schema_paths
        and path not in NOT_IN_SCHEMA
        and not path.startswith(tuple(NOT_IN_SCHEMA_PREFIXES))
    ]
    assert undocumented == [], "add them to the schema (extend_schema) or, with a reason, here"


def test_the_allow_list_names_only_routes_that_exist_and_are_not_in_the_schema(
    schema_paths,
) -> None:
    routed = routes()
    assert [path for path in NOT_IN_SCHEMA if path not in routed] == []
    assert [path for path in NOT_IN_SCHEMA if path in schema_paths] == []
    for prefix in NOT_IN_SCHEMA_PREFIXES:
        assert not [path for path in schema_paths if path.startswith(prefix)], prefix


def test_the_schema_describes_only_routed_paths_and_their_methods(schema_paths) -> None:
    routed = routes()
    assert sorted(set(schema_paths) - set(routed)) == []
    for path, operations in schema_paths.items():
        described = {method for method in operations if method in HTTP_METHODS}
        assert described == view_methods(routed[path]), path


def test_the_public_api_is_described(schema_paths) -> None:
    assert {"/v1/runs", "/v1/runs/{run_id}", "/v1/budget"} <= set(schema_paths)
