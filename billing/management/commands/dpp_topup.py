"""``manage.py dpp_topup TENANT_ID AMOUNT_USD [--reason …]``: credit a tenant's budget."""

import uuid

from django.core.management.base import BaseCommand, CommandError

from billing import services
from billing.errors import BillingError
from billing.management.commands._cli import default_actor, parse_usd
from billing.money import InvalidAmount, micros_to_usd
from billing.selectors import account_for_tenant
from dpp.models import Tenant


class Command(BaseCommand):
    help = "Credit AMOUNT_USD (up to six decimal places) to a tenant's budget as a TOPUP."

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant_id")
        parser.add_argument("amount_usd")
        parser.add_argument("--reason", default="", help="kept on the transfer")
        parser.add_argument("--actor", default=None, help="default: cli:<os user>")

    def handle(self, *args, **options) -> None:
        amount = parse_usd(options["amount_usd"], what="AMOUNT_USD")
        try:
            tenant = Tenant.objects.get(pk=uuid.UUID(options["tenant_id"]))
        except (ValueError, Tenant.DoesNotExist) as exc:
            raise CommandError(f"No tenant with id {options['tenant_id']!r}.") from exc
        try:
            transfer = services.top_up(
                account=account_for_tenant(tenant=tenant),
                amount_micros=amount,
                reason=options["reason"],
                actor=options["actor"] or default_actor(),
            )
            account = account_for_tenant(tenant=tenant)
        except (BillingError, InvalidAmount) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Topped up tenant {tenant.id} by ${micros_to_usd(transfer.amount_micros)} "
            f"(transfer {transfer.pk}); available ${micros_to_usd(account.available_micros)}."
        )
