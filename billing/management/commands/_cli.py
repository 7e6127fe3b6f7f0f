"""Helpers shared by the billing management commands."""

import getpass

from django.core.management.base import CommandError

from billing.money import InvalidAmount, usd_to_micros


def default_actor() -> str:
    """Who ran the command, for the transfer's ``actor`` column."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return "cli"


def parse_usd(value: str, *, what: str) -> int:
    try:
        return usd_to_micros(value)
    except InvalidAmount as exc:
        raise CommandError(f"{what}: {exc}") from exc
