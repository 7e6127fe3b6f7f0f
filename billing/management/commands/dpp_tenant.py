"""``manage.py dpp_tenant create NAME …`` and ``manage.py dpp_tenant revoke-key PREFIX``.

Onboarding from a shell: a tenant, its account, an optional opening TOPUP and its first
API key, in one transaction — a failure leaves nothing half-created.
"""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing import services
from billing.errors import BillingError
from billing.management.commands._cli import default_actor, parse_usd
from billing.money import InvalidAmount, micros_to_usd
from dpp.errors import ApiKeyNotFound
from dpp.services import api_key_issue, api_key_revoke


class Command(BaseCommand):
    help = "Create tenants (with an account, opening budget and API key) or revoke API keys."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a tenant and issue its first key")
        create.add_argument("name")
        create.add_argument("--plan", default=None, help="plan name (default: DPP_DEFAULT_PLAN)")
        create.add_argument("--budget-usd", default="0", help="opening budget, e.g. 10.00")
        create.add_argument("--actor", default=None, help="recorded on the opening TOPUP")
        create.add_argument("--json", action="store_true", help="print one JSON document")
        revoke = actions.add_parser("revoke-key", help="revoke an API key by its prefix")
        revoke.add_argument("prefix")

    def handle(self, *args, **options) -> None:
        if options["action"] == "create":
            self._create(options)
        else:
            self._revoke(options["prefix"])

    def _create(self, options: dict) -> None:
        budget = parse_usd(options["budget_usd"], what="--budget-usd")
        try:
            with transaction.atomic():
                account = services.tenant_open(
                    name=options["name"],
                    plan_name=options["plan"],
                    budget_micros=budget,
                    actor=options["actor"] or default_actor(),
                )
                issued = api_key_issue(tenant=account.tenant, label="created by dpp_tenant")
        except (BillingError, InvalidAmount) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "tenant_id": str(account.tenant_id),
                        "api_key": issued.token,
                        "key_prefix": issued.api_key.prefix,
                        "plan": account.plan.name,
                        "available_usd": micros_to_usd(account.available_micros),
                    }
                )
            )
            return
        self.stdout.write(
            f"Created tenant {account.tenant.name!r} ({account.tenant_id}) on plan "
            f"{account.plan.name} with ${micros_to_usd(account.available_micros)} available.\n"
            f"API key (shown once; only its hash is stored): {issued.token}"
        )

    def _revoke(self, prefix: str) -> None:
        try:
            key = api_key_revoke(prefix=prefix)
        except ApiKeyNotFound as exc:
            raise CommandError(f"No API key with prefix {prefix!r}.") from exc
        self.stdout.write(f"Revoked API key dpp_{key.prefix}_… of tenant {key.tenant_id}.")
