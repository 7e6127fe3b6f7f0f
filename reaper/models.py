from django.db import models

from runs.models import Run


class AuditResolution(models.Model):
    """An operator's decision on an AUDIT_REQUIRED run: who, when, why, and the outcome."""

    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="audit_resolutions")
    actor = models.CharField(max_length=200)
    note = models.TextField()
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
        ]

    def __str__(self) -> str:
        return f"resolution of {self.run_id} by {self.actor}"
