"""The contract every pack executor fulfils (docs/design.md §7).

The platform prices a run before it is queued and runs it later on a worker, so a pack is
split into three steps: `validate` and `estimate_cost` run at submission (bad inputs are a
422 and a reservation that cannot cover the price is refused, neither is billed), `execute`
runs on the worker.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ExecutionContext:
    """What a pack may know about the run it executes, beyond its inputs.

    `run_id` seeds any randomness, so re-running an attempt reproduces the same document.
    """

    run_id: str
    reserved_micros: int
    min_reliability_score: float = 0.0


class Pack(abc.ABC):
    """A pack executor. Instances are cached by the registry, so they must be stateless."""

    @abc.abstractmethod
    def validate(self, inputs: dict[str, Any]) -> None:
        """Raise `PackValidationError` listing every field error, with pointers relative to
        `inputs`; return `None` when the inputs are acceptable."""

    @abc.abstractmethod
    def estimate_cost(self, inputs: dict[str, Any]) -> int:
        """Return the deterministic price of a run in micro-USD.

        Computed from validated inputs only, so the price quoted at submission is the price
        charged; raises `PackValidationError` for invalid inputs.
        """

    @abc.abstractmethod
    def execute(self, inputs: dict[str, Any], ctx: ExecutionContext) -> tuple[dict[str, Any], int]:
        """Run the pack and return `(result_document, cost_micros)`.

        The document holds JSON-serialisable plain Python types only. Raise
        `PackExecutionError` for a domain failure; anything else is treated as a crash.
        """
