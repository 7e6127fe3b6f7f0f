"""``manage.py dpp_submissions status|pause|resume``: the kill switch from a shell.

The same switch as the admin's platform switch, for when the admin is not at hand (an
incident, a ``kubectl exec``). Changes need ``--reason``; they are recorded in the
switch's history with ``--actor`` (default ``cli:<login>``) and logged.
"""

import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from dpp import kill_switch
from dpp.errors import SwitchChangeRejected
from dpp.models import PlatformSwitchChange


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return "cli"


class Command(BaseCommand):
    help = "Show, pause or resume new run submissions (the kill switch)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "pause", "resume"])
        parser.add_argument("--reason", default="", help="why (required to pause or resume)")
        parser.add_argument("--actor", default=_default_actor(), help="who, for the history")
        parser.add_argument("--json", action="store_true", help="print the state as JSON")

    def handle(self, *args, action: str, reason: str, actor: str, **options) -> None:
        if action != "status":
            flip = (
                kill_switch.submissions_pause
                if action == "pause"
                else kill_switch.submissions_resume
            )
            try:
                change = flip(actor=actor, reason=reason, source=PlatformSwitchChange.Source.CLI)
            except SwitchChangeRejected as exc:
                raise CommandError(f"{exc} (--{exc.missing})") from exc
            if change is None:
                already = "paused" if action == "pause" else "open"
                self.stderr.write(f"Submissions were already {already}: nothing recorded.")
        state = kill_switch.switch_state()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "paused": state.paused,
                        "paused_by_environment": state.paused_by_environment,
                        "paused_by_operator": state.paused_by_operator,
                        "reason": state.reason,
                        "changed_by": state.changed_by,
                        "changed_at": state.changed_at.isoformat() if state.changed_at else None,
                    },
                    sort_keys=True,
                )
            )
        else:
            self.stdout.write(state.describe())
