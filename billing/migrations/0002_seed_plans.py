from django.db import migrations

PLANS = [
    {
        "name": "free",
        "submit_per_minute": 10,
        "poll_per_minute": 120,
        "max_concurrent_runs": 2,
        "max_cost_per_run_micros": 500_000,
        "allowed_pack_types": ["decision"],
        "retention_days": 7,
    },
    {
        "name": "pilot",
        "submit_per_minute": 60,
        "poll_per_minute": 600,
        "max_concurrent_runs": 20,
        "max_cost_per_run_micros": 5_000_000,
        "allowed_pack_types": ["decision"],
        "retention_days": 30,
    },
]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for values in PLANS:
        Plan.objects.update_or_create(name=values["name"], defaults=values)


def unseed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(name__in=[p["name"] for p in PLANS], accounts__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
