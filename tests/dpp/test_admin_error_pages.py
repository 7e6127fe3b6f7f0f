"""The admin is a browser application: its errors are HTML pages, while every other path
keeps answering problem documents (docs/design.md §4, §8)."""

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from tests.dpp.problem_assertions import PROBLEM, assert_problem

pytestmark = pytest.mark.django_db

HTML = "text/html; charset=utf-8"


def assert_admin_page(response, status: int, text: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"] == HTML
    page = response.content.decode()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert text in page
    return page


def test_an_unknown_admin_page_is_an_html_404_in_the_admins_look(admin_client: Client):
    page = assert_admin_page(admin_client.get("/admin/nowhere/"), 404, "404 Not Found")

    assert "No admin page exists at this URL." in page
    assert "DecisionProof Platform" in page  # the admin's header, with its navigation
    assert reverse("admin:logout") in page


def test_a_refused_admin_change_is_an_html_403(admin_client: Client, funded_account):
    transfer = funded_account.transfers.get()

    response = admin_client.post(reverse("admin:billing_transfer_change", args=[transfer.pk]))

    assert_admin_page(response, 403, "You do not have permission to do this.")


def test_an_admin_crash_is_an_html_500_and_the_traceback_goes_to_the_log(
    admin_client: Client, monkeypatch, json_logs
):
    def broken(*args, **kwargs):
        raise RuntimeError("admin bug marker-77")

    monkeypatch.setattr("config.admin.audit_required_count", broken)
    admin_client.raise_request_exception = False

    response = admin_client.get(reverse("admin:index"))

    page = assert_admin_page(response, 500, "500 Internal Server Error")
    assert f"quote request {response['X-Request-ID']} to support" in page
    assert "marker-77" not in page
    assert "Traceback" not in page
    (error,) = [line for line in json_logs.all() if line["level"] == "ERROR"]
    assert "RuntimeError: admin bug marker-77" in error["exc_info"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_an_oversized_admin_form_is_an_html_413(client: Client):
    response = client.post("/admin/login/", data={"username": "x" * 2048, "password": "y"})

    assert_admin_page(response, 413, "the limit is 1024 bytes")


def test_a_csrf_failure_in_the_admin_is_an_html_403():
    client = Client(enforce_csrf_checks=True)

    response = client.post("/admin/login/", {"username": "x", "password": "y"})

    assert_admin_page(response, 403, "CSRF verification failed")


def test_the_api_keeps_answering_problem_documents(client: Client):
    assert_problem(client.get("/v1/nowhere"), 404, "not-found")
    assert_problem(client.get("/adminx/"), 404, "not-found")
    response = client.get("/v1/budget")
    assert response["Content-Type"] == PROBLEM
