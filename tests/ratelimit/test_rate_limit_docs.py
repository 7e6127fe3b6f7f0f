from django.core.management import call_command

from billing.rate_limit_docs import render_markdown, seeded_plans


def test_the_committed_document_matches_the_plans():
    call_command("dpp_rate_limits_doc", "--check")


def test_the_document_lists_every_plan_with_its_quotas():
    document = render_markdown()
    for plan in seeded_plans():
        assert f"| `{plan['name']}` | {plan['submit_per_minute']} | {plan['poll_per_minute']} " in (
            document
        )
    assert "Retry-After" in document
    assert "X-RateLimit" not in document
