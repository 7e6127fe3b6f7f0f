from django.db import models

from runs.models import Run


class AuditResolution(models.Model):
    """An operator's decision on an AUDIT_REQUIRED run: who, when, why, and the outcome."""

    class Outcome(models.TextChoices):
        COMPLETE = "complete", "Complete with the receipt's verified charge"
        FAIL = "fail", "Fail, charging at most the minimum fee"
        REFUND = "refund", "Refund the reservation in full"

    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="audit_resolutions")
    actor = models.CharField(max_length=200)
    note = models.TextField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    resulting_money_state = models.CharField(max_length=16, choices=Run.MoneyState.choices)
    charge_micros = models.BigIntegerField(default=0)
    adjust_micros = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(note=""), name="auditresolution_note_required"
            ),
            models.CheckConstraint(
                condition=models.Q(outcome__in=["complete", "fail", "refund"]),
                name="auditresolution_outcome_known",
            ),
        ]

    def __str__(self) -> str:
        return f"resolution of {self.run_id} by {self.actor}"
