from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from billing.limits import MAX_BALANCE_MICROS, MAX_CREDITED_MICROS, MAX_TRANSFER_MICROS
from dpp.models import Tenant

_AT_LEAST_ONE = [MinValueValidator(1)]


class Plan(models.Model):
    """What a tenant may do: rate limits, concurrency, cost ceiling, packs, retention.

    A limit of 0 would lock every tenant of the plan out, and a cost ceiling above one
    transfer could never be reserved: the constraints refuse both.
    """

    name = models.SlugField(max_length=50, unique=True)
    submit_per_minute = models.PositiveIntegerField(validators=_AT_LEAST_ONE)
    poll_per_minute = models.PositiveIntegerField(validators=_AT_LEAST_ONE)
    max_concurrent_runs = models.PositiveIntegerField(validators=_AT_LEAST_ONE)
    max_cost_per_run_micros = models.BigIntegerField()
    allowed_pack_types = models.JSONField(default=list)
    retention_days = models.PositiveIntegerField(default=30, validators=_AT_LEAST_ONE)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(max_cost_per_run_micros__gt=0), name="plan_max_cost_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_cost_per_run_micros__lte=MAX_TRANSFER_MICROS),
                name="plan_max_cost_within_one_transfer",
            ),
            models.CheckConstraint(
                condition=Q(submit_per_minute__gte=1)
                & Q(poll_per_minute__gte=1)
                & Q(max_concurrent_runs__gte=1)
                & Q(retention_days__gte=1),
                name="plan_limits_at_least_one",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A tenant's budget, after TigerBeetle's account model.

    available = credits_posted - debits_posted - debits_pending. The CHECK constraints
    make a negative balance impossible even if application code is wrong, and keep every
    column inside the bounds of ``billing.limits`` (far from the 64-bit limit).
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="account")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    credits_posted = models.BigIntegerField(default=0)
    debits_posted = models.BigIntegerField(default=0)
    debits_pending = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(credits_posted__gte=0)
                & Q(debits_posted__gte=0)
                & Q(debits_pending__gte=0),
                name="account_columns_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(debits_posted__lte=F("credits_posted") - F("debits_pending")),
                name="account_cannot_overdraw",
            ),
            models.CheckConstraint(
                condition=Q(credits_posted__lte=F("debits_posted") + MAX_BALANCE_MICROS)
                & Q(credits_posted__lte=MAX_CREDITED_MICROS),
                name="account_within_bounds",
            ),
        ]

    def __str__(self) -> str:
        return f"account of {self.tenant_id}"

    @property
    def available_micros(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending


class Transfer(models.Model):
    """One append-only ledger entry.

    TOPUP credits; RESERVE moves an amount to pending; SETTLE posts ``amount`` (the
    charge, never more than the reservation) and releases the rest; VOID releases the
    whole reservation (``amount`` is what it released); ADJUST is an operator's signed
    correction: positive credits, negative debits.

    ``available_after_micros`` is the account's available balance right after this
    transfer, written by the INSERT that follows the account's UPDATE while its row lock is
    held: per account, ids follow the order in which transfers moved the balance, so the
    newest transfer's value is the balance (docs/billing.md, "The statement").
    A SETTLE or VOID states the ``outcome`` of the run it finalizes, as a TigerBeetle
    transfer carries its ``code``: the usage rollups count runs from the ledger alone.
    """

    class Kind(models.TextChoices):
        TOPUP = "TOPUP"
        RESERVE = "RESERVE"
        SETTLE = "SETTLE"
        VOID = "VOID"
        ADJUST = "ADJUST"

    class Outcome(models.TextChoices):
        """How the run a SETTLE or VOID finalizes ended (the run's terminal status)."""

        COMPLETED = "COMPLETED"
        FAILED = "FAILED"
        CANCELED = "CANCELED"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transfers")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    run = models.ForeignKey(
        "runs.Run", on_delete=models.PROTECT, null=True, blank=True, related_name="transfers"
    )
    amount_micros = models.BigIntegerField()
    reason = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    available_after_micros = models.BigIntegerField()
    trace_id = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "kind"]),
            # The statement: an account's transfers newest first, and its days for usage.
            models.Index(fields=["account", "-id"], name="transfer_statement"),
            models.Index(fields=["account", "created_at"], name="transfer_account_day"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run"], condition=Q(kind="RESERVE"), name="transfer_one_reserve_per_run"
            ),
            models.UniqueConstraint(
                fields=["run"],
                condition=Q(kind__in=["SETTLE", "VOID"]),
                name="transfer_one_finalization_per_run",
            ),
            models.CheckConstraint(
                condition=Q(kind="ADJUST", amount_micros__lt=0)
                | Q(kind="ADJUST", amount_micros__gt=0)
                | Q(kind="TOPUP", amount_micros__gt=0)
                | Q(kind__in=["RESERVE", "SETTLE", "VOID"], amount_micros__gte=0),
                name="transfer_amount_sign_by_kind",
            ),
            models.CheckConstraint(
                condition=Q(amount_micros__gte=-MAX_TRANSFER_MICROS)
                & Q(amount_micros__lte=MAX_TRANSFER_MICROS),
                name="transfer_amount_within_bounds",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["RESERVE", "SETTLE", "VOID"], run__isnull=False)
                | Q(kind__in=["TOPUP", "ADJUST"]),
                name="transfer_run_required_for_run_kinds",
            ),
            models.CheckConstraint(
                condition=~Q(kind="ADJUST") | ~Q(reason=""),
                name="transfer_adjust_has_reason",
            ),
            models.CheckConstraint(
                condition=Q(
                    kind__in=["SETTLE", "VOID"], outcome__in=["COMPLETED", "FAILED", "CANCELED"]
                )
                | (~Q(kind__in=["SETTLE", "VOID"]) & Q(outcome="")),
                name="transfer_finalization_states_outcome",
            ),
            models.CheckConstraint(
                condition=Q(available_after_micros__gte=0),
                name="transfer_available_after_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micros} µUSD"


class UsageDay(models.Model):
    """One account's usage on one UTC day, rolled up from its transfers.

    Written only by ``billing.usage.roll_up`` (the ``billing.roll_up_usage`` beat task),
    which computes a whole day from the ledger once the day is sealed (it ended long enough
    ago that no transfer can still be added to it). Rows exist only for sealed days with
    activity; ``GET /v1/usage`` computes the days after them from the ledger as it answers.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage_days")
    date = models.DateField()
    runs_submitted = models.PositiveIntegerField(default=0)
    runs_completed = models.PositiveIntegerField(default=0)
    runs_failed = models.PositiveIntegerField(default=0)
    runs_canceled = models.PositiveIntegerField(default=0)
    spent_micros = models.BigIntegerField(default=0)
    refunded_micros = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "date"], name="usage_one_row_per_day"),
            models.CheckConstraint(
                condition=Q(spent_micros__gte=0, refunded_micros__gte=0),
                name="usage_amounts_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"usage of {self.account_id} on {self.date}"


class UsageWatermark(models.Model):
    """The rollup's progress: every day before ``unsealed_from`` is rolled up. One row."""

    unsealed_from = models.DateField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="usage_watermark_single_row"),
        ]

    def __str__(self) -> str:
        return f"usage rolled up before {self.unsealed_from}"
