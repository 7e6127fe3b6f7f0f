"""The ledger's bounds (billing/limits.py) as CHECK constraints, and plans' limits."""

import django.core.validators
import django.db.models.expressions
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_seed_plans"),
    ]

    operations = [
        migrations.AlterField(
            model_name="plan",
            name="max_concurrent_runs",
            field=models.PositiveIntegerField(
                validators=[django.core.validators.MinValueValidator(1)]
            ),
        ),
        migrations.AlterField(
            model_name="plan",
            name="poll_per_minute",
            field=models.PositiveIntegerField(
                validators=[django.core.validators.MinValueValidator(1)]
            ),
        ),
        migrations.AlterField(
            model_name="plan",
            name="retention_days",
            field=models.PositiveIntegerField(
                default=30, validators=[django.core.validators.MinValueValidator(1)]
            ),
        ),
        migrations.AlterField(
            model_name="plan",
            name="submit_per_minute",
            field=models.PositiveIntegerField(
                validators=[django.core.validators.MinValueValidator(1)]
            ),
        ),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "credits_posted__lte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("debits_posted"), "+", models.Value(1000000000000000)
                        ),
                    ),
                    ("credits_posted__lte", 1000000000000000000),
                ),
                name="account_within_bounds",
            ),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_cost_per_run_micros__lte", 1000000000000)),
                name="plan_max_cost_within_one_transfer",
            ),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("submit_per_minute__gte", 1),
                    ("poll_per_minute__gte", 1),
                    ("max_concurrent_runs__gte", 1),
                    ("retention_days__gte", 1),
                ),
                name="plan_limits_at_least_one",
            ),
        ),
        migrations.AddConstraint(
            model_name="transfer",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("amount_micros__gte", -1000000000000), ("amount_micros__lte", 1000000000000)
                ),
                name="transfer_amount_within_bounds",
            ),
        ),
    ]
