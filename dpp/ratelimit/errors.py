"""A violated policy: the ``rate-limited`` problem (429), with ``Retry-After`` and a
``violated-policies`` member naming the policy and its quota."""

from typing import Any

from dpp.errors import DomainError
from dpp.ratelimit.engine import Decision
from dpp.ratelimit.policies import Policy

# A run takes seconds: sooner than this, a slot is unlikely to have been freed.
CONCURRENCY_RETRY_AFTER_SEC = 5


class RateLimitExceeded(DomainError):
    slug = "rate-limited"

    def __init__(self, detail: str, *, violation: dict[str, Any], retry_after: int) -> None:
        super().__init__(
            detail, extensions={"violated-policies": [violation]}, retry_after=retry_after
        )


class WindowExceeded(RateLimitExceeded):
    """The quota of a windowed policy (``submit``, ``poll``) is used up until ``reset``."""

    def __init__(self, *, decision: Decision) -> None:
        policy = decision.policy
        super().__init__(
            f"The {policy.name!r} policy allows {policy.quota} requests per {policy.window} s. "
            f"Retry in {decision.reset} s.",
            violation={"policy": policy.name, "quota": policy.quota, "window": policy.window},
            retry_after=decision.reset,
        )


class ConcurrencyExceeded(RateLimitExceeded):
    """The ``concurrency`` cap is reached: ``in_flight`` runs are QUEUED or PROCESSING."""

    def __init__(self, *, policy: Policy, in_flight: int) -> None:
        super().__init__(
            f"The plan allows {policy.quota} runs in flight at once; wait for one to finish.",
            violation={"policy": policy.name, "quota": policy.quota, "in_flight": in_flight},
            retry_after=CONCURRENCY_RETRY_AFTER_SEC,
        )
