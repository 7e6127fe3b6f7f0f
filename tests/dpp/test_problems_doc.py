"""docs/problems.md is generated from the registry and kept current."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from dpp.problem_docs import render_markdown
from dpp.problem_types import PROBLEM_TYPES

COMMITTED = Path(settings.BASE_DIR) / "docs" / "problems.md"


def test_the_committed_problems_doc_matches_the_registry():
    assert COMMITTED.read_text(encoding="utf-8") == render_markdown(), (
        "docs/problems.md is stale: run `python manage.py dpp_problems_doc`"
    )


def test_the_doc_has_a_section_for_every_problem_type():
    text = render_markdown()
    for problem in PROBLEM_TYPES.values():
        assert f"\n## {problem.slug}\n" in text
        assert problem.description in text


def test_the_command_writes_the_file(tmp_path):
    output = tmp_path / "problems.md"
    call_command("dpp_problems_doc", output=output)
    assert output.read_text(encoding="utf-8") == render_markdown()
    call_command("dpp_problems_doc", output=output, check=True)


def test_check_fails_when_the_file_differs(tmp_path):
    output = tmp_path / "problems.md"
    output.write_text(render_markdown() + "edited by hand\n", encoding="utf-8")
    with pytest.raises(CommandError, match="out of date"):
        call_command("dpp_problems_doc", output=output, check=True)


def test_check_fails_when_the_file_is_missing(tmp_path):
    with pytest.raises(CommandError):
        call_command("dpp_problems_doc", output=tmp_path / "missing.md", check=True)
