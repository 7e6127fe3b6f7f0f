"""Write docs/problems.md from the problem-type registry, or check that it is current."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dpp.problem_docs import render_markdown


class Command(BaseCommand):
    help = "Generate docs/problems.md from dpp/problem_types.py (--check: fail if stale)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=Path(settings.BASE_DIR) / "docs" / "problems.md",
            help="File to write (default: docs/problems.md).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing; exit non-zero if the file differs from the registry.",
        )

    def handle(self, *args, output: Path, check: bool, **options) -> None:
        expected = render_markdown()
        if check:
            current = output.read_text(encoding="utf-8") if output.exists() else None
            if current != expected:
                raise CommandError(
                    f"{output} is out of date with dpp/problem_types.py; "
                    "run `python manage.py dpp_problems_doc`."
                )
            self.stdout.write(f"{output} is up to date.")
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(expected, encoding="utf-8")
        self.stdout.write(f"Wrote {output} ({expected.count(chr(10) + '## ')} problem types).")
