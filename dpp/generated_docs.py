"""Management commands that write a document generated from code, or check it is current.

The documents in docs/ that restate a registry (problem types, plans) are generated, and
the test suite runs ``--check`` so that they cannot drift from the code.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class GeneratedDocCommand(BaseCommand):
    document: str  # path under docs/
    source: str  # what the document is generated from, for messages

    def render(self) -> str:
        raise NotImplementedError

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=Path(settings.BASE_DIR) / "docs" / self.document,
            help=f"File to write (default: docs/{self.document}).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing; exit non-zero if the file differs from the code.",
        )

    def handle(self, *args, output: Path, check: bool, **options) -> None:
        expected = self.render()
        if check:
            current = output.read_text(encoding="utf-8") if output.exists() else None
            if current != expected:
                raise CommandError(
                    f"{output} is out of date with {self.source}; "
                    f"run `python manage.py {self.__module__.rsplit('.', 1)[-1]}`."
                )
            self.stdout.write(f"{output} is up to date.")
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(expected, encoding="utf-8")
        self.stdout.write(f"Wrote {output}.")
