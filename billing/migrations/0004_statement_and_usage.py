from collections import defaultdict

import django.db.models.deletion
from django.db import migrations, models


def _effect(transfer, reserved: dict) -> int:
    """How a transfer moved its account's available balance (docs/billing.md)."""
    if transfer.kind in ("TOPUP", "ADJUST"):
        return transfer.amount_micros
    if transfer.kind == "RESERVE":
        return -transfer.amount_micros
    released = reserved.get(transfer.run_id, 0)
    return released - transfer.amount_micros if transfer.kind == "SETTLE" else released


def backfill(apps, schema_editor):
    """The outcome of every finalization (from its run) and every transfer's balance after
    it, replayed per account in id order."""
    Transfer = apps.get_model("billing", "Transfer")
    finalizations = Transfer.objects.filter(kind__in=["SETTLE", "VOID"])
    finalizations.filter(run__status="COMPLETED").update(outcome="COMPLETED")
    finalizations.filter(outcome="").update(outcome="FAILED")
    reserved = dict(Transfer.objects.filter(kind="RESERVE").values_list("run_id", "amount_micros"))
    balance: dict[int, int] = defaultdict(int)
    batch = []
    for transfer in Transfer.objects.order_by("id").iterator(chunk_size=2000):
        balance[transfer.account_id] += _effect(transfer, reserved)
        transfer.available_after_micros = balance[transfer.account_id]
        batch.append(transfer)
        if len(batch) == 2000:
            Transfer.objects.bulk_update(batch, ["available_after_micros"])
            batch = []
    Transfer.objects.bulk_update(batch, ["available_after_micros"])


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_ledger_bounds"),
        ("runs", "0004_cancel"),
    ]

    operations = [
        migrations.AddField(
            model_name="transfer",
            name="available_after_micros",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="transfer",
            name="outcome",
            field=models.CharField(
                blank=True,
                choices=[
                    ("COMPLETED", "Completed"),
                    ("FAILED", "Failed"),
                    ("CANCELED", "Canceled"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="transfer",
            name="available_after_micros",
            field=models.BigIntegerField(),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(fields=["account", "-id"], name="transfer_statement"),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(fields=["account", "created_at"], name="transfer_account_day"),
        ),
        migrations.AddConstraint(
            model_name="transfer",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("kind__in", ["SETTLE", "VOID"]),
                        ("outcome__in", ["COMPLETED", "FAILED", "CANCELED"]),
                    ),
                    models.Q(
                        models.Q(("kind__in", ["SETTLE", "VOID"]), _negated=True), ("outcome", "")
                    ),
                    _connector="OR",
                ),
                name="transfer_finalization_states_outcome",
            ),
        ),
        migrations.AddConstraint(
            model_name="transfer",
            constraint=models.CheckConstraint(
                condition=models.Q(("available_after_micros__gte", 0)),
                name="transfer_available_after_non_negative",
            ),
        ),
        migrations.CreateModel(
            name="UsageDay",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("date", models.DateField()),
                ("runs_submitted", models.PositiveIntegerField(default=0)),
                ("runs_completed", models.PositiveIntegerField(default=0)),
                ("runs_failed", models.PositiveIntegerField(default=0)),
                ("runs_canceled", models.PositiveIntegerField(default=0)),
                ("spent_micros", models.BigIntegerField(default=0)),
                ("refunded_micros", models.BigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="usage_days",
                        to="billing.account",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "date"), name="usage_one_row_per_day"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("refunded_micros__gte", 0), ("spent_micros__gte", 0)),
                        name="usage_amounts_non_negative",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="UsageWatermark",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("unsealed_from", models.DateField()),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("id", 1)), name="usage_watermark_single_row"
                    ),
                ],
            },
        ),
    ]
