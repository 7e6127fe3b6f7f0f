"""Secret scan (issue 9, item 8; the pilot document's Security: "No hardcoded credentials").

``detect-secrets`` scans every file git would commit (tracked, plus untracked files that
are not ignored) with the plugins and filters of the committed ``.secrets.baseline``. A
finding fails the test unless the baseline lists it as an audited false positive.

A false positive is marked where it is, on its line: ``# pragma: allowlist secret``
(``<!-- pragma: allowlist secret -->`` in Markdown). Only what cannot carry a comment (a
line inside a docstring) goes into the baseline, audited (``"is_secret": false``):
``detect-secrets scan --baseline .secrets.baseline`` then ``detect-secrets audit
.secrets.baseline``.
"""

import subprocess
from contextlib import chdir
from pathlib import Path

import pytest
from detect_secrets import SecretsCollection
from detect_secrets.core import baseline
from detect_secrets.settings import transient_settings

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / ".secrets.baseline"


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(
        name
        for name in set(listed.split("\0"))
        if name and name != BASELINE.name and (REPO / name).is_file()
    )


def scan(root: Path, files: list[str]) -> tuple[SecretsCollection, SecretsCollection]:
    """(what the files hold, what the baseline accepts), with the baseline's settings."""
    committed = baseline.load_from_file(str(BASELINE))
    # Relative names, as in the baseline: a finding is matched on (file, hash, type).
    with transient_settings(committed), chdir(root):
        found = SecretsCollection()
        for name in files:
            found.scan_file(name)
    return found, SecretsCollection.load_from_baseline(committed)


def describe(secrets: SecretsCollection) -> list[str]:
    return [f"{name}:{secret.line_number} {secret.type}" for name, secret in secrets]


@pytest.fixture(scope="module")
def repository_scan() -> tuple[SecretsCollection, SecretsCollection]:
    files = repository_files()
    assert "config/settings.py" in files
    return scan(REPO, files)


def test_no_secret_outside_the_audited_baseline(repository_scan) -> None:
    found, accepted = repository_scan

    assert describe(found - accepted) == []


def test_the_baseline_holds_only_audited_false_positives_that_still_exist(
    repository_scan,
) -> None:
    found, accepted = repository_scan

    unaudited = [
        f"{name}:{secret.line_number}" for name, secret in accepted if secret.is_secret is not False
    ]
    assert unaudited == [], "audit them: detect-secrets audit .secrets.baseline"
    assert describe(accepted - found) == [], "stale: detect-secrets scan --baseline …"


def test_the_scan_finds_a_planted_credential(tmp_path: Path) -> None:
    # Assembled at run time, so this file holds no credential itself.
    key_id = "AKIA" + "QX7Z" * 4
    (tmp_path / "leak.py").write_text(f'aws_access_key_id = "{key_id}"\n')
    (tmp_path / "leak.env").write_text("DATABASE_URL=postgres://dpp:" + "hunter2x9" + "@db/dpp\n")

    found, _ = scan(tmp_path, ["leak.py", "leak.env"])

    assert {secret.type for _, secret in found} >= {"AWS Access Key", "Basic Auth Credentials"}
