"""The minimum fee: what a failed or timed-out run costs (docs/design.md §3). Never for 4xx."""

from billing.money import InvalidAmount, require_micros

MINIMUM_FEE_FLOOR_MICROS = 5_000  # $0.005: a failure still used a worker
MINIMUM_FEE_CAP_MICROS = 100_000  # $0.10: a failure never costs more than this
MINIMUM_FEE_PERCENT = 2


def minimum_fee(reserved_micros: int) -> int:
    """``min(max(5_000, 2% of reserved), reserved, 100_000)`` in micro-USD.

    The percentage is integer arithmetic rounded down, so the fee is the same on every
    machine; capping at ``reserved`` keeps the fee inside what the run reserved.
    """
    reserved_micros = require_micros(reserved_micros, name="reserved_micros")
    if reserved_micros < 0:
        raise InvalidAmount("reserved_micros must not be negative.")
    percent = reserved_micros * MINIMUM_FEE_PERCENT // 100
    return min(max(MINIMUM_FEE_FLOOR_MICROS, percent), reserved_micros, MINIMUM_FEE_CAP_MICROS)
