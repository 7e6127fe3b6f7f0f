from billing.rate_limit_docs import render_markdown
from dpp.generated_docs import GeneratedDocCommand


class Command(GeneratedDocCommand):
    help = "Generate docs/rate-limits.md from the seeded plans (--check: fail if stale)."
    document = "rate-limits.md"
    source = "the seeded plans"

    def render(self) -> str:
        return render_markdown()
