"""The release packet (issue 9, item 7): the release notes at the repository root, where
the pilot document points, and docs/PILOT_READY.md. Every proof they cite must exist: the
tests, the management commands, the linked documents and their sections."""

import re
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.db.migrations.loader import MigrationLoader

REPO = Path(__file__).resolve().parents[2]
RELEASE_NOTES = REPO / "RELEASE_NOTES_v0.4_RC.md"
PILOT_READY = REPO / "docs" / "PILOT_READY.md"
DOCS = (RELEASE_NOTES, PILOT_READY)
APPS = ("dpp", "billing", "runs", "reaper")


def test_the_release_notes_are_at_the_repository_root_and_linked() -> None:
    assert RELEASE_NOTES.is_file()
    readme = (REPO / "README.md").read_text()
    assert "](RELEASE_NOTES_v0.4_RC.md)" in readme
    assert "](docs/PILOT_READY.md)" in readme


def test_the_release_notes_list_every_migration_for_the_rollback() -> None:
    """Level 3 of the rollback needs each app's migrations of this release."""
    text = RELEASE_NOTES.read_text()
    section = text[text.index("## Migrations in this release") :]
    section = section[: section.index("\n## ", 1)]
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for app, name in sorted(loader.disk_migrations):
        if app in APPS:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{app}` |"))
            assert f"`{name}`" in row, f"{app}.{name} missing from the release notes"


def test_the_release_notes_cover_the_required_sections() -> None:
    text = RELEASE_NOTES.read_text()
    for heading in ("## Changes", "## Compatibility", "## Known issues", "## Rollback plan"):
        assert heading in text
    for known_issue in ("VisibilityTimeout", "at least once", "single-machine"):
        assert known_issue in text
    assert "](docs/runbooks/rollback.md)" in text


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_the_cited_tests_exist(doc: Path) -> None:
    text = doc.read_text()
    paths = set(re.findall(r"`(tests/[\w./]*)`", text))
    assert paths, "a proof page without tests"
    for path in paths:
        assert (REPO / path).exists(), f"{doc.name}: {path}"
    defined = {
        name
        for source in (REPO / "tests").rglob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", source.read_text(), flags=re.MULTILINE)
    }
    for name in re.findall(r"`(test_\w+)`", text):
        assert name in defined, f"{doc.name}: {name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_the_cited_commands_exist(doc: Path) -> None:
    cited = set(re.findall(r"manage(?:\.py)? (\w+)", doc.read_text()))
    assert {"dpp_preflight", "dpp_audit"} <= cited
    assert cited <= set(get_commands()), cited - set(get_commands())


def test_pilot_ready_answers_every_entry_criterion_section() -> None:
    text = PILOT_READY.read_text()
    for section in (
        "Code quality",
        "Infrastructure ready",
        "Observability",
        "Security",
        "Testing & validation",
        "Documentation",
        "Team readiness",
    ):
        assert f"### {section}\n" in text, section
    for human_only in ("IAM roles", "Network security groups", "Incident response contacts"):
        row = next(line for line in text.splitlines() if human_only in line)
        assert "Human" in row, human_only
