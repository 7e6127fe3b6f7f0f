"""Errors raised by pack executors and the pack registry.

They carry data, not HTTP status codes. `UnknownPackType` answers the client directly, so
it is a `DomainError` (422 `unknown-pack-type`). The others never reach `dpp/problems.py`
as they are: `runs.services` turns a validation error into `runs.errors.InvalidInputs`
(a 422 whose `errors` point into the request's `inputs`) and an execution error into a
FAILED run with its `reason_code`.
"""

from __future__ import annotations

from dpp.errors import DomainError

FieldError = tuple[str, str]
"""`(pointer, detail)`: an RFC 6901 JSON Pointer relative to the inputs object, and why."""


class PackError(Exception):
    """Base class, so callers can tell pack failures from bugs with a single `except`."""


class PackValidationError(PackError):
    """The inputs break the pack's rules; `errors` lists every problem found, not just one."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        summary = "; ".join(f"{pointer or '/'}: {detail}" for pointer, detail in self.errors[:5])
        more = f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"invalid pack inputs: {summary}{more}")


class PackExecutionError(PackError):
    """Valid inputs whose run fails for a domain reason, e.g. `RELIABILITY_BELOW_MINIMUM`.

    Distinct from a crash: the run is FAILED with this reason code and the minimum fee,
    and retrying would give the same answer.
    """

    def __init__(self, reason_code: str, detail: str) -> None:
        self.reason_code = reason_code
        self.detail = detail
        super().__init__(f"{reason_code}: {detail}")


class UnknownPackType(PackError, DomainError):
    """No pack is registered under `pack_type` in the `DPP_PACKS` setting."""

    slug = "unknown-pack-type"

    def __init__(self, pack_type: str, *, known: list[str]) -> None:
        self.pack_type = pack_type
        self.known = list(known)
        super().__init__(
            f"unknown pack type {pack_type!r}; known: {', '.join(self.known) or 'none'}"
        )
