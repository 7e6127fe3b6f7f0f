"""Domain errors raised by pack executors and the pack registry.

They carry data, not HTTP status codes: `dpp/problems.py` decides how each one is rendered
(validation errors become a 422 with an `errors` extension, execution errors a FAILED run
with `reason_code`).
"""

from __future__ import annotations

FieldError = tuple[str, str]
"""`(pointer, detail)`: an RFC 6901 JSON Pointer relative to the inputs object, and why."""


def json_pointer(*tokens: str | int) -> str:
    """Build an RFC 6901 pointer from path tokens, escaping `~` and `/` inside them.

    Escaping matters because ids are caller-chosen: a criterion named `a/b` must point at one
    key, not at a nested `b` inside `a`.
    """
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in tokens)


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


class UnknownPackType(PackError):
    """No pack is registered under `pack_type` in the `DPP_PACKS` setting."""

    def __init__(self, pack_type: str, *, known: list[str]) -> None:
        self.pack_type = pack_type
        self.known = list(known)
        super().__init__(
            f"unknown pack type {pack_type!r}; known: {', '.join(self.known) or 'none'}"
        )
