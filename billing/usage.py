"""Daily usage per account, from the ledger alone (docs/billing.md, "Usage").

A day's usage is a function of the transfers created on it (UTC): RESERVEs are runs
submitted, each SETTLE or VOID a run finished with the outcome it states, SETTLE amounts
are spent and VOID amounts refunded. ``roll_up`` (the ``reaper.roll_up_usage`` beat task)
stores whole days in ``UsageDay`` once they are *sealed* — ended more than
``DPP_USAGE_SEAL_AFTER_SEC`` ago, longer than any transaction can hold a transfer it
stamped with that day — and moves the watermark past them, a few days per tick.
``usage_days`` serves the days before the watermark from those rows and computes the
days after it (today, and yesterday for the first hour) from the ledger as it answers,
so what it returns is never staler than the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing.models import Account, Transfer, UsageDay, UsageWatermark

FINALIZATIONS = (Transfer.Kind.SETTLE, Transfer.Kind.VOID)
# Days one roll-up tick seals at most: a backlog (the first run, an outage) drains over
# several ticks, each one short transaction.
DAYS_PER_TICK = 31

COUNTS = ("runs_submitted", "runs_completed", "runs_failed", "runs_canceled")
AMOUNTS = ("spent_micros", "refunded_micros")


@dataclass(frozen=True)
class DayUsage:
    date: date
    runs_submitted: int = 0
    runs_completed: int = 0
    runs_failed: int = 0
    runs_canceled: int = 0
    spent_micros: int = 0
    refunded_micros: int = 0


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def first_unsealable_day(now: datetime | None = None) -> date:
    """Days before this one are sealed at ``now``: no transfer can still join them."""
    sealed_by = (now or timezone.now()) - timedelta(seconds=settings.DPP_USAGE_SEAL_AFTER_SEC)
    return sealed_by.astimezone(UTC).date()


def _outcome(outcome: str) -> Q:
    return Q(kind__in=FINALIZATIONS, outcome=outcome)


def day_totals(transfers: QuerySet[Transfer]) -> dict[tuple[int, date], DayUsage]:
    """One aggregate query: usage per (account id, UTC day) of ``transfers``."""
    rows = (
        transfers.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("account_id", "day")
        .annotate(
            runs_submitted=Count("id", filter=Q(kind=Transfer.Kind.RESERVE)),
            runs_completed=Count("id", filter=_outcome(Transfer.Outcome.COMPLETED)),
            runs_failed=Count("id", filter=_outcome(Transfer.Outcome.FAILED)),
            runs_canceled=Count("id", filter=_outcome(Transfer.Outcome.CANCELED)),
            spent_micros=Coalesce(Sum("amount_micros", filter=Q(kind=Transfer.Kind.SETTLE)), 0),
            refunded_micros=Coalesce(Sum("amount_micros", filter=Q(kind=Transfer.Kind.VOID)), 0),
        )
        .order_by()
    )
    return {
        (row["account_id"], row["day"]): DayUsage(
            date=row["day"], **{name: row[name] for name in (*COUNTS, *AMOUNTS)}
        )
        for row in rows
    }


def _between(first: date, end: date) -> Q:
    return Q(created_at__gte=midnight(first), created_at__lt=midnight(end))


def unsealed_from() -> date | None:
    """The first day not rolled up yet; None before the first roll-up."""
    return UsageWatermark.objects.values_list("unsealed_from", flat=True).first()


def _first_day_of_the_ledger() -> date:
    first = Transfer.objects.order_by("id").values_list("created_at", flat=True).first()
    return today(first) if first else first_unsealable_day()


@transaction.atomic
def roll_up(*, now: datetime | None = None) -> int:
    """Seal the days that ended long enough ago, at most ``DAYS_PER_TICK``; how many.

    The watermark row is locked for the whole transaction, so two reapers running the
    task at once roll up each day once, and the rows and the watermark move together.
    """
    UsageWatermark.objects.get_or_create(id=1, defaults={"unsealed_from": _first_day_of_the_ledger})
    watermark = UsageWatermark.objects.select_for_update().get(id=1)
    start = watermark.unsealed_from
    end = min(first_unsealable_day(now), start + timedelta(days=DAYS_PER_TICK))
    if end <= start:
        return 0
    totals = day_totals(Transfer.objects.filter(_between(start, end)))
    UsageDay.objects.bulk_create(
        [
            UsageDay(account_id=account_id, **vars(usage))
            for (account_id, _), usage in totals.items()
        ],
        update_conflicts=True,
        unique_fields=["account", "date"],
        update_fields=[*COUNTS, *AMOUNTS],
    )
    watermark.unsealed_from = end
    watermark.save(update_fields=["unsealed_from", "updated_at"])
    return (end - start).days


def usage_days(
    *, account: Account, first: date, last: date, now: datetime | None = None
) -> list[DayUsage]:
    """One row per day from ``first`` to ``last`` (both included, none after today).

    Two queries: the rolled-up days, and the ledger after the watermark.
    """
    last = min(last, today(now))
    if last < first:
        return []
    boundary = unsealed_from() or first
    by_day: dict[date, DayUsage] = {}
    if first < boundary:
        for row in UsageDay.objects.filter(
            account=account, date__gte=first, date__lt=min(boundary, last + timedelta(days=1))
        ):
            by_day[row.date] = DayUsage(
                date=row.date, **{name: getattr(row, name) for name in (*COUNTS, *AMOUNTS)}
            )
    live_from = max(first, boundary)
    if live_from <= last:
        live = Transfer.objects.filter(
            _between(live_from, last + timedelta(days=1)), account=account
        )
        by_day.update({day: usage for (_, day), usage in day_totals(live).items()})
    days = (last - first).days + 1
    return [
        by_day.get(day, DayUsage(date=day))
        for day in (first + timedelta(days=offset) for offset in range(days))
    ]
