"""Packs the execution tests register: in-process through the ``settings`` fixture, in a
worker subprocess through ``DPP_EXTRA_PACKS``."""

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from runs.packs.base import ExecutionContext, Pack
from runs.packs.decision import DecisionPack

PACK_LOG_ENV = "DPP_TEST_PACK_LOG"

TEST_PACKS = {
    "counting-decision": "tests.execution.packs.CountingDecisionPack",
    "crashing": "tests.execution.packs.CrashingPack",
    "sleepy": "tests.execution.packs.SleepyPack",
    "overcharging": "tests.execution.packs.OverchargingPack",
}

CRASH_MESSAGE = "connection string postgres://internal-secret@db"
SLEEPY_PRICE_MICROS = 7_000


def executions(log: Path, run_id: object) -> int:
    """How many times the counting pack executed ``run_id``, according to ``log``."""
    return log.read_text().split().count(str(run_id))


class CountingDecisionPack(DecisionPack):
    """The decision pack, appending the run id to the file named by ``$DPP_TEST_PACK_LOG``
    on every execution, so a test can count executions across worker processes."""

    def execute(self, inputs: dict[str, Any], ctx: ExecutionContext) -> tuple[dict[str, Any], int]:
        # O_APPEND writes this short are atomic, so concurrent processes never interleave.
        with open(os.environ[PACK_LOG_ENV], "a") as log:
            log.write(f"{ctx.run_id}\n")
        return super().execute(inputs, ctx)


class _AnyInputs(Pack):
    def validate(self, inputs: dict[str, Any]) -> None:
        return None

    def estimate_cost(self, inputs: dict[str, Any]) -> int:
        return SLEEPY_PRICE_MICROS


class CrashingPack(_AnyInputs):
    """Fails the way a bug does, with a message that must never reach the client."""

    def execute(self, inputs: dict[str, Any], ctx: ExecutionContext) -> tuple[dict[str, Any], int]:
        raise RuntimeError(CRASH_MESSAGE)


class SleepyPack(_AnyInputs):
    """Sleeps ``inputs["sleep_sec"]``, catching ``Exception`` as careless pack code does."""

    def execute(self, inputs: dict[str, Any], ctx: ExecutionContext) -> tuple[dict[str, Any], int]:
        # The point: the timebox must get through a pack that swallows every Exception.
        with contextlib.suppress(Exception):
            time.sleep(float(inputs.get("sleep_sec", 0)))
        return {"slept": inputs.get("sleep_sec", 0)}, SLEEPY_PRICE_MICROS


class OverchargingPack(_AnyInputs):
    """Meters far more than any reservation: the platform must cap the charge."""

    def execute(self, inputs: dict[str, Any], ctx: ExecutionContext) -> tuple[dict[str, Any], int]:
        return {"metered": "a lot"}, 10**12
