"""Audit resolutions record the outcome the operator chose (complete, fail or refund)."""

from django.db import migrations, models


def name_earlier_outcomes(apps, schema_editor):
    """Before outcomes existed a resolution settled or refunded: a refund stays one, and
    a settlement was a completion if the run ended COMPLETED, else a failure."""
    AuditResolution = apps.get_model("reaper", "AuditResolution")
    earlier = AuditResolution.objects.all()
    earlier.filter(resulting_money_state="REFUNDED").update(outcome="refund")
    settled = earlier.filter(resulting_money_state="SETTLED")
    settled.filter(run__status="COMPLETED").update(outcome="complete")
    settled.exclude(run__status="COMPLETED").update(outcome="fail")


class Migration(migrations.Migration):
    dependencies = [
        ("reaper", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditresolution",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("complete", "Complete with the receipt's verified charge"),
                    ("fail", "Fail, charging at most the minimum fee"),
                    ("refund", "Refund the reservation in full"),
                ],
                default="refund",
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(name_earlier_outcomes, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="auditresolution",
            constraint=models.CheckConstraint(
                condition=models.Q(("outcome__in", ["complete", "fail", "refund"])),
                name="auditresolution_outcome_known",
            ),
        ),
    ]
