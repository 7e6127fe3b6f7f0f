"""/openapi.json is a valid OpenAPI 3.1 document; /docs and /redoc load only local assets."""

import re
from urllib.parse import urlsplit

import pytest
from openapi_spec_validator import validate

from dpp.openapi import problem_responses
from tests.dpp.problem_assertions import PROBLEM

_ASSET = re.compile(r"<(?:script|link)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)[\"']", re.I)


def test_openapi_json_is_a_valid_openapi_3_1_document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0].endswith("json")
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_openapi_declares_the_bearer_api_key_scheme(client):
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["ApiKey"]["type"] == "http"
    assert schemes["ApiKey"]["scheme"] == "bearer"


def test_every_documented_error_response_is_a_problem(client):
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if operation.get("security"):
                assert "401" in operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM], (method, path, status)
                    schema = response["content"][PROBLEM]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.urls("tests.dpp.urls")
def test_problem_responses_render_as_problem_json_with_the_problem_schema(client):
    spec = client.get("/openapi.json").json()
    validate(spec)
    operation = spec["paths"]["/t/private"]["get"]
    assert operation["security"] == [{"ApiKey": []}]
    for status in ("401", "403"):
        content = operation["responses"][status]["content"]
        assert content == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "/problems/tenant-suspended" in operation["responses"]["403"]["description"]
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance"}
    assert problem["properties"]["errors"]["items"] == {
        "$ref": "#/components/schemas/ProblemFieldError"
    }


def test_problem_responses_refuses_success_statuses():
    with pytest.raises(ValueError, match="4xx/5xx"):
        problem_responses(200)


@pytest.mark.django_db  # closing a streamed asset fires request_finished, which checks the DB
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_loads_every_asset_from_this_server(client, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assets = _ASSET.findall(html)
    assert any(url.endswith(".js") for url in assets), html
    for url in assets:
        parts = urlsplit(url)
        assert not parts.scheme, f"{page} loads {url} from another host"
        assert not parts.netloc, f"{page} loads {url} from another host"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content), url
        asset.close()
    assert "googleapis" not in html
    assert "cdn" not in html.lower()


def test_docs_are_public_even_with_a_stale_authorization_header(client):
    headers = {"Authorization": "Bearer not-a-key"}
    assert client.get("/openapi.json", headers=headers).status_code == 200
    assert client.get("/docs", headers=headers).status_code == 200
