"""The ledger's bounds: the most one transfer may move and the most an account may hold.

They sit far inside 64 bits on purpose. The columns are BIGINT: SQLite turns an integer
result that overflows into a float (the balance is then no longer an amount, and its
``SUM`` raises "integer overflow"), and PostgreSQL fails with "bigint out of range". With
every transfer at most ``MAX_TRANSFER_MICROS`` and every account column at most
``MAX_CREDITED_MICROS``, every sum the services, the CHECK constraints and the audit
compute stays below 2**63 by a factor of more than a thousand.

The services refuse a transfer that would break a bound before writing anything (their
conditional UPDATE is the guard); the CHECK constraints of ``billing.models`` are the
backstop. docs/billing.md explains the numbers.
"""

from billing.money import MICROS_PER_USD

# $1,000,000: one top-up, adjustment or reservation.
MAX_TRANSFER_MICROS = 1_000_000 * MICROS_PER_USD
# $1,000,000,000: what an account may hold, available + reserved (credited - spent).
MAX_BALANCE_MICROS = 1_000_000_000 * MICROS_PER_USD
# $1,000,000,000,000: everything ever credited to one account; it bounds every column
# (spent and reserved never exceed credited), so no sum of columns can overflow.
MAX_CREDITED_MICROS = 1_000_000_000_000 * MICROS_PER_USD
