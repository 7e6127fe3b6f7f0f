import importlib

import factory
from django.apps import apps

from billing.models import Account, Plan
from dpp.models import Tenant
from dpp.services import api_key_issue
from runs.models import Run

USD = 1_000_000  # micro-USD


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"tenant-{n}")


def seeded_plan(name: str) -> Plan:
    """A plan the data migration seeds. Transactional tests flush the database, so the
    migration's own seed function is re-run rather than copying its values here."""
    plan = Plan.objects.filter(name=name).first()
    if plan is None:
        importlib.import_module("billing.migrations.0002_seed_plans").seed(apps, None)
        plan = Plan.objects.get(name=name)
    return plan


class AccountFactory(factory.django.DjangoModelFactory):
    """A tenant with an empty account on the seeded ``pilot`` plan."""

    class Meta:
        model = Account

    tenant = factory.SubFactory(TenantFactory)
    plan = factory.LazyFunction(lambda: seeded_plan("pilot"))


def issue_token(tenant: Tenant, label: str = "test") -> str:
    return api_key_issue(tenant=tenant, label=label).token


class RunFactory(factory.django.DjangoModelFactory):
    """A run row only: tests that need its money use billing.services.reserve."""

    class Meta:
        model = Run

    tenant = factory.SubFactory(TenantFactory)
    pack_type = "decision"
    inputs = factory.LazyFunction(dict)
    idempotency_key = factory.Sequence(lambda n: f"idem-key-{n:08d}")
    request_fingerprint = "0" * 64
    reserved_micros = 1_000_000
    minimum_fee_micros = 20_000
