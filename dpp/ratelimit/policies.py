"""What is limited: a policy, the set of policies that applies to one caller, their names.

The core imports no app, so the quotas come from the plans through a function named by
``settings.DPP_RATE_LIMIT_POLICIES`` (billing's, which reads the caller's plan).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from dpp.models import Tenant

SUBMIT = "submit"  # POST /v1/runs, idempotent replays included
POLL = "poll"  # every other /v1/ request
CONCURRENCY = "concurrency"  # runs in flight (QUEUED or PROCESSING)


@dataclass(frozen=True)
class Policy:
    """``quota`` requests per ``window`` seconds, or, without a window, at most ``quota``
    things at once (the ``concurrency`` cap)."""

    name: str
    quota: int
    window: int | None = None


@dataclass(frozen=True)
class PolicySet:
    """The policies that apply to one caller, and the plan they come from."""

    plan: str
    submit: Policy
    poll: Policy
    concurrency: Policy


PolicyProvider = Callable[["Tenant | None"], PolicySet]


def policy_provider() -> PolicyProvider:
    """The function that returns a caller's policies (``None``: a caller without a valid key)."""
    return import_string(settings.DPP_RATE_LIMIT_POLICIES)
