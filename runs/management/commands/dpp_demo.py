"""``make run``'s demo tenant: created on the first run, reused on later ones.

The token is kept in ``$DPP_VAR_DIR/demo_api_key`` (mode 0600) because only its hash is
in the database. The command opens the tenant's budget through ``billing.services`` and
prints ``runs``' example run, so it lives in ``runs``, the lowest layer that may import
both (docs/design.md §1).
"""

import json
import os
import shlex
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from billing.services import tenant_open
from dpp import api_keys
from dpp.models import ApiKey
from dpp.services import api_key_issue
from runs.examples import DECISION_RUN

DEMO_BUDGET_MICROS = 10_000_000  # $10
KEY_FILE_NAME = "demo_api_key"


class Command(BaseCommand):
    help = "Create or reuse the demo tenant ($10 budget) and API key; print curl examples."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Port the API listens on.")

    def handle(self, *args, port: int, **options) -> None:
        key_file = Path(settings.VAR_DIR) / KEY_FILE_NAME
        token = _usable_token(key_file)
        if token is None:
            token = _create_demo_tenant()
            _write_private(key_file, token)
            self.stdout.write(f"Created the demo tenant with a $10 budget; key saved in {key_file}")
        else:
            self.stdout.write(f"Reusing the demo tenant's key from {key_file}")
        self.stdout.write(_instructions(token, port))


def _usable_token(key_file: Path) -> str | None:
    """The saved token, if it still authenticates (the database may have been reset)."""
    try:
        token = key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    parsed = api_keys.parse_token(token)
    if parsed is None:
        return None
    key = (
        ApiKey.objects.select_related("tenant")
        .filter(prefix=parsed.prefix, status=ApiKey.Status.ACTIVE)
        .first()
    )
    if key is None or not key.tenant.is_active:
        return None
    return token if api_keys.secret_matches(parsed.secret, key.secret_hash) else None


def _create_demo_tenant() -> str:
    with transaction.atomic():
        account = tenant_open(
            name="demo", plan_name=None, budget_micros=DEMO_BUDGET_MICROS, actor="make run"
        )
        return api_key_issue(tenant=account.tenant, label="make run demo").token


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, replacing any older file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _instructions(token: str, port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    auth = shlex.quote(f"Authorization: Bearer {token}")
    body = shlex.quote(json.dumps(DECISION_RUN, separators=(",", ":")))
    return "\n".join(
        [
            "",
            f"Demo API key: {token}",
            "",
            "Check the budget:",
            f"  curl -s {base}/v1/budget -H {auth}",
            "",
            "Submit a run (a new Idempotency-Key per run; retrying with the same key is free):",
            f"  curl -s -X POST {base}/v1/runs -H {auth} \\",
            "    -H 'Content-Type: application/json' -H \"Idempotency-Key: demo-$(date +%s)\" \\",
            f"    -d {body}",
            "",
            f"Then poll the run_id it returns: curl -s {base}/v1/runs/<run_id> -H {auth}",
            f"API docs: {base}/docs",
            "",
        ]
    )
