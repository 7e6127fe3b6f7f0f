"""Look up pack executors by name from the `DPP_PACKS` setting.

The setting maps a pack type to a dotted class path, so deployments and tests can add
packs without touching this module. Instances are cached because packs are stateless; the
cache is dropped whenever `DPP_PACKS` changes (e.g. `override_settings` in tests).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from runs.packs.base import Pack
from runs.packs.errors import UnknownPackType

_instances: dict[str, Pack] = {}
_lock = threading.Lock()


def pack_types() -> list[str]:
    """The registered pack type names, sorted for stable output."""
    return sorted(settings.DPP_PACKS)


def get_pack(pack_type: str) -> Pack:
    """Return the (cached) executor registered as `pack_type`.

    Raises `UnknownPackType` for a name that is not registered, and `ImproperlyConfigured`
    when the registered path does not name a `Pack` subclass: that is a deployment error,
    not the caller's.
    """
    pack = _instances.get(pack_type)
    if pack is not None:
        return pack
    dotted_path = settings.DPP_PACKS.get(pack_type)
    if dotted_path is None:
        raise UnknownPackType(pack_type, known=pack_types())
    pack_class = import_string(dotted_path)
    if not (isinstance(pack_class, type) and issubclass(pack_class, Pack)):
        raise ImproperlyConfigured(
            f"DPP_PACKS[{pack_type!r}] = {dotted_path!r} is not a subclass of {Pack.__qualname__}"
        )
    with _lock:
        return _instances.setdefault(pack_type, pack_class())


@receiver(setting_changed)
def _forget_packs(*, setting: str, **kwargs: object) -> None:
    if setting == "DPP_PACKS":
        with _lock:
            _instances.clear()
