"""``manage.py dpp_preflight [--json] [--alert-rules PATH|-]``: the pilot entry criteria a
machine can check, against this process's configuration; exit 1 if any check fails.

Run it where the API runs (``kubectl exec deploy/dpp-api -- /app/docker/entrypoint.sh
manage dpp_preflight``). The image holds no alert rules: pass them on stdin with
``--alert-rules -`` (``kubectl exec -i … < docker/prometheus/alerts.yml``).
"""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from reaper.preflight import DEFAULT_ALERT_RULES, Options, Outcome, run_preflight


class Command(BaseCommand):
    help = "Check the machine-checkable pilot entry criteria. Exit 1 if any fails."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON document")
        parser.add_argument(
            "--alert-rules",
            default=str(DEFAULT_ALERT_RULES),
            help="the Prometheus alert rules file, or - to read it from stdin "
            "(default: docker/prometheus/alerts.yml)",
        )

    def handle(self, *args, **options) -> None:
        rules = options["alert_rules"]
        outcomes = run_preflight(Options(alert_rules=None if rules == "-" else Path(rules)))
        failed = [o for o in outcomes if not o.passed]
        if options["json"]:
            document = {"ok": not failed, "checks": [o.as_dict() for o in outcomes]}
            self.stdout.write(json.dumps(document, sort_keys=True))
        else:
            self.stdout.write(table(outcomes))
            self.stdout.write(
                f"\npreflight FAILED: {len(failed)} of {len(outcomes)} checks failed"
                if failed
                else f"\npreflight passed: all {len(outcomes)} checks"
            )
        if failed:
            # Like dpp_audit: the exit code is the contract, stdout says why.
            self.stdout.flush()
            sys.exit(1)


def table(outcomes: list[Outcome]) -> str:
    width = max(len("CHECK"), *(len(o.check) for o in outcomes))
    lines = [f"{'CHECK':<{width}}  STATUS  DETAIL", f"{'-' * width}  ------  ------"]
    lines += [f"{o.check:<{width}}  {o.status:<6}  {o.detail}" for o in outcomes]
    return "\n".join(lines)
