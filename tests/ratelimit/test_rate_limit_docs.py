from django.core.management import call_command

from billing.ratelimit_policies import seeded_plans


def test_the_committed_document_matches_the_plans():
    call_command("dpp_rate_limits_doc", "--check")


def test_the_document_lists_every_plan_with_its_quotas(tmp_path):
    output = tmp_path / "rate-limits.md"
    call_command("dpp_rate_limits_doc", output=output)

    document = output.read_text(encoding="utf-8")
    for plan in seeded_plans():
        assert (
            f"| `{plan.name}` | {plan.submit_per_minute} | {plan.poll_per_minute} "
            f"| {plan.max_concurrent_runs} |"
        ) in document
    assert "Retry-After" in document
    assert "X-RateLimit" not in document
