import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from dpp.models import Tenant


class Run(models.Model):
    """One paid execution of a decision pack, and the outbox row that schedules it."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED"
        PROCESSING = "PROCESSING"
        COMPLETED = "COMPLETED"
        FAILED = "FAILED"
        CANCELED = "CANCELED"

    class MoneyState(models.TextChoices):
        RESERVED = "RESERVED"
        SETTLED = "SETTLED"
        REFUNDED = "REFUNDED"
        AUDIT_REQUIRED = "AUDIT_REQUIRED"

    TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="runs")
    pack_type = models.CharField(max_length=50)
    inputs = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    money_state = models.CharField(
        max_length=16, choices=MoneyState.choices, default=MoneyState.RESERVED
    )
    version = models.PositiveIntegerField(default=1)

    idempotency_key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)

    reserved_micros = models.BigIntegerField()
    minimum_fee_micros = models.BigIntegerField()
    actual_cost_micros = models.BigIntegerField(null=True, blank=True)

    timebox_sec = models.PositiveSmallIntegerField(default=90)
    min_reliability_score = models.FloatField(default=0.0)

    attempts = models.PositiveSmallIntegerField(default=0)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    result_key = models.CharField(max_length=300, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    result_size = models.BigIntegerField(null=True, blank=True)

    error_reason_code = models.CharField(max_length=64, blank=True)
    error_detail = models.TextField(blank=True)

    traceparent = models.CharField(max_length=55, blank=True)
    client_trace_id = models.CharField(max_length=128, blank=True)
    retention_until = models.DateTimeField(null=True, blank=True)
    # Set once by a cancel of a PROCESSING run: from then on the run can only end CANCELED
    # (docs/design.md §2), whoever finishes it.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    result_purged_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the run was last handed to the broker: set by the transitions to QUEUED and moved
    # by the requeue scan's republish, which takes runs whose publish never reached a worker.
    published_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="run_reaper_scan"),
            models.Index(fields=["tenant", "-created_at", "-id"], name="run_tenant_listing"),
            models.Index(fields=["money_state"], name="run_money_state"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="run_unique_idempotency_key"
            ),
            models.CheckConstraint(
                condition=Q(reserved_micros__gt=0)
                & Q(minimum_fee_micros__gte=0)
                & Q(minimum_fee_micros__lte=F("reserved_micros")),
                name="run_reservation_covers_minimum_fee",
            ),
            models.CheckConstraint(
                condition=Q(actual_cost_micros__isnull=True)
                | Q(actual_cost_micros__gte=0, actual_cost_micros__lte=F("reserved_micros")),
                name="run_actual_cost_within_reservation",
            ),
            models.CheckConstraint(
                condition=~Q(status="PROCESSING")
                | Q(lease_token__isnull=False, lease_expires_at__isnull=False),
                name="run_processing_has_lease",
            ),
            models.CheckConstraint(
                condition=Q(timebox_sec__gte=1, timebox_sec__lte=90),
                name="run_timebox_range",
            ),
            models.CheckConstraint(
                condition=(Q(cancel_requested_at__isnull=True) & ~Q(status="CANCELED"))
                | Q(cancel_requested_at__isnull=False, status__in=["PROCESSING", "CANCELED"]),
                name="run_canceled_only_by_request",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.id} {self.status}/{self.money_state}"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


class RunEvent(models.Model):
    """One transition of a run, written by ``runs.lifecycle`` in the transaction that made
    it: the history operators read when they audit a run (docs/design.md §2)."""

    class Kind(models.TextChoices):
        SUBMITTED = "SUBMITTED"
        CLAIMED = "CLAIMED"
        LEASE_EXTENDED = "LEASE_EXTENDED"
        FINALIZED = "FINALIZED"
        REQUEUED = "REQUEUED"
        REPUBLISHED = "REPUBLISHED"
        QUEUE_TIMED_OUT = "QUEUE_TIMED_OUT"
        AUDIT_FLAGGED = "AUDIT_FLAGGED"
        RESOLVED = "RESOLVED"
        RESULT_PURGED = "RESULT_PURGED"
        CANCELED = "CANCELED"
        CANCEL_REQUESTED = "CANCEL_REQUESTED"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    attempt = models.PositiveSmallIntegerField()
    lease_token = models.UUIDField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    # The transition's own instant, equal to the run's updated_at it set.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["run", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} of {self.run_id} (attempt {self.attempt})"
