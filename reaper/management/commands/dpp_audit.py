"""``manage.py dpp_audit [--json]``: check the ledger invariants; exit 1 on any violation.

Made for cron jobs, CI and people: the exit code says clean or not, stdout says why,
one line per violation (or one JSON document with ``--json``). It never moves money.
"""

import json
import sys

from django.core.management.base import BaseCommand

from reaper.audit import INVARIANTS, run_audit


class Command(BaseCommand):
    help = "Audit the ledger against docs/design.md §3 invariants 1-7. Exit 1 on any violation."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON document")

    def handle(self, *args, **options) -> None:
        report = run_audit()
        counts = report.counts
        if options["json"]:
            document = {
                "clean": report.clean,
                "violations": [v.as_dict() for v in report.violations],
                "counts": counts,
                "invariants": {str(k): v for k, v in INVARIANTS.items()},
            }
            self.stdout.write(json.dumps(document, sort_keys=True))
        elif report.clean:
            flagged = counts["audit_required_runs"]
            self.stdout.write(
                f"ledger audit clean: {counts['accounts']} accounts, "
                f"{counts['transfers']} transfers, {counts['runs']} runs"
                + (f" ({flagged} AUDIT_REQUIRED)" if flagged else "")
            )
        else:
            for violation in report.violations:
                self.stdout.write(violation.line())
        if not report.clean:
            # A non-zero exit is the contract for scripts; CommandError would add a traceback
            # hint and print to stderr, which is not where the violations belong.
            self.stdout.flush()
            sys.exit(1)
