import uuid

from django.db import models


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        SUSPENDED = "SUSPENDED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ApiKey(models.Model):
    """A tenant's API key. Only an HMAC of the secret is kept; the secret is shown once."""

    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        REVOKED = "REVOKED"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    label = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status="ACTIVE", revoked_at__isnull=True)
                | models.Q(status="REVOKED", revoked_at__isnull=False),
                name="apikey_revoked_at_matches_status",
            )
        ]

    def __str__(self) -> str:
        return f"dpp_{self.prefix}_… ({self.label or self.tenant_id})"


class PlatformSwitch(models.Model):
    """The operators' kill switch: one row (id 1), changed only through ``dpp.kill_switch``.

    While ``submissions_paused`` is set, ``POST /v1/runs`` answers 503 ``submissions-paused``
    and reserves nothing; polls, listings, the budget, result downloads, workers and the
    reaper carry on. Every change is also a ``PlatformSwitchChange`` row.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    submissions_paused = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_by = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "platform switch"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="platformswitch_singleton"),
        ]

    def __str__(self) -> str:
        return "Submissions paused" if self.submissions_paused else "Submissions open"


class PlatformSwitchChange(models.Model):
    """The switch's audit history: who changed it, when, from where and why. Append-only."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Django admin"
        CLI = "cli", "manage.py dpp_submissions"

    submissions_paused = models.BooleanField()
    was_paused = models.BooleanField()
    reason = models.TextField()
    changed_by = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=Source.choices)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(reason=""), name="platformswitchchange_reason_required"
            ),
            models.CheckConstraint(
                condition=~models.Q(changed_by=""), name="platformswitchchange_actor_required"
            ),
        ]

    def __str__(self) -> str:
        action = "paused" if self.submissions_paused else "resumed"
        return f"submissions {action} by {self.changed_by} at {self.changed_at:%Y-%m-%d %H:%M:%S}"
