from billing.ratelimit_policies import documented_plans
from dpp.generated_docs import GeneratedDocCommand
from dpp.ratelimit.docs import render_markdown


class Command(GeneratedDocCommand):
    help = "Generate docs/rate-limits.md from the seeded plans (--check: fail if stale)."
    document = "rate-limits.md"
    source = "the seeded plans"

    def render(self) -> str:
        return render_markdown(documented_plans())
