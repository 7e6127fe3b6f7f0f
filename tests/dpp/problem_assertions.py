import re

PROBLEM = "application/problem+json"
_GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_problem(response, status: int, slug: str) -> dict:
    """The response is an RFC 9457 problem of type ``slug`` whose instance is its request id."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == f"urn:dpp:request:{response['X-Request-ID']}"
    return body
