"""Fixed-window counters per subject and policy, atomic in Redis.

The first request of a window starts it; a Lua script increments the counter, starts the
window's expiry and reads its remaining time in one server-side step, so any number of
API processes can never admit more than the quota.

Without Redis (the embedded default) the counters live in the local-memory cache: exact
within one process, approximate across processes — the embedded default is one machine
for one developer.
"""

import math
import threading
import time
from dataclasses import dataclass

from django.core.cache import cache

from dpp.ratelimit.policies import Policy

_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Decision:
    policy: Policy
    allowed: bool
    remaining: int
    reset: int  # seconds until the window ends, ≥ 1


class LimiterUnavailable(Exception):
    """The counter store could not be reached; the caller decides to fail open or closed."""


def hit(*, subject: str, policy: Policy) -> Decision:
    """Count one request of ``subject`` against the windowed ``policy``; say whether it may pass."""
    key = f"dpp:ratelimit:{policy.name}:{subject}"
    count, ttl_ms = _increment(key, policy.window * 1000)
    return Decision(
        policy=policy,
        allowed=count <= policy.quota,
        remaining=max(policy.quota - count, 0),
        reset=max(math.ceil(ttl_ms / 1000), 1),
    )


def _increment(key: str, window_ms: int) -> tuple[int, int]:
    if hasattr(cache, "client") and hasattr(cache.client, "get_client"):
        return _redis_increment(key, window_ms)
    return _local_increment(key, window_ms)


def _redis_increment(key: str, window_ms: int) -> tuple[int, int]:
    from django_redis import get_redis_connection
    from redis.exceptions import RedisError

    try:
        connection = get_redis_connection("default")
        count, ttl = connection.register_script(_SCRIPT)(keys=[key], args=[window_ms])
    except RedisError as exc:
        raise LimiterUnavailable(str(exc)) from exc
    return int(count), int(ttl)


_local_lock = threading.Lock()


def _local_increment(key: str, window_ms: int) -> tuple[int, int]:
    with _local_lock:
        now = time.monotonic()
        count, ends_at = cache.get(key) or (0, now + window_ms / 1000)
        if ends_at <= now:
            count, ends_at = 0, now + window_ms / 1000
        count += 1
        cache.set(key, (count, ends_at), timeout=math.ceil(ends_at - now) + 1)
        return count, int((ends_at - now) * 1000)
