import pytest

PROBLEM = "application/problem+json"


@pytest.mark.django_db
def test_unknown_path_is_a_404_problem(api_client):
    response = api_client.get("/nowhere")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["type"] == "/problems/not-found"
    assert body["instance"] == f"urn:dpp:request:{response['X-Request-ID']}"


@pytest.mark.django_db
def test_unauthenticated_v1_request_is_a_401_problem_with_bearer_challenge(api_client):
    response = api_client.get("/v1/budget")
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["type"] == "/problems/unauthenticated"
