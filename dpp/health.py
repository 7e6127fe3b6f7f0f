"""Readiness checks: each dependency answers, or readiness is 503.

The body names each check, whether it passed and how long it took. A failure shows only
the exception's class: ``/readyz`` is unauthenticated, and a driver's message can carry
host names and user names. The full message goes to the log.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection

from dpp.metrics import READYZ_DATABASE

logger = logging.getLogger(__name__)

CHECKS: dict[str, Callable[[], None]] = {}


def readiness_check(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a check; later layers (broker, storage) add theirs the same way."""

    def register(func: Callable[[], None]) -> Callable[[], None]:
        CHECKS[name] = func
        return func

    return register


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None


@readiness_check("database")
def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@readiness_check("cache")
def check_cache() -> None:
    cache.set("dpp:readyz", "1", timeout=5)
    if cache.get("dpp:readyz") != "1":
        raise RuntimeError("cache did not return the value just written")


def run_checks() -> list[CheckResult]:
    results = []
    for name, func in CHECKS.items():
        started = time.perf_counter()
        try:
            func()
        except Exception as exc:
            logger.warning(
                "readiness check failed",
                extra={"check": name, "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            results.append(CheckResult(name, False, _elapsed(started), type(exc).__name__))
        else:
            results.append(CheckResult(name, True, _elapsed(started)))
    database = next((r for r in results if r.name == "database"), None)
    if database is not None:
        READYZ_DATABASE.set(1 if database.ok else 0)
    return results


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
