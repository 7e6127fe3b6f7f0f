"""Per-request / per-task context that every log line carries."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from dpp.tracing import annotate

_context: ContextVar[dict[str, Any]] = ContextVar("dpp_log_context", default={})  # noqa: B039


def current() -> dict[str, Any]:
    return _context.get()


def get(name: str) -> Any:
    return _context.get().get(name)


def update(**values: Any) -> None:
    """Add fields to the current context (e.g. tenant_id once the key is checked)."""
    known = {k: v for k, v in values.items() if v is not None}
    _context.set({**_context.get(), **known})
    annotate(known)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    known = {k: v for k, v in values.items() if v is not None}
    token = _context.set({**_context.get(), **known})
    annotate(known)
    try:
        yield
    finally:
        _context.reset(token)
