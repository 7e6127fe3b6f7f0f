from dpp.generated_docs import GeneratedDocCommand
from dpp.problem_docs import render_markdown


class Command(GeneratedDocCommand):
    help = "Generate docs/problems.md from dpp/problem_types.py (--check: fail if stale)."
    document = "problems.md"
    source = "dpp/problem_types.py"

    def render(self) -> str:
        return render_markdown()
