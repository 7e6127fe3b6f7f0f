"""USD decimal strings ↔ integer micro-USD. The only place money changes representation.

The API speaks six-place decimal strings (``"0.050000"``); the ledger stores integers.
Conversions are exact integer arithmetic on the digits: no float, and no Decimal
context whose precision could round a large amount. ``require_micros`` is the one check
that a value handed to the ledger is an integer amount.
"""

import operator
import re
from decimal import Decimal
from typing import Any

MICROS_PER_USD = 1_000_000
PLACES = 6
# The ledger's columns are BIGINT; anything larger would fail in the database instead.
MAX_MICROS = 2**63 - 1

_USD_STRING = re.compile(r"^(-?)([0-9]+)(?:\.([0-9]+))?$")


class InvalidAmount(ValueError):
    """A value that is not a valid micro-USD amount for the operation asked.

    Not a ``DomainError``: the serializers that parse clients' amounts answer it as a 422
    at the field, the admin and the CLI as a form or command error; one that reaches the
    ledger is a bug in the caller (→ 500).
    """


def require_micros(value: Any, *, name: str) -> int:
    """``value`` as an integer number of micro-USD, or ``InvalidAmount``.

    Anything with ``__index__`` is an integer (a pack may count in NumPy integers); bools
    are not amounts, and floats, Decimals and strings must go through ``usd_to_micros``.
    """
    if isinstance(value, bool):
        raise InvalidAmount(f"{name} must be an integer number of micro-USD, not a bool.")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidAmount(
            f"{name} must be an integer number of micro-USD, not {type(value).__name__}."
        ) from None


def usd_to_micros(value: str | Decimal | int, *, allow_negative: bool = False) -> int:
    """Parse a USD amount with at most six decimal places into micro-USD.

    Strings must be plain decimals (``"12"``, ``"0.05"``, ``"-1.5"``); exponents,
    whitespace, NaN and infinities are refused. Floats are refused outright because the
    value they carry is already not the amount the caller typed.
    """
    if isinstance(value, bool | float):
        raise InvalidAmount(f"USD amounts must be decimal strings, not {type(value).__name__}.")
    if isinstance(value, int):
        micros = value * MICROS_PER_USD
    elif isinstance(value, Decimal):
        micros = _decimal_to_micros(value)
    elif isinstance(value, str):
        micros = _string_to_micros(value)
    else:
        raise InvalidAmount(f"USD amounts must be decimal strings, not {type(value).__name__}.")
    if micros < 0 and not allow_negative:
        raise InvalidAmount(f"USD amount {value} must not be negative.")
    if abs(micros) > MAX_MICROS:
        raise InvalidAmount(f"USD amount {value} is too large.")
    return micros


def _string_to_micros(value: str) -> int:
    match = _USD_STRING.match(value)
    if match is None:
        raise InvalidAmount(f"{value!r} is not a decimal USD amount like '12.50'.")
    sign, whole, fraction = match[1], match[2], match[3] or ""
    if len(fraction) > PLACES:
        raise InvalidAmount(f"USD amount {value} has more than {PLACES} decimal places.")
    if len(whole.lstrip("0")) > 19:
        raise InvalidAmount(f"USD amount {value} is too large.")
    micros = int(whole) * MICROS_PER_USD + int(fraction.ljust(PLACES, "0"))
    return -micros if sign else micros


def _decimal_to_micros(value: Decimal) -> int:
    if not value.is_finite():
        raise InvalidAmount(f"USD amount {value} is not a finite number.")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite Decimals have an int exponent
    if exponent < -PLACES:
        raise InvalidAmount(f"USD amount {value} has more than {PLACES} decimal places.")
    if len(digits) + exponent > 19:
        raise InvalidAmount(f"USD amount {value} is too large.")
    micros = int("".join(map(str, digits)) or "0") * 10 ** (exponent + PLACES)
    return -micros if sign else micros


def micros_to_usd(micros: int) -> str:
    """Render micro-USD as a USD string with exactly six places: 50_000 → ``"0.050000"``."""
    micros = require_micros(micros, name="micro-USD amount")
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{'-' if micros < 0 else ''}{whole}.{fraction:0{PLACES}d}"
