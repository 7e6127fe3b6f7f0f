"""The kill switch: operators pause new runs; everything already accepted carries on.

Two switches, either one pauses: the admin's ``PlatformSwitch`` row (changed only by
``submissions_pause`` / ``submissions_resume``, each change a history row and a log line
with who and why) and ``DPP_SUBMISSIONS_PAUSED`` in the environment. The submit path asks
``submissions_paused()`` once per request: the row is cached for ``CACHE_SECONDS`` so a
flip reaches every API process within a few seconds, and a cache that cannot answer (Redis
down) falls back to reading the row.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from dpp.errors import SwitchChangeRejected
from dpp.models import PlatformSwitch, PlatformSwitchChange

logger = logging.getLogger(__name__)

CACHE_KEY = "dpp:kill-switch:submissions-paused"
CACHE_SECONDS = 3
_environment_logged = False


@dataclass(frozen=True)
class SwitchState:
    """Both switches, as an operator needs to see them (admin, preflight)."""

    paused_by_environment: bool
    paused_by_operator: bool
    reason: str
    changed_by: str
    changed_at: datetime | None

    @property
    def paused(self) -> bool:
        return self.paused_by_environment or self.paused_by_operator

    def describe(self) -> str:
        if not self.paused:
            return "submissions open"
        parts = []
        if self.paused_by_environment:
            parts.append("PAUSED by DPP_SUBMISSIONS_PAUSED")
        if self.paused_by_operator:
            when = f"{self.changed_at:%Y-%m-%d %H:%M:%S %Z}" if self.changed_at else "?"
            parts.append(f"PAUSED by {self.changed_by} at {when}: {self.reason}")
        return "; ".join(parts)


def submissions_paused() -> bool:
    """Whether ``POST /v1/runs`` must refuse: the one question the submit path asks."""
    if settings.DPP_SUBMISSIONS_PAUSED:
        _log_environment_switch_once()
        return True
    try:
        cached = cache.get(CACHE_KEY)
    except Exception:
        # The switch must work when the cache does not: read the row instead.
        logger.debug("kill switch cache unavailable; reading the database", exc_info=True)
        return _paused_in_database()
    if cached is not None:
        return bool(cached)
    paused = _paused_in_database()
    try:
        cache.set(CACHE_KEY, int(paused), CACHE_SECONDS)
    except Exception:
        logger.debug("kill switch cache unavailable; not cached", exc_info=True)
    return paused


def switch_state() -> SwitchState:
    """Both switches, read now (uncached)."""
    row = PlatformSwitch.objects.filter(pk=PlatformSwitch.SINGLETON_ID).first()
    return SwitchState(
        paused_by_environment=settings.DPP_SUBMISSIONS_PAUSED,
        paused_by_operator=bool(row and row.submissions_paused),
        reason=row.reason if row else "",
        changed_by=row.changed_by if row else "",
        changed_at=row.changed_at if row else None,
    )


def platform_switch() -> PlatformSwitch:
    """The switch row, created (open) on first use; creating it is not a change."""
    switch, _ = PlatformSwitch.objects.get_or_create(pk=PlatformSwitch.SINGLETON_ID)
    return switch


def submissions_pause(
    *, actor: str, reason: str, source: str = PlatformSwitchChange.Source.ADMIN
) -> PlatformSwitchChange | None:
    """Pause new runs: from the next request on (other API processes: within
    ``CACHE_SECONDS``) ``POST /v1/runs`` answers 503 and reserves nothing.

    None when submissions were paused already: nothing is written or logged."""
    return _switch_set(paused=True, actor=actor, reason=reason, source=source)


def submissions_resume(
    *, actor: str, reason: str, source: str = PlatformSwitchChange.Source.ADMIN
) -> PlatformSwitchChange | None:
    """Accept new runs again (unless ``DPP_SUBMISSIONS_PAUSED`` still pauses them).

    None when submissions were open already: nothing is written or logged."""
    return _switch_set(paused=False, actor=actor, reason=reason, source=source)


@transaction.atomic
def _switch_set(
    *, paused: bool, actor: str, reason: str, source: str
) -> PlatformSwitchChange | None:
    actor, reason = actor.strip(), reason.strip()
    if not actor:
        raise SwitchChangeRejected("actor")
    if not reason:
        raise SwitchChangeRejected("reason")
    platform_switch()
    # The lock orders concurrent flips, so each history row's was_paused is the truth.
    was_paused = (
        PlatformSwitch.objects.select_for_update()
        .values_list("submissions_paused", flat=True)
        .get(pk=PlatformSwitch.SINGLETON_ID)
    )
    if was_paused == paused:
        # A second "paused" entry would tell the history a flip happened that did not.
        return None
    now = timezone.now()
    PlatformSwitch.objects.filter(pk=PlatformSwitch.SINGLETON_ID).update(
        submissions_paused=paused, reason=reason, changed_by=actor, changed_at=now
    )
    change = PlatformSwitchChange.objects.create(
        submissions_paused=paused,
        was_paused=was_paused,
        reason=reason,
        changed_by=actor,
        source=source,
        changed_at=now,
    )
    transaction.on_commit(lambda: _announce(change))
    return change


def _announce(change: PlatformSwitchChange) -> None:
    """After commit: this process sees the change at once, and the log says who and why."""
    try:
        cache.delete(CACHE_KEY)
    except Exception:
        logger.warning("kill switch cache not cleared; it expires in %s s", CACHE_SECONDS)
    logger.warning(
        "submissions paused" if change.submissions_paused else "submissions resumed",
        extra={
            "event": "kill_switch",
            "submissions_paused": change.submissions_paused,
            "was_paused": change.was_paused,
            "actor": change.changed_by,
            "reason": change.reason,
            "source": change.source,
            "change_id": change.pk,
        },
    )


def _paused_in_database() -> bool:
    return PlatformSwitch.objects.filter(
        pk=PlatformSwitch.SINGLETON_ID, submissions_paused=True
    ).exists()


def _log_environment_switch_once() -> None:
    global _environment_logged
    if not _environment_logged:
        _environment_logged = True
        logger.warning(
            "submissions paused by DPP_SUBMISSIONS_PAUSED",
            extra={"event": "kill_switch", "submissions_paused": True, "source": "environment"},
        )
