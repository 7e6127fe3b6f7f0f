"""Every error on every path is an RFC 9457 problem (docs/design.md §4)."""

import json
import uuid

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import Client, RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, get_resolver

from dpp.handlers import bad_request
from dpp.problem_types import PROBLEM_TYPES
from tests.dpp.problem_assertions import PROBLEM, assert_problem

pytestmark = pytest.mark.django_db
with_test_urls = pytest.mark.urls("tests.dpp.urls")


def test_unknown_path_is_a_404_problem(client):
    assert_problem(client.get("/nowhere"), 404, "not-found")


def test_unknown_path_under_v1_is_a_404_problem(client):
    assert_problem(client.get("/v1/nowhere"), 404, "not-found")


def test_django_405_is_a_problem_that_keeps_the_allow_header(client):
    response = client.put("/health")
    assert_problem(response, 405, "method-not-allowed")
    assert response["Allow"] == "GET"


def test_drf_405_is_a_problem_that_keeps_the_allow_header(client):
    response = client.put("/openapi.json", data="{}", content_type="application/json")
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response["Allow"]


@with_test_urls
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_body_over_the_limit_to_a_drf_endpoint_is_a_413_problem(client):
    body = json.dumps({"title": "x" * 2048})
    response = client.post("/t/orders", data=body, content_type="application/json")
    assert_problem(response, 413, "payload-too-large")


@with_test_urls
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_body_over_the_limit_to_a_plain_django_endpoint_is_a_413_problem(client):
    response = client.post("/t/session-form", data={"username": "x" * 2048, "password": "y"})
    assert_problem(response, 413, "payload-too-large")


def test_request_data_too_big_raised_while_parsing_is_a_413_problem():
    response = bad_request(RequestFactory().post("/v1/runs"), RequestDataTooBig("big"))
    assert response.status_code == 413
    assert json.loads(response.content)["type"] == "/problems/payload-too-large"


@with_test_urls
def test_non_json_body_to_a_drf_endpoint_is_a_415_problem(client):
    response = client.post("/t/orders", data="title=x", content_type="text/plain")
    assert_problem(response, 415, "unsupported-media-type")


@with_test_urls
def test_unparseable_json_is_a_400_problem(client):
    response = client.post("/t/orders", data="{not json", content_type="application/json")
    assert_problem(response, 400, "malformed-request")


@with_test_urls
def test_validation_errors_point_into_the_nested_body(client):
    body = {
        "lines": [{"name": "ok", "qty": 1}, {"name": "toolong", "qty": 0}],
        "tags": [1, 2, "x"],
        "weights": {"a/b": "x", "c~d": 1},
        "limits": {"max_cost_usd": "abc"},
    }
    response = client.post("/t/orders", data=body, content_type="application/json")
    problem = assert_problem(response, 422, "validation-error")
    pointers = {e["pointer"] for e in problem["errors"]}
    assert pointers == {
        "/title",
        "/lines/1/name",
        "/lines/1/qty",
        "/tags/2",
        "/weights/a~1b",
        "/limits/max_cost_usd",
    }
    assert all(e["detail"] for e in problem["errors"])


@with_test_urls
def test_a_body_that_is_not_an_object_points_at_the_whole_document(client):
    response = client.post("/t/orders", data=[1, 2], content_type="application/json")
    problem = assert_problem(response, 422, "validation-error")
    assert [e["pointer"] for e in problem["errors"]] == [""]


@with_test_urls
@pytest.mark.parametrize("path", ["/t/boom", "/t/boom-drf"])
def test_unhandled_error_is_a_500_problem_without_the_stack(path, json_logs):
    client = Client(raise_request_exception=False)
    response = client.get(path, {"q": "marker-42"})
    problem = assert_problem(response, 500, "internal-error")
    text = response.content.decode()
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert "marker-42" not in text
    assert "boom" not in problem["detail"]
    (error,) = [line for line in json_logs.all() if line["level"] == "ERROR"]
    assert "Traceback (most recent call last)" in error["exc_info"]
    assert "RuntimeError: boom" in error["exc_info"]
    assert "marker-42" in error["exc_info"]
    assert error["request_id"] == response["X-Request-ID"]


@with_test_urls
def test_csrf_failure_on_a_session_form_is_a_403_problem():
    client = Client(enforce_csrf_checks=True)
    assert_problem(client.post("/t/session-form", {"a": "b"}), 403, "csrf-failed")


def test_a_well_formed_incoming_request_id_is_echoed(client):
    response = client.get("/nowhere", headers={"X-Request-ID": "client-req-0001"})
    assert response["X-Request-ID"] == "client-req-0001"
    assert response.json()["instance"] == "urn:dpp:request:client-req-0001"


@pytest.mark.parametrize("incoming", ["short", "has spaces in it", "<script>alert(1)</script>"])
def test_a_malformed_incoming_request_id_is_replaced(client, incoming):
    response = client.get("/nowhere", headers={"X-Request-ID": incoming})
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize("slug", sorted(PROBLEM_TYPES))
def test_every_registered_problem_type_has_a_page(client, slug):
    problem = PROBLEM_TYPES[slug]
    page = client.get(f"/problems/{slug}")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert problem.title in page.content.decode()
    as_json = client.get(f"/problems/{slug}", headers={"Accept": "application/json"})
    assert as_json.json() == {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "description": problem.description,
    }


def test_an_unknown_problem_slug_is_a_404_problem(client):
    assert_problem(client.get("/problems/no-such-problem"), 404, "not-found")


def _v1_operations() -> list[tuple[str, str]]:
    """(method, path) of every /v1 route that authenticates, with sample path parameters."""

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p.callback

    operations = []
    for route, callback in walk(get_resolver().url_patterns, "/"):
        view = getattr(callback, "view_class", None)
        if not route.startswith("/v1/") or view is None:
            continue
        if getattr(view, "authentication_classes", None) == []:
            continue  # public by design (e.g. a signed download link)
        path = route
        while "<" in path:
            start, end = path.index("<"), path.index(">")
            path = path[:start] + str(uuid.uuid4()) + path[end + 1 :]
        methods = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]
        operations += [(method, path) for method in methods]
    return operations


def test_every_v1_operation_without_a_key_is_a_401_problem_with_a_bearer_challenge(client):
    operations = _v1_operations()
    if not operations:
        pytest.skip("no /v1 routes are installed yet")
    for method, path in operations:
        response = getattr(client, method)(path, data={}, content_type="application/json")
        assert_problem(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"].startswith("Bearer"), (method, path)


def test_problem_content_type_is_exactly_problem_json(client):
    assert client.get("/nowhere")["Content-Type"] == PROBLEM
