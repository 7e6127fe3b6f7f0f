"""Errors: ``DomainError``, the base of every error a client sees, and the core's own.

A ``DomainError`` subclass declares its problem type by slug on the class
(``slug = "run-not-found"``); the slug is looked up in ``dpp/problem_types.py`` when the
class is defined, so a typo fails at import, not in a client's response. An instance
carries the rest of the problem document: ``detail``, field errors (JSON Pointers into the
request body), extension members and ``retry_after``. ``dpp.problems`` renders any
``DomainError`` the same way and knows no class by name: renaming a class changes nothing
a client sees, and changing what a client sees is an edit of the class that raises it.

Exceptions that mean a bug — a broken invariant, an impossible state — are deliberately
not ``DomainError``s: they reach the client as the generic 500 problem and are logged
with their traceback.
"""

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

from dpp.problem_types import problem_type


def json_pointer(*tokens: str | int) -> str:
    """Build an RFC 6901 pointer from path tokens, escaping ``~`` and ``/`` inside them.

    Escaping matters because keys are caller-chosen: a criterion named ``a/b`` must point
    at one key, not at a nested ``b`` inside ``a``.
    """
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in tokens)


class FieldError(NamedTuple):
    """One entry of a problem's ``errors`` member: where in the body, and what is wrong."""

    pointer: str
    detail: str


class DomainError(Exception):
    """An error the client can act on, answered with the problem type named by ``slug``.

    Subclasses set ``slug`` (a key of ``dpp.problem_types.PROBLEM_TYPES``) in the class
    body, or inherit it. ``dpp.problems.ProblemError`` alone sets it to ``None`` and takes
    the slug per instance.
    """

    slug: ClassVar[str | None]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "slug"):
            raise TypeError(f"{cls.__qualname__} must declare its problem type: slug = '...'")
        if cls.slug is not None:
            problem_type(cls.slug)

    def __init__(
        self,
        detail: str | None = None,
        *,
        field_errors: Iterable[tuple[str, str]] = (),
        extensions: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.problem_type = problem_type(self.slug)
        self.detail = detail or self.problem_type.title
        self.field_errors = [FieldError(*error) for error in field_errors]
        self.extensions = dict(extensions or {})
        # Seconds the client should wait before retrying; sent as ``Retry-After``.
        self.retry_after = retry_after
        # Headers the status itself calls for, e.g. ``WWW-Authenticate`` on a 401.
        self.headers = dict(headers or {})
        super().__init__(self.detail)


class ApiKeyNotFound(Exception):
    """An operator named an API key prefix that does not exist (CLI and admin only)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        super().__init__(f"no API key with prefix {prefix}")


class SwitchChangeRejected(Exception):
    """A kill-switch change without the reason or the actor the audit history requires."""

    def __init__(self, missing: str) -> None:
        self.missing = missing
        super().__init__(f"a change of the platform switch needs a non-empty {missing}")
